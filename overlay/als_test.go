package overlay

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/als"
)

const alsTestRef = "docker.io/library/busybox:latest"

// newALSDriver opens a driver in a temp store with the given ALS entries.
func newALSDriver(t *testing.T, stores ...string) *Driver {
	t.Helper()
	graphRoot, _ := testutil.TempStore(t)
	d, err := New(filepath.Join(graphRoot, "overlay"), Options{
		AdditionalLayerStores: stores,
		Logger:                slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Cleanup() })
	return d
}

func TestParseALSLocations(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    alsLocation
		wantErr bool
	}{
		{in: "/als", want: alsLocation{root: "/als"}},
		{in: "/als:ref", want: alsLocation{root: "/als", withRef: true}},
		{in: "/a:b/als/:ref", want: alsLocation{root: "/a:b/als", withRef: true}},
		{in: "relative:ref", wantErr: true},
		{in: "", wantErr: true},
		{in: ":ref", wantErr: true},
	} {
		got, err := parseALSLocations([]string{tc.in})
		if tc.wantErr {
			if !errors.Is(err, driver.ErrInvalidArgument) {
				t.Errorf("%q: err %v, want invalid argument", tc.in, err)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestALSLookupC30 pins where a layer is found: padded standard base64 of
// the ref, then the digest, with all of diff, info and blob.
func TestALSLookupC30(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.StartFUSE(t)
	toc := digest.FromString("C30 toc")
	store.AddLayer(t, als.Layer{Ref: alsTestRef, TOCDigest: toc, Files: map[string]string{"f": "x"}})
	wantDir := filepath.Join(store.Mountpoint, "ZG9ja2VyLmlvL2xpYnJhcnkvYnVzeWJveDpsYXRlc3Q=", toc.String())
	if got := als.LayerDir(store.Mountpoint, alsTestRef, toc); got != wantDir {
		t.Fatalf("C30 layer dir %s, want %s", got, wantDir)
	}
	d := newALSDriver(t, store.Mountpoint+":ref")

	t.Run("C30 found", func(t *testing.T) {
		l, err := d.LookupAdditionalLayer(toc, alsTestRef)
		if err != nil {
			t.Fatal(err)
		}
		if c := store.Counts(alsTestRef, toc); c.Uses != 1 || c.Refs != 1 {
			t.Fatalf("after lookup: %+v, want one use", c)
		}
		rc, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		info, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(info), `"expected-layer-diffid"`) {
			t.Errorf("info read after diff lookup is the short form: %s", info)
		}
		l.Release()
		l.Release()
		if c := store.Counts(alsTestRef, toc); c != (als.Counts{Uses: 1, Releases: 1}) {
			t.Fatalf("C32 lookup+release twice: %+v, want one use and one release", c)
		}
	})

	// Other encodings of the ref, another ref or digest: not found, and
	// the store never sees a use.
	other := newALSDriver(t, store.Mountpoint)
	for _, tc := range []struct {
		name string
		d    *Driver
		toc  digest.Digest
		ref  string
	}{
		{"C30 other ref", d, toc, "docker.io/library/alpine:latest"},
		{"C30 other digest", d, digest.FromString("absent"), alsTestRef},
		{"C30 PATH without ref", other, toc, alsTestRef},
		{"C30 empty ref with :ref", d, toc, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := store.Counts(alsTestRef, toc)
			_, err := tc.d.LookupAdditionalLayer(tc.toc, tc.ref)
			if !errors.Is(err, driver.ErrLayerUnknown) {
				t.Fatalf("err %v, want layer unknown", err)
			}
			if after := store.Counts(alsTestRef, toc); after != before {
				t.Fatalf("counts changed %+v -> %+v", before, after)
			}
		})
	}
}

// TestALSLookupIncomplete: a layer dir missing diff, info or blob is not
// found, and a store that answers info for a layer it lacks is not taken.
func TestALSLookupIncomplete(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.StartFUSE(t)
	d := newALSDriver(t, store.Mountpoint+":ref")
	for _, missing := range []string{"diff", "info", "blob"} {
		t.Run("C30 missing "+missing, func(t *testing.T) {
			toc := digest.FromString("missing " + missing)
			dir := store.AddLayer(t, als.Layer{Ref: alsTestRef, TOCDigest: toc})
			if err := os.RemoveAll(filepath.Join(dir, missing)); err != nil {
				t.Fatal(err)
			}
			_, err := d.LookupAdditionalLayer(toc, alsTestRef)
			if !errors.Is(err, driver.ErrLayerUnknown) || !strings.Contains(err.Error(), missing) {
				t.Fatalf("err %v, want layer unknown naming %s", err, missing)
			}
			if c := store.Counts(alsTestRef, toc); c != (als.Counts{}) {
				t.Fatalf("counts %+v, want none", c)
			}
		})
	}
	t.Run("info only", func(t *testing.T) {
		toc := digest.FromString("ghost")
		store.AddInfoOnly(t, alsTestRef, toc)
		if _, err := d.LookupAdditionalLayer(toc, alsTestRef); !errors.Is(err, driver.ErrLayerUnknown) {
			t.Fatalf("err %v, want layer unknown", err)
		}
	})
}

// TestALSLookupInvalidC19: bad digests and refs are refused before any
// path is built. Choice: refs are base64-encoded into one path component,
// which can never be "." or "..", so '/' and ".." inside a ref are normal
// (docker.io/library/busybox) and accepted; NUL and other control
// characters are never part of a reference and are refused.
func TestALSLookupInvalidC19(t *testing.T) {
	dir := als.NewDir(t)
	d := newALSDriver(t, dir.Root+":ref", dir.Root)
	good := digest.FromString("good")
	for _, tc := range []struct {
		name string
		dgst digest.Digest
		ref  string
		want error
	}{
		{"C19 digest with ..", "sha256:../../etc/passwd", alsTestRef, driver.ErrInvalidArgument},
		{"C19 digest sha256:../../x", "sha256:../../x", alsTestRef, driver.ErrInvalidArgument},
		{"C19 uppercase hex", digest.Digest(strings.ToUpper(good.String()[:7]) + strings.ToUpper(good.Encoded())), alsTestRef, driver.ErrInvalidArgument},
		{"C19 uppercase hex only", digest.Digest("sha256:" + strings.ToUpper(good.Encoded())), alsTestRef, driver.ErrInvalidArgument},
		{"C19 63 hex", good[:len(good)-1], alsTestRef, driver.ErrInvalidArgument},
		{"C19 65 hex", good + "0", alsTestRef, driver.ErrInvalidArgument},
		{"C19 md5", "md5:d41d8cd98f00b204e9800998ecf8427e", alsTestRef, driver.ErrInvalidArgument},
		{"C19 no algorithm", digest.Digest(good.Encoded()), alsTestRef, driver.ErrInvalidArgument},
		{"C19 empty digest", "", alsTestRef, driver.ErrInvalidArgument},
		{"C19 ref with NUL", good, "busybox\x00:latest", driver.ErrInvalidArgument},
		{"C19 ref with newline", good, "busybox\n", driver.ErrInvalidArgument},
		{"ref with / is normal", good, "docker.io/library/busybox", driver.ErrLayerUnknown},
		{"ref with .. is harmless", good, "../../..", driver.ErrLayerUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.LookupAdditionalLayer(tc.dgst, tc.ref)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if entries, _ := os.ReadDir(dir.Root); len(entries) != 0 {
				t.Fatalf("store root got %d entries", len(entries))
			}
		})
	}
}

// TestALSCreateAsPlainDirC32 uses a store that does not count: use is
// created and removed, the release rmdir fails and is only logged, and
// nothing in the store is ever deleted.
func TestALSCreateAsPlainDirC32(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.NewDir(t)
	toc := digest.FromString("plain")
	layerDir := store.AddLayer(t, als.Layer{Ref: alsTestRef, TOCDigest: toc, Files: map[string]string{"etc/f": "plain"}})
	before := testutil.Snapshot(t, store.Root)
	d := newALSDriver(t, store.Root+":ref")

	l, err := d.LookupAdditionalLayer(toc, alsTestRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CreateAs("plainals", ""); err != nil {
		t.Fatal(err)
	}
	l.Release()
	l.Release()

	if target, err := os.Readlink(d.diffDir("plainals")); err != nil || target != filepath.Join(layerDir, "diff") {
		t.Fatalf("diff link %q, %v; want %s", target, err, filepath.Join(layerDir, "diff"))
	}
	if b, err := os.ReadFile(d.additionalLayerFile("plainals")); err != nil || string(b) != layerDir {
		t.Fatalf("additionallayer %q, %v; want %s", b, err, layerDir)
	}
	if got, err := os.ReadFile(filepath.Join(d.diffDir("plainals"), "etc", "f")); err != nil || string(got) != "plain" {
		t.Fatalf("etc/f through diff: %q, %v", got, err)
	}
	byID, err := d.LookupAdditionalLayerByID("plainals")
	if err != nil {
		t.Fatal(err)
	}
	byID.Release()
	if _, err := d.LookupAdditionalLayerByID("nosuch"); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Fatalf("by id of unknown layer: %v", err)
	}

	if err := d.Remove("plainals"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(d.layerDir("plainals")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("layer dir still there: %v", err)
	}
	if diffs := withoutDirTimes(before).Diff(withoutDirTimes(testutil.Snapshot(t, store.Root))); len(diffs) != 0 {
		t.Fatalf("C32 store changed: %v", diffs)
	}
}

// TestALSCreateAsCountsC32: lookup, CreateAs, release, remove and by-id
// lookups balance in a counting store; a failed CreateAs leaves nothing.
func TestALSCreateAsCountsC32(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.StartFUSE(t)
	toc := digest.FromString("counts")
	store.AddLayer(t, als.Layer{Ref: alsTestRef, TOCDigest: toc, Files: map[string]string{"f": "x"}})
	d := newALSDriver(t, store.Mountpoint+":ref")

	l, err := d.LookupAdditionalLayer(toc, alsTestRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CreateAs("countsals", ""); err != nil {
		t.Fatal(err)
	}
	if c := store.Counts(alsTestRef, toc); c != (als.Counts{Uses: 2, Refs: 2}) {
		t.Fatalf("C32 lookup + CreateAs: %+v, want two uses", c)
	}
	if err := l.CreateAs("countsals", ""); !errors.Is(err, driver.ErrLayerExists) {
		t.Fatalf("second CreateAs: %v, want layer exists", err)
	}
	if err := l.CreateAs("bad/id", ""); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Fatalf("CreateAs bad id: %v", err)
	}
	if c := store.Counts(alsTestRef, toc); c.Uses != 2 {
		t.Fatalf("failed CreateAs notified: %+v", c)
	}
	l.Release()
	l.Release()
	if c := store.Counts(alsTestRef, toc); c != (als.Counts{Uses: 2, Releases: 1, Refs: 1}) {
		t.Fatalf("C32 release twice: %+v, want one release", c)
	}
	if err := d.Remove("countsals"); err != nil {
		t.Fatal(err)
	}
	if c := store.Counts(alsTestRef, toc); c != (als.Counts{Uses: 2, Releases: 2}) {
		t.Fatalf("C32 remove: %+v, want balanced", c)
	}
}

// withoutDirTimes drops directory mtimes, which the use notification
// (create and delete a file) changes in a plain-directory store.
func withoutDirTimes(tree testutil.Tree) testutil.Tree {
	out := testutil.Tree{}
	for p, n := range tree {
		if n.Type == "dir" {
			n.MTime = time.Time{}
		}
		out[p] = n
	}
	return out
}

// TestALSChainMount stacks base (own files) -> ALS layer -> top (own
// files) and reads a file of each layer through the merged dir. With the
// store stopped, mounting fails naming the ALS layer and the store path,
// and removal still works; once the store is back the stack mounts again.
func TestALSChainMount(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.StartFUSE(t)
	toc := digest.FromString("chain")
	alsDir := store.AddLayer(t, als.Layer{Ref: alsTestRef, TOCDigest: toc,
		Files: map[string]string{"mid/file": "from als"}})
	d := newALSDriver(t, store.Mountpoint+":ref")

	if err := d.Create("base", "", nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d.diffDir("base"), "base-file"), "from base")
	l, err := d.LookupAdditionalLayer(toc, alsTestRef)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := l.CreateAs("mid", "base"); err != nil {
		t.Fatal(err)
	}
	if err := d.Create("top", "mid", nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d.diffDir("top"), "top-file"), "from top")

	mountAndRead := func(t *testing.T, id string, ro bool, want map[string]string) {
		t.Helper()
		merged, err := d.Mount(id, driver.MountOpts{ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := d.Unmount(id); err != nil {
				t.Error(err)
			}
		}()
		for name, content := range want {
			got, err := os.ReadFile(filepath.Join(merged, name))
			if err != nil || string(got) != content {
				t.Errorf("%s: %s = %q, %v; want %q", id, name, got, err, content)
			}
		}
	}
	all := map[string]string{"base-file": "from base", "mid/file": "from als", "top-file": "from top"}
	mountAndRead(t, "top", false, all)
	mountAndRead(t, "top", true, all)
	mountAndRead(t, "mid", true, map[string]string{"base-file": "from base", "mid/file": "from als"})
	if _, err := d.Mount("mid", driver.MountOpts{}); !errors.Is(err, driver.ErrNotSupported) {
		t.Fatalf("read-write mount of the ALS layer: %v, want not supported", err)
	}

	store.Stop(t)
	for _, ro := range []bool{false, true} {
		_, err := d.Mount("top", driver.MountOpts{ReadOnly: ro})
		if !errors.Is(err, driver.ErrAdditionalLayerStoreGone) ||
			!strings.Contains(err.Error(), "mid") || !strings.Contains(err.Error(), store.Mountpoint) {
			t.Fatalf("mount with the store gone (ro=%v): %v; want store-gone naming mid and %s",
				ro, err, store.Mountpoint)
		}
	}
	store.Start(t)
	mountAndRead(t, "top", false, all)

	store.Stop(t)
	for _, id := range []string{"top", "mid"} {
		if err := d.Remove(id); err != nil {
			t.Fatalf("remove %s with the store gone: %v", id, err)
		}
	}
	store.Start(t)
	if got, err := os.ReadFile(filepath.Join(alsDir, "diff", "mid", "file")); err != nil || string(got) != "from als" {
		t.Fatalf("store's file after remove: %q, %v", got, err)
	}
	mountAndRead(t, "base", true, map[string]string{"base-file": "from base"})
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

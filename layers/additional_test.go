package layers

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/overlay"
	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/als"
)

const alsRef = "docker.io/library/busybox:latest"

// alsStore is a layer store in fresh temp roots whose overlay driver uses
// the given ALS entries.
type alsStore struct {
	*Store
	graphRoot, runRoot string
	stores             []string
}

func openALSStore(t testing.TB, stores ...string) *alsStore {
	t.Helper()
	testutil.RequireRoot(t)
	graphRoot, runRoot := testutil.TempStore(t)
	a := &alsStore{graphRoot: graphRoot, runRoot: runRoot, stores: stores}
	a.Store = a.reopen(t)
	return a
}

// reopen opens another Store (with its own driver) on the same roots, as
// another process would.
func (a *alsStore) reopen(t testing.TB) *Store {
	t.Helper()
	drv, err := overlay.New(filepath.Join(a.graphRoot, "overlay"), overlay.Options{
		AdditionalLayerStores: a.stores,
		Logger:                slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drv.Cleanup() })
	s, err := Open(Options{GraphRoot: a.graphRoot, RunRoot: a.runRoot, Driver: drv})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertNoLayer checks that neither a record nor driver dirs of id exist.
func assertNoLayer(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.Get(id); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Errorf("layer %s: Get = %v, want unknown", id, err)
	}
	if s.Driver().Exists(id) {
		t.Errorf("layer %s: driver dirs left", id)
	}
}

// TestPutAdditionalLayerChainC32 puts base (applied) -> ALS layer from the
// FUSE store (stargz-store's short info) -> top (applied), mounts top and
// reads a file of each layer; use and release counts balance.
func TestPutAdditionalLayerChainC32(t *testing.T) {
	testutil.RequireRoot(t)
	fuse := als.StartFUSE(t)
	toc := digest.FromString("chain toc")
	spec := als.Layer{Ref: alsRef, TOCDigest: toc, Files: map[string]string{"mid/file": "from als"}}
	fuse.AddLayer(t, spec)
	s := openALSStore(t, fuse.Mountpoint+":ref")

	if _, err := s.Put(PutOptions{ID: "base"}, testutil.NewTar().File("base-file", "from base").Reader()); err != nil {
		t.Fatal(err)
	}
	a, err := s.LookupAdditionalLayer(toc, alsRef)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.UncompressedDigest(); got != spec.DiffIDOf() {
		t.Errorf("UncompressedDigest = %s, want the expected diff ID %s", got, spec.DiffIDOf())
	}
	if got := a.CompressedSize(); got != 0 {
		t.Errorf("CompressedSize = %d, want 0 (stargz-store does not say)", got)
	}
	before := time.Now().UTC().Add(-time.Second)
	l, err := a.PutAs("mid", "base", []string{"mid-name"})
	if err != nil {
		t.Fatal(err)
	}
	a.Release()
	a.Release()
	if c := fuse.Counts(alsRef, toc); c != (als.Counts{Uses: 2, Releases: 1, Refs: 1}) {
		t.Fatalf("C32 after lookup, put, release twice: %+v", c)
	}

	// The record holds what stargz-store's info says, and strata's own id,
	// parent, names and time.
	want := Layer{ID: "mid", Parent: "base", Names: []string{"mid-name"}, TOCDigest: toc,
		UncompressedSize: -1, CompressionType: Gzip, ReadOnly: true}
	if l.ID != want.ID || l.Parent != want.Parent || !slices.Equal(l.Names, want.Names) ||
		l.TOCDigest != want.TOCDigest || l.UncompressedSize != -1 || l.CompressionType != Gzip ||
		!l.ReadOnly || l.CompressedDigest != "" || l.UncompressedDigest != "" {
		t.Errorf("record %+v, want like %+v", *l, want)
	}
	if l.Created.Before(before) || l.incomplete() || l.Flags[flagExpectedDiffID] != spec.DiffIDOf().String() {
		t.Errorf("record created %v flags %v", l.Created, l.Flags)
	}

	// Another process sees it, by id, name, TOC digest and expected diff ID.
	other := s.reopen(t)
	for _, ref := range []string{"mid", "mid-name"} {
		if got, err := other.Get(ref); err != nil || got.ID != "mid" || !got.ReadOnly {
			t.Errorf("other process Get(%s) = %+v, %v", ref, got, err)
		}
	}
	for _, d := range []digest.Digest{toc, spec.DiffIDOf()} {
		got, err := other.ByDigest(d)
		if err != nil || len(got) != 1 || got[0].ID != "mid" {
			t.Errorf("ByDigest(%s) = %v, %v; want mid", d, got, err)
		}
	}

	if _, err := s.Put(PutOptions{ID: "top", Parent: "mid"}, testutil.NewTar().File("top-file", "from top").Reader()); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		merged, err := s.Mount("top", MountOptions{ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"base-file": "from base", "mid/file": "from als", "top-file": "from top"} {
			got, err := os.ReadFile(filepath.Join(merged, name))
			if err != nil || string(got) != content {
				t.Errorf("ro=%v: %s = %q, %v; want %q", ro, name, got, err, content)
			}
		}
		if _, err := s.Unmount("top", false); err != nil {
			t.Fatal(err)
		}
	}

	for _, id := range []string{"top", "mid"} {
		if err := s.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	if c := fuse.Counts(alsRef, toc); c != (als.Counts{Uses: 2, Releases: 2}) {
		t.Fatalf("C32 after put and rm: %+v, want balanced", c)
	}
}

// TestPutAdditionalLayerAdoptsOnlyDESIGNFields: a full info record from a
// plain-directory store; only digests, sizes, compression, toc-digest,
// uid/gid sets and the expected diff ID are taken.
func TestPutAdditionalLayerAdoptsOnlyDESIGNFields(t *testing.T) {
	dir := als.NewDir(t)
	toc := digest.FromString("full toc")
	blobDigest := digest.FromString("blob")
	diffID := digest.FromString("diff")
	info, _ := json.Marshal(map[string]any{
		"id": "theirs", "parent": "theirparent", "names": []string{"theirname"},
		"created": "2001-01-01T00:00:00Z", "mountlabel": "system_u:object_r:foo",
		"compressed-diff-digest": blobDigest, "compressed-size": 1234,
		"diff-digest": diffID, "diff-size": 5678, "toc-digest": toc, "compression": 4,
		"uidset": []int{0, 1000}, "gidset": []int{0, 100},
		"uidmap": []map[string]int{{"container_id": 0, "host_id": 1, "size": 1}},
		"flags":  map[string]any{"incomplete": true, "other": "x", "expected-layer-diffid": diffID},
		"future": "field",
	})
	dir.AddLayer(t, als.Layer{Ref: alsRef, TOCDigest: toc, Info: info})
	s := openALSStore(t, dir.Root+":ref")

	// The driver-level handle path.
	drv := s.Driver().(driver.AdditionalLayerStoreDriver)
	h, err := drv.LookupAdditionalLayer(toc, alsRef)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	l, err := s.PutAdditionalLayer("", "", nil, h)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.ID) != 64 || l.Parent != "" || l.Names != nil || l.MountLabel != "" ||
		l.Created.Year() == 2001 || l.UIDMap != nil {
		t.Errorf("took identity from info: %+v", *l)
	}
	if l.CompressedDigest != blobDigest || l.CompressedSize != 1234 || l.UncompressedDigest != diffID ||
		l.UncompressedSize != 5678 || l.TOCDigest != toc || l.CompressionType != Zstd ||
		!slices.Equal(l.UIDs, []uint32{0, 1000}) || !slices.Equal(l.GIDs, []uint32{0, 100}) {
		t.Errorf("adopted fields wrong: %+v", *l)
	}
	wantFlags := map[string]any{"read-only": true, "expected-layer-diffid": diffID.String()}
	if len(l.Flags) != len(wantFlags) || l.Flags["read-only"] != true ||
		l.Flags[flagExpectedDiffID] != diffID.String() {
		t.Errorf("flags %v, want %v", l.Flags, wantFlags)
	}
	if got, err := s.reopen(t).Get(l.ID); err != nil || got.incomplete() {
		t.Errorf("after reopen: %+v, %v", got, err)
	}
	if err := s.Delete(l.ID); err != nil {
		t.Fatal(err)
	}
}

// TestPutAdditionalLayerFailures: each failure is a clear error, leaves no
// record and no driver dirs, and the store's counts balance once the
// handle is released.
func TestPutAdditionalLayerFailures(t *testing.T) {
	testutil.RequireRoot(t)
	fuse := als.StartFUSE(t)
	s := openALSStore(t, fuse.Mountpoint+":ref")
	if _, err := s.Create(CreateOptions{ID: "taken", Names: []string{"taken-name"}, ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(CreateOptions{ID: "broken", ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(s.GraphRoot(), "overlay", "broken")); err != nil {
		t.Fatal(err)
	}

	infoOf := func(fields map[string]any) []byte {
		b, _ := json.Marshal(fields)
		return b
	}
	for i, tc := range []struct {
		name      string
		info      func(toc digest.Digest) []byte
		id        string
		parent    string
		names     []string
		lookupErr error // from LookupAdditionalLayer
		putErr    error // from PutAs
		mention   string
	}{
		{name: "info not JSON", info: func(digest.Digest) []byte { return []byte("{not json") },
			lookupErr: driver.ErrInvalidLayerData, mention: "not a layer record"},
		{name: "info toc-digest differs", info: func(digest.Digest) []byte {
			return infoOf(map[string]any{"toc-digest": digest.FromString("other")})
		}, lookupErr: driver.ErrInvalidLayerData, mention: "asked for"},
		{name: "info without toc-digest", info: func(digest.Digest) []byte { return []byte("{}") },
			lookupErr: driver.ErrInvalidLayerData, mention: "toc-digest"},
		{name: "info bad compressed digest", info: func(toc digest.Digest) []byte {
			return infoOf(map[string]any{"toc-digest": toc, "compressed-diff-digest": "sha256:../../x"})
		}, lookupErr: driver.ErrInvalidLayerData, mention: "compressed-diff-digest"},
		{name: "info bad expected diff ID", info: func(toc digest.Digest) []byte {
			return infoOf(map[string]any{"toc-digest": toc, "flags": map[string]any{"expected-layer-diffid": "md5:00"}})
		}, lookupErr: driver.ErrInvalidLayerData, mention: "expected-layer-diffid"},
		{name: "info negative size", info: func(toc digest.Digest) []byte {
			return infoOf(map[string]any{"toc-digest": toc, "compressed-size": -5})
		}, lookupErr: driver.ErrInvalidLayerData, mention: "negative"},
		{name: "info unknown compression", info: func(toc digest.Digest) []byte {
			return infoOf(map[string]any{"toc-digest": toc, "compression": 9})
		}, lookupErr: driver.ErrInvalidLayerData, mention: "compression"},
		{name: "C19 bad id", id: "../x", putErr: driver.ErrInvalidArgument},
		{name: "id exists", id: "taken", putErr: driver.ErrLayerExists, mention: "taken"},
		{name: "name in use", names: []string{"taken-name"}, putErr: driver.ErrNameInUse},
		{name: "unknown parent", parent: "nosuch", putErr: driver.ErrLayerUnknown, mention: "nosuch"},
		{name: "parent dirs gone", parent: "broken", putErr: driver.ErrLayerUnknown, mention: "broken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			toc := digest.FromString(tc.name)
			spec := als.Layer{Ref: alsRef, TOCDigest: toc}
			if tc.info != nil {
				spec.Info = tc.info(toc)
			}
			fuse.AddLayer(t, spec)
			id := tc.id
			if id == "" {
				id = "failed" + string(rune('a'+i))
			}
			before, _ := s.List()

			a, err := s.LookupAdditionalLayer(toc, alsRef)
			if err == nil {
				_, err = a.PutAs(id, tc.parent, tc.names)
				a.Release()
				if !errors.Is(err, tc.putErr) {
					t.Fatalf("PutAs: %v, want %v", err, tc.putErr)
				}
			} else if !errors.Is(err, tc.lookupErr) {
				t.Fatalf("lookup: %v, want %v", err, tc.lookupErr)
			}
			if tc.mention != "" && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if id != "taken" {
				assertNoLayer(t, s.Store, id)
			}
			if after, _ := s.List(); len(after) != len(before) {
				t.Errorf("layers %d -> %d", len(before), len(after))
			}
			if c := fuse.Counts(alsRef, toc); c.Refs != 0 || c.Uses != c.Releases || c.Untracked != 0 {
				t.Errorf("counts do not balance: %+v", c)
			}
		})
	}

	t.Run("C19 bad digest", func(t *testing.T) {
		for _, d := range []digest.Digest{"sha256:../../x", "md5:d41d8cd98f00b204e9800998ecf8427e",
			digest.Digest("sha256:" + strings.Repeat("A", 64)), digest.Digest("sha256:" + strings.Repeat("a", 63))} {
			if _, err := s.LookupAdditionalLayer(d, alsRef); !errors.Is(err, driver.ErrInvalidArgument) {
				t.Errorf("%s: %v, want invalid argument", d, err)
			}
		}
	})
	t.Run("C30 not offered", func(t *testing.T) {
		if _, err := s.LookupAdditionalLayer(digest.FromString("absent"), alsRef); !errors.Is(err, driver.ErrLayerUnknown) {
			t.Errorf("%v, want layer unknown", err)
		}
	})
}

// TestAdditionalLayerStoreGoneC32: with the store unmounted, mounting the
// ALS layer fails naming it and the store path; deleting it works and
// touches only strata's files; once the store is back a new put mounts.
func TestAdditionalLayerStoreGoneC32(t *testing.T) {
	testutil.RequireRoot(t)
	fuse := als.StartFUSE(t)
	toc := digest.FromString("gone")
	fuse.AddLayer(t, als.Layer{Ref: alsRef, TOCDigest: toc, Files: map[string]string{"f": "x"}})
	s := openALSStore(t, fuse.Mountpoint+":ref")

	put := func(id string) {
		t.Helper()
		a, err := s.LookupAdditionalLayer(toc, alsRef)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Release()
		if _, err := a.PutAs(id, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	put("als1")
	fuse.Stop(t)
	_, err := s.Mount("als1", MountOptions{ReadOnly: true})
	if !errors.Is(err, driver.ErrAdditionalLayerStoreGone) || !strings.Contains(err.Error(), "als1") ||
		!strings.Contains(err.Error(), fuse.Mountpoint) {
		t.Fatalf("mount with store gone: %v", err)
	}
	if err := s.Delete("als1"); err != nil {
		t.Fatalf("delete with store gone: %v", err)
	}
	assertNoLayer(t, s.Store, "als1")

	fuse.Start(t)
	put("als2")
	merged, err := s.Mount("als2", MountOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(merged, "f")); err != nil || string(got) != "x" {
		t.Fatalf("f = %q, %v", got, err)
	}
	if _, err := s.Unmount("als2", false); err != nil {
		t.Fatal(err)
	}
}

package overlay

import (
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/als"
)

// TestALSLayerTwiceInOneChain: an image may repeat a layer, so two layers
// of one chain can come from the same store layer. overlayfs refuses a
// lower dir given twice; the stack still mounts, read-only and read-write,
// with the store layer's files visible.
func TestALSLayerTwiceInOneChain(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.NewDir(t)
	toc := digest.FromString("repeated")
	store.AddLayer(t, als.Layer{Ref: alsTestRef, TOCDigest: toc, Files: map[string]string{"f": "from als"}})
	d := newALSDriver(t, store.Root+":ref")

	parent := ""
	for _, id := range []string{"first", "second"} {
		l, err := d.LookupAdditionalLayer(toc, alsTestRef)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CreateAs(id, parent); err != nil {
			t.Fatalf("CreateAs %s: %v", id, err)
		}
		l.Release()
		parent = id
	}
	if err := d.Create("top", "second", nil); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		id string
		ro bool
	}{{"second", true}, {"top", false}} {
		mnt, err := d.Mount(tc.id, driver.MountOpts{ReadOnly: tc.ro})
		if err != nil {
			t.Fatalf("mount %s (read-only %v): %v", tc.id, tc.ro, err)
		}
		got, err := os.ReadFile(filepath.Join(mnt, "f"))
		if err != nil || string(got) != "from als" {
			t.Errorf("%s: f = %q, %v; want %q", tc.id, got, err, "from als")
		}
		if err := d.Unmount(tc.id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStaleUseFileRemoved: a `use` file left in a store that does not
// count (a process killed between creating and removing it) is removed by
// the next notification instead of blocking every later one.
func TestStaleUseFileRemoved(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.NewDir(t)
	toc := digest.FromString("stale-use")
	layerDir := store.AddLayer(t, als.Layer{Ref: alsTestRef, TOCDigest: toc, Files: map[string]string{"f": "x"}})
	use := filepath.Join(layerDir, "use")
	if err := os.WriteFile(use, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := newALSDriver(t, store.Root+":ref")

	l, err := d.LookupAdditionalLayer(toc, alsTestRef)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if _, err := os.Lstat(use); !os.IsNotExist(err) {
		t.Fatalf("stale use file still there after a lookup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(layerDir, "diff", "f")); err != nil {
		t.Fatalf("the store's own files changed: %v", err)
	}
}

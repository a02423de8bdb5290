package overlay

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/als"
)

// TestReservedIDs: "l" and "staging" are valid layer ids but name the
// driver's own dirs in its home; every way of making a layer refuses them
// and leaves those dirs as they were.
func TestReservedIDs(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.NewDir(t)
	toc := digest.FromString("reserved")
	store.AddLayer(t, als.Layer{Ref: alsTestRef, TOCDigest: toc, Files: map[string]string{"f": "x"}})
	d := newALSDriver(t, store.Root+":ref")
	mustCreate(t, d, "base", "")
	alsLayer, err := d.LookupAdditionalLayer(toc, alsTestRef)
	if err != nil {
		t.Fatal(err)
	}
	defer alsLayer.Release()

	makers := []struct {
		name string
		make func(id string) error
	}{
		{"Create", func(id string) error { return d.Create(id, "", nil) }},
		{"CreateReadWrite", func(id string) error { return d.CreateReadWrite(id, "base", nil) }},
		{"Commit", func(id string) error {
			st, err := d.Stage()
			if err != nil {
				return err
			}
			defer st.Discard()
			if _, err := st.ApplyDiff(driver.ApplyDiffOpts{Diff: testutil.NewTar().File("f", "x").Reader()}); err != nil {
				return err
			}
			return st.Commit(id, "", nil)
		}},
		{"CreateAs", func(id string) error { return alsLayer.CreateAs(id, "") }},
	}
	for _, id := range []string{"l", "staging"} {
		for _, m := range makers {
			t.Run(m.name+"/"+id, func(t *testing.T) {
				before, _ := listHome(t, d)
				err := m.make(id)
				if !errors.Is(err, driver.ErrInvalidArgument) || !strings.Contains(err.Error(), "reserved") {
					t.Fatalf("%s(%q) = %v, want ErrInvalidArgument saying the name is reserved", m.name, id, err)
				}
				after, _ := listHome(t, d)
				if strings.Join(before, " ") != strings.Join(after, " ") {
					t.Errorf("home changed: %v -> %v", before, after)
				}
				if _, err := os.Lstat(filepath.Join(d.home, id, diffName)); err == nil {
					t.Errorf("%s/%s exists", id, diffName)
				}
				// The layer store removes a layer whose creation failed:
				// there is no such layer, and the driver's dir stays.
				if err := d.Remove(id); err != nil {
					t.Errorf("Remove(%q) = %v, want nil (no such layer)", id, err)
				}
				if again, _ := listHome(t, d); strings.Join(before, " ") != strings.Join(again, " ") {
					t.Errorf("Remove(%q) changed the home: %v -> %v", id, before, again)
				}
			})
		}
	}
}

package layers

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/overlay"
	"github.com/stratafs/strata/testutil"
)

// TestOpenReadWriteOnReadOnlyFS: a read-write Open of a store on a
// read-only mount returns ErrReadOnlyStore saying to open it read-only
// (the lock file cannot be written), instead of panicking in lockfile;
// a read-only Open of the same roots works.
func TestOpenReadWriteOnReadOnlyFS(t *testing.T) {
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	s, drv := openOverlay(t, graph, run)
	if _, err := s.Create(CreateOptions{ID: "ctr"}); err != nil {
		t.Fatal(err)
	}
	_ = drv.Cleanup()

	ro := readOnlyBind(t, filepath.Dir(graph))
	roGraph, roRun := filepath.Join(ro, filepath.Base(graph)), filepath.Join(ro, filepath.Base(run))
	rdrv, err := overlay.New(filepath.Join(roGraph, "overlay"), overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdrv.Cleanup() })

	// A fresh graph root under the read-only mount too: no dirs to find.
	empty := filepath.Join(filepath.Dir(graph), "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, graph, run string }{
		{"existing store", roGraph, roRun},
		{"no store yet", filepath.Join(ro, "empty", "graph"), filepath.Join(ro, "empty", "run")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rs *Store
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Open panicked: %v", p)
					}
				}()
				rs, err = Open(Options{GraphRoot: tc.graph, RunRoot: tc.run, Driver: rdrv})
			}()
			if err == nil {
				rs.Close()
				t.Fatal("read-write Open on a read-only mount succeeded")
			}
			if !errors.Is(err, driver.ErrReadOnlyStore) || !strings.Contains(err.Error(), "open the store read-only") {
				t.Errorf("Open = %v, want ErrReadOnlyStore saying to open read-only", err)
			}
		})
	}

	rs, err := Open(Options{GraphRoot: roGraph, RunRoot: roRun, Driver: rdrv, ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open: %v", err)
	}
	defer rs.Close()
	if _, err := rs.Get("ctr"); err != nil {
		t.Errorf("Get on the read-only store: %v", err)
	}
}

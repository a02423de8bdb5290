package overlay

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// bindAt bind-mounts dir at a new dir under t.TempDir and returns it; the
// cleanup unmounts it.
func bindAt(t *testing.T, dir string) string {
	t.Helper()
	at := filepath.Join(t.TempDir(), "bind")
	if err := unix.Mkdir(at, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, at, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(at, unix.MNT_DETACH) })
	return at
}

// remountReadOnly makes the bind mount at read-only.
func remountReadOnly(t *testing.T, at string) {
	t.Helper()
	if err := unix.Mount("", at, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
}

// TestStageReadOnlyHome: Stage on a home that cannot be written fails with
// ErrReadOnlyStore, whether the driver was opened read-only, opened on a
// read-only mount, or its mount became read-only after New.
func TestStageReadOnlyHome(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name string
		open func(t *testing.T, home string) *Driver
	}{
		{"Options.ReadOnly", func(t *testing.T, home string) *Driver {
			return openTestDriver(t, home, Options{ReadOnly: true})
		}},
		{"read-only mount", func(t *testing.T, home string) *Driver {
			at := bindAt(t, filepath.Dir(home))
			remountReadOnly(t, at)
			return openTestDriver(t, filepath.Join(at, "overlay"), Options{})
		}},
		{"made read-only after New", func(t *testing.T, home string) *Driver {
			at := bindAt(t, filepath.Dir(home))
			d := openTestDriver(t, filepath.Join(at, "overlay"), Options{})
			remountReadOnly(t, at)
			return d
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			graph, _ := testutil.TempStore(t)
			home := filepath.Join(graph, "overlay")
			openTestDriver(t, home, Options{}) // creates the home
			d := tc.open(t, home)

			st, err := d.Stage()
			if err == nil {
				st.Discard()
				t.Fatal("Stage on a read-only home succeeded")
			}
			if !errors.Is(err, driver.ErrReadOnlyStore) {
				t.Errorf("Stage = %v, want ErrReadOnlyStore", err)
			}
		})
	}
}

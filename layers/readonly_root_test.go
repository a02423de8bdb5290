package layers

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/overlay"
	"github.com/stratafs/strata/testutil"
)

// readOnlyBind bind-mounts dir read-only at a new dir under t.TempDir and
// returns it; the cleanup unmounts it.
func readOnlyBind(t *testing.T, dir string) string {
	t.Helper()
	ro := filepath.Join(t.TempDir(), "ro")
	if err := unix.Mkdir(ro, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, ro, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(ro, unix.MNT_DETACH) })
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	return ro
}

// TestReadOnlyRoot: a graph root on a read-only mount opens (the driver
// needs no probe dir), reads work and writes fail with ErrReadOnlyStore.
func TestReadOnlyRoot(t *testing.T) {
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	s, drv := openOverlay(t, graph, run)
	img, err := s.Put(PutOptions{ID: "img"}, bytes.NewReader(copyUpBaseTar("root:x:0:0\n")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(CreateOptions{ID: "ctr", Parent: img.ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = drv.Cleanup()

	ro := readOnlyBind(t, graph)
	rdrv, err := overlay.New(filepath.Join(ro, "overlay"), overlay.Options{})
	if err != nil {
		t.Fatalf("overlay.New on a read-only home: %v", err)
	}
	t.Cleanup(func() { _ = rdrv.Cleanup() })
	rs, err := Open(Options{GraphRoot: ro, RunRoot: filepath.Join(t.TempDir(), "run"), Driver: rdrv, ReadOnly: true})
	if err != nil {
		t.Fatalf("Open read-only: %v", err)
	}
	defer rs.Close()

	list, err := rs.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %d layers, %v; want 2", len(list), err)
	}
	if !rdrv.Exists(img.ID) {
		t.Errorf("Exists(%s) = false", img.ID)
	}
	if _, err := rdrv.DiffPath(img.ID); err != nil {
		t.Errorf("DiffPath: %v", err)
	}
	if mounted, err := rdrv.Mounted(img.ID); err != nil || mounted {
		t.Errorf("Mounted = %v, %v", mounted, err)
	}
	status := map[string]string{}
	for _, p := range rdrv.Status() {
		status[p.Key] = p.Value
	}
	if status["Read-only"] != "true" || status["Supports d_type"] != "true" {
		t.Errorf("Status = %v", status)
	}
	var buf bytes.Buffer
	if _, err := rs.Diff(img.ID, &buf); err != nil || buf.Len() == 0 {
		t.Errorf("Diff = %d bytes, %v", buf.Len(), err)
	}
	if _, err := rs.Changes("ctr"); err != nil {
		t.Errorf("Changes: %v", err)
	}

	// A read-only mount needs no write; its mount point exists.
	path, err := rdrv.Mount(img.ID, driver.MountOpts{ReadOnly: true})
	if err != nil {
		t.Errorf("read-only Mount: %v", err)
	} else if err := rdrv.Unmount(img.ID); err != nil {
		t.Errorf("Unmount %s: %v", path, err)
	}

	writes := []struct {
		name string
		do   func() error
	}{
		{"driver Create", func() error { return rdrv.Create("new", "", nil) }},
		{"driver Remove", func() error { return rdrv.Remove(img.ID) }},
		{"driver ApplyDiff", func() error {
			_, err := rdrv.ApplyDiff("ctr", driver.ApplyDiffOpts{Diff: bytes.NewReader(nil)})
			return err
		}},
		{"driver read-write Mount", func() error {
			_, err := rdrv.Mount("ctr", driver.MountOpts{})
			return err
		}},
		{"store Create", func() error { _, err := rs.Create(CreateOptions{}); return err }},
	}
	for _, w := range writes {
		if err := w.do(); !errors.Is(err, driver.ErrReadOnlyStore) {
			t.Errorf("%s = %v, want ErrReadOnlyStore", w.name, err)
		}
	}
}

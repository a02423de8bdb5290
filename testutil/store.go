package testutil

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// TempStore returns a graph root and a run root below a fresh t.TempDir().
// Its cleanup lazily unmounts (MNT_DETACH) every mount found below the temp
// dir, deepest first, before the temp dir is removed, so a failing test
// never leaves mounts behind.
func TempStore(t testing.TB) (graphRoot, runRoot string) {
	t.Helper()
	base := t.TempDir()
	graphRoot = filepath.Join(base, "graph")
	runRoot = filepath.Join(base, "run")
	for _, dir := range []string{graphRoot, runRoot} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatalf("temp store: %v", err)
		}
	}
	// Registered after t.TempDir, so it runs before the dir is removed.
	t.Cleanup(func() {
		if err := UnmountBelow(base); err != nil {
			t.Errorf("temp store cleanup: %v", err)
		}
	})
	return graphRoot, runRoot
}

// UnmountBelow lazily unmounts every mount whose mount point is dir or lies
// below it, deepest first and, on one mount point, newest first. It repeats
// until /proc/self/mountinfo lists none (mounts stacked on one point).
func UnmountBelow(dir string) error {
	dir = filepath.Clean(dir)
	for range 64 {
		mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
			below := m.Mountpoint == dir || strings.HasPrefix(m.Mountpoint, dir+"/")
			return !below, false
		})
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		sort.Slice(mounts, func(i, j int) bool {
			di := strings.Count(mounts[i].Mountpoint, "/")
			dj := strings.Count(mounts[j].Mountpoint, "/")
			if di != dj {
				return di > dj
			}
			return mounts[i].ID > mounts[j].ID
		})
		for _, m := range mounts {
			err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
			if err != nil && err != unix.EINVAL && err != unix.ENOENT {
				return &os.PathError{Op: "unmount", Path: m.Mountpoint, Err: err}
			}
		}
	}
	return nil
}

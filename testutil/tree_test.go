package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSnapshotAndDiff(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "d"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "d/f"), []byte("data"), 0o644))
	must(os.Link(filepath.Join(dir, "d/f"), filepath.Join(dir, "g")))
	must(os.Symlink("d/f", filepath.Join(dir, "l")))
	must(unix.Mkfifo(filepath.Join(dir, "p"), 0o600))

	a := Snapshot(t, dir)
	if n := a["d/f"]; n.Type != "file" || n.Size != 4 || n.Hardlink != "d/f" || a["g"].Hardlink != "d/f" ||
		n.SHA256 != "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7" {
		t.Errorf("d/f = %+v", n)
	}
	if a["l"].Type != "symlink" || a["l"].Link != "d/f" || a["p"].Type != "fifo" || a["."].Type != "dir" {
		t.Errorf("tree = %+v", a)
	}
	if d := a.Diff(Snapshot(t, dir)); len(d) != 0 {
		t.Errorf("same dir differs: %v", d)
	}

	must(unix.Chmod(filepath.Join(dir, "d/f"), 0o4755))
	must(os.Chtimes(filepath.Join(dir, "d"), time.Unix(1, 0), time.Unix(1, 0)))
	must(os.Remove(filepath.Join(dir, "p")))
	must(os.WriteFile(filepath.Join(dir, "new"), nil, 0o644))
	b := Snapshot(t, dir)
	diff := strings.Join(a.Diff(b), "\n")
	for _, want := range []string{"d/f: mode 0644 != 4755", "d: mtime", "p: only in first", "new: only in second"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
	if got := a.Without("p", "d").Paths(); strings.Join(got, ",") != ".,g,l" {
		t.Errorf("Without = %v", got)
	}
}

func TestSnapshotXattrsAndDevices(t *testing.T) {
	RequireRoot(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(dir, "c"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	tree := Snapshot(t, dir)
	if tree["f"].Xattrs["trusted.overlay.opaque"] != "y" || tree["c"].Rdev != "1:3" || tree["c"].Type != "char" {
		t.Errorf("tree = %+v", tree)
	}
}

func TestSnapshotLargeSparseFile(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 1<<35); err != nil {
		t.Fatal(err)
	}
	f.Close()
	start := time.Now()
	tree := Snapshot(t, dir)
	if !strings.HasPrefix(tree["big"].SHA256, "blocks:") || time.Since(start) > 10*time.Second {
		t.Errorf("big = %+v after %v", tree["big"], time.Since(start))
	}
}

func TestTempStoreUnmounts(t *testing.T) {
	RequireRoot(t)
	var mnt string
	t.Run("store", func(t *testing.T) {
		graph, run := TempStore(t)
		if filepath.Dir(graph) != filepath.Dir(run) {
			t.Fatalf("roots %s %s", graph, run)
		}
		mnt = filepath.Join(graph, "m")
		if err := os.MkdirAll(filepath.Join(mnt, "inner"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(mnt, "inner"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", filepath.Join(mnt, "inner"), "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
	})
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), mnt) {
		t.Errorf("mount %s left behind", mnt)
	}
}

package layers

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/overlay"
	"github.com/stratafs/strata/testutil"
)

// openOverlay opens a store with the real overlay driver at graph/overlay.
func openOverlay(t *testing.T, graph, run string) (*Store, driver.Driver) {
	t.Helper()
	drv, err := overlay.New(filepath.Join(graph, "overlay"), overlay.Options{})
	if err != nil {
		t.Fatalf("overlay.New: %v", err)
	}
	s, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, drv
}

// overlayStore opens a store on the overlay driver in a TempStore; the
// cleanup unmounts everything below it.
func overlayStore(t *testing.T) (*Store, driver.Driver) {
	t.Helper()
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	return openOverlay(t, graph, run)
}

func isMountpoint(t *testing.T, path string) bool {
	t.Helper()
	mounted, err := mountinfo.Mounted(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return mounted
}

// listTree returns the relative paths below dir, sorted. (testutil.Snapshot
// reads xattrs, which fails with ERANGE on an overlay mount here.)
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestOverlayPutDigests(t *testing.T) {
	tarBytes := testutil.NewTar().
		Dir("etc/", testutil.Mode(0o755)).
		File("etc/hostname", "strata\n", testutil.Owner(0, 0)).
		File("home/u/.profile", "export X=1\n", testutil.Owner(1000, 1000)).
		Bytes()
	tests := []struct {
		name  string
		input []byte
		want  Compression
	}{
		{"plain", tarBytes, Uncompressed},
		{"gzip", testutil.Gzip(tarBytes), Gzip},
		{"zstd", testutil.Zstd(tarBytes), Zstd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, drv := overlayStore(t)
			l, err := s.Put(PutOptions{ExpectedUncompressedDigest: sha(tarBytes)}, bytes.NewReader(tc.input))
			if err != nil {
				t.Fatal(err)
			}
			if l.CompressedDigest != sha(tc.input) || l.CompressedSize != int64(len(tc.input)) ||
				l.UncompressedDigest != sha(tarBytes) || l.UncompressedSize != int64(len(tarBytes)) ||
				l.CompressionType != tc.want {
				t.Errorf("record %+v", l)
			}
			if !slices.Equal(l.UIDs, []uint32{0, 1000}) || !slices.Equal(l.GIDs, []uint32{0, 1000}) {
				t.Errorf("uidset %v gidset %v", l.UIDs, l.GIDs)
			}
			diff, err := drv.DiffPath(l.ID)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(diff, "home/u/.profile")); err != nil || string(b) != "export X=1\n" {
				t.Errorf("applied file: %q, %v", b, err)
			}
			checkTarSplit(t, s, l.ID, tarBytes)
		})
	}
}

func TestOverlayChainMount(t *testing.T) {
	s, _ := overlayStore(t)
	l1 := testutil.NewTar().Dir("etc/").File("etc/gone", "x").Dir("foo/").File("foo/old", "o").
		File("keep", "k").File("shadowed", "1")
	l2 := testutil.NewTar().Dir("etc/").Whiteout("etc/gone").Dir("foo/").Opaque("foo").File("foo/new", "n").
		File("shadowed", "2")
	l3 := testutil.NewTar().Whiteout("keep").File("bar", "b")
	parent := ""
	var top *Layer
	for i, tb := range []*testutil.Tar{l1, l2, l3} {
		l, err := s.Put(PutOptions{ID: []string{"one", "two", "three"}[i], Parent: parent}, bytes.NewReader(tb.Gzip()))
		if err != nil {
			t.Fatalf("Put layer %d: %v", i+1, err)
		}
		parent, top = l.ID, l
	}

	path, err := s.Mount(top.ID, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !isMountpoint(t, path) {
		t.Fatalf("%s is not a mount point", path)
	}
	want := []string{"bar", "etc", "foo", "foo/new", "shadowed"}
	if got := listTree(t, path); !slices.Equal(got, want) {
		t.Errorf("merged tree %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(path, "shadowed")); string(b) != "2" {
		t.Errorf("shadowed = %q, want the upper layer's", b)
	}
	if err := os.WriteFile(filepath.Join(path, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write into an image layer mount = %v, want EROFS", err)
	}

	if again, err := s.Mount("three", MountOptions{}); err != nil || again != path {
		t.Fatalf("second Mount = %s, %v", again, err)
	}
	if n, _ := s.MountCount("three"); n != 2 {
		t.Errorf("count %d, want 2", n)
	}
	if err := s.Delete("three"); !errors.Is(err, driver.ErrLayerMounted) {
		t.Errorf("Delete(mounted) = %v", err)
	}
	if still, err := s.Unmount("three", false); err != nil || !still || !isMountpoint(t, path) {
		t.Fatalf("Unmount 1 of 2 = %v, %v", still, err)
	}
	if still, err := s.Unmount("three", false); err != nil || still || isMountpoint(t, path) {
		t.Fatalf("Unmount 2 of 2 = %v, %v (mounted %v)", still, err, isMountpoint(t, path))
	}

	// A writable layer on top mounts read-write.
	ctr, err := s.Create(CreateOptions{Parent: "three"})
	if err != nil {
		t.Fatal(err)
	}
	path, err = s.Mount(ctr.ID, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "written"), []byte("w"), 0o644); err != nil {
		t.Errorf("write into a container layer: %v", err)
	}
	if _, err := s.Unmount(ctr.ID, true); err != nil {
		t.Fatal(err)
	}
}

// TestOverlayDanglingC27: A<-B<-C; B's dir removed by hand.
func TestOverlayDanglingC27(t *testing.T) {
	s, _ := overlayStore(t)
	for _, l := range [][2]string{{"A", ""}, {"B", "A"}, {"C", "B"}} {
		if _, err := s.Put(PutOptions{ID: l[0], Parent: l[1]}, testutil.NewTar().File(l[0], l[0]).Reader()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("A"); !errors.Is(err, driver.ErrLayerHasChildren) {
		t.Fatalf("C27 Delete(A) = %v", err)
	}
	if err := os.RemoveAll(filepath.Join(s.GraphRoot(), "overlay", "B")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount("C", MountOptions{}); err == nil || !strings.Contains(err.Error(), " B ") {
		t.Fatalf("C27 Mount(C) = %v, want an error naming B", err)
	}
	for _, id := range []string{"C", "B"} {
		if err := s.Delete(id); err != nil {
			t.Fatalf("C27 Delete(%s): %v", id, err)
		}
	}
	path, err := s.Mount("A", MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(path, "A")); err != nil || string(b) != "A" {
		t.Errorf("A's file: %q, %v", b, err)
	}
	if _, err := s.Unmount("A", false); err != nil {
		t.Fatal(err)
	}
}

// TestOverlayMountCountsC28 covers C28 with real mounts, including another
// process unmounting.
func TestOverlayMountCountsC28(t *testing.T) {
	s, _ := overlayStore(t)
	if _, err := s.Put(PutOptions{ID: "L"}, testutil.NewTar().File("f", "x").Reader()); err != nil {
		t.Fatal(err)
	}
	writeMountpoints(t, s, `[{"id":"L","path":"/stale/after/reboot","count":2}]`)
	path, err := s.Mount("L", MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.MountCount("L"); n != 1 || !isMountpoint(t, path) {
		t.Fatalf("C28 count %d mounted %v; want 1, true", n, isMountpoint(t, path))
	}
	if still, err := s.Unmount("L", false); err != nil || still || isMountpoint(t, path) {
		t.Fatalf("C28 Unmount = %v, %v", still, err)
	}

	if _, err := s.Mount("L", MountOptions{}); err != nil {
		t.Fatal(err)
	}
	if code := inChild(t, s, "unmount", "STORE_DRIVER=overlay", "LAYER_ID=L"); code != 0 {
		t.Fatalf("child exit %d", code)
	}
	if _, err := s.Create(CreateOptions{ID: "later"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.MountCount("L"); n != 0 || isMountpoint(t, path) {
		t.Fatalf("C28 after the other process unmounted: count %d, mounted %v", n, isMountpoint(t, path))
	}
}

func TestOverlaySecondProcessAndCrash(t *testing.T) {
	s, _ := overlayStore(t)
	if _, err := s.Put(PutOptions{ID: "base"}, sampleTar().Reader()); err != nil {
		t.Fatal(err)
	}
	if code := inChild(t, s, "put", "STORE_DRIVER=overlay", "LAYER_ID=child", "PARENT_ID=base"); code != 0 {
		t.Fatalf("child exit %d", code)
	}
	if l, err := s.Get("child"); err != nil || l.UncompressedDigest != sha(sampleTar().Bytes()) {
		t.Fatalf("Get(child) = %v, %v", l, err)
	}

	if code := inChild(t, s, "crash-put", "STORE_DRIVER=overlay", "LAYER_ID=crashed"); code != 7 {
		t.Fatalf("crash child exit %d", code)
	}
	dir := filepath.Join(s.GraphRoot(), "overlay", "crashed")
	if err := s.Driver().Create("crashed", "", nil); err != nil {
		t.Fatal(err)
	}
	s2, _ := openOverlay(t, s.GraphRoot(), s.RunRoot())
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("read-write open left the crashed layer's dir: %v", err)
	}
	if list, err := s2.List(); err != nil || ids(list) != "base,child" {
		t.Errorf("List = %s, %v", ids(list), err)
	}
}

// TestOverlayENOSPCC25: a save that runs out of space leaves the previous
// layers.json in place.
func TestOverlayENOSPCC25(t *testing.T) {
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	layerDir := filepath.Join(graph, "overlay-layers")
	if err := os.MkdirAll(layerDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", layerDir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(layerDir, unix.MNT_DETACH) })
	s, _ := openOverlay(t, graph, run)
	if _, err := s.Put(PutOptions{ID: "a", Names: []string{"old"}}, sampleTar().Reader()); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(s.layersPath())
	if err != nil {
		t.Fatal(err)
	}
	filler, err := os.Create(filepath.Join(layerDir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	filler.Close()

	// 64 names of 256 bytes: more than the few bytes left.
	var names []string
	for i := range 64 {
		names = append(names, fmt.Sprintf("%03d%s", i, strings.Repeat("n", MaxNameLength-3)))
	}
	err = s.SetNames("a", names)
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("C25 SetNames on a full disk = %v, want ENOSPC", err)
	}
	after, _ := os.ReadFile(s.layersPath())
	if !bytes.Equal(before, after) {
		t.Fatal("C25 layers.json changed by a failed save")
	}
	if l, err := s.Get("a"); err != nil || !slices.Equal(l.Names, []string{"old"}) {
		t.Errorf("after failed save Get = %v, %v", l, err)
	}
}

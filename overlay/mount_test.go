package overlay

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// listTree returns every path below dir (relative, dirs with a trailing
// slash), sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if e.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// buildWhiteoutChain makes A <- B <- C: B deletes a/1 with a whiteout and
// makes b opaque; C adds c and deletes keep/gone.
func buildWhiteoutChain(t *testing.T, d *Driver) {
	t.Helper()
	mustCreate(t, d, "A", "")
	writeDiffFile(t, d, "A", "a/1", "a1")
	writeDiffFile(t, d, "A", "a/2", "a2")
	writeDiffFile(t, d, "A", "b/x", "bx")
	writeDiffFile(t, d, "A", "keep/gone", "g")
	writeDiffFile(t, d, "A", "keep/stay", "s")
	mustCreate(t, d, "B", "A")
	writeWhiteout(t, d, "B", "a/1")
	makeOpaque(t, d, "B", "b")
	writeDiffFile(t, d, "B", "b/y", "by")
	mustCreate(t, d, "C", "B")
	writeDiffFile(t, d, "C", "c", "c")
	writeWhiteout(t, d, "C", "keep/gone")
}

func TestMountChainWhiteouts(t *testing.T) {
	for _, classic := range []bool{false, true} {
		name := "fsopen"
		if classic {
			name = "mount2"
		}
		t.Run(name, func(t *testing.T) {
			d := newTestDriver(t, Options{classicMount: classic})
			if d.feat.newAPI == classic {
				t.Fatalf("mount API new=%v with classicMount=%v", d.feat.newAPI, classic)
			}
			buildWhiteoutChain(t, d)
			want := []string{"a/", "a/2", "b/", "b/y", "c", "keep/", "keep/stay"}
			for _, ro := range []bool{true, false} {
				p, err := d.Mount("C", driver.MountOpts{ReadOnly: ro})
				if err != nil {
					t.Fatalf("Mount(C, ro=%v): %v", ro, err)
				}
				if got := listTree(t, p); !slices.Equal(got, want) {
					t.Errorf("ro=%v merged = %v, want %v", ro, got, want)
				}
				if err := d.Unmount("C"); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestMountReadOnlyAndReadWrite(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	writeDiffFile(t, d, "A", "base", "base")
	mustCreate(t, d, "R", "") // parentless: ro needs the empty stand-in lower
	writeDiffFile(t, d, "R", "own", "own")
	mustCreate(t, d, "B", "A")

	tests := []struct {
		id        string
		ro        bool
		wantFiles []string
	}{
		{"R", true, []string{"own"}},
		{"R", false, []string{"own"}},
		{"B", true, []string{"base"}},
		{"B", false, []string{"base"}},
	}
	for _, tc := range tests {
		p, err := d.Mount(tc.id, driver.MountOpts{ReadOnly: tc.ro})
		if err != nil {
			t.Fatalf("Mount(%s, ro=%v): %v", tc.id, tc.ro, err)
		}
		if got := listTree(t, p); !slices.Equal(got, tc.wantFiles) {
			t.Errorf("Mount(%s, ro=%v) = %v, want %v", tc.id, tc.ro, got, tc.wantFiles)
		}
		err = os.WriteFile(filepath.Join(p, "new"), []byte("n"), 0o644)
		switch {
		case tc.ro && !errors.Is(err, unix.EROFS):
			t.Errorf("write into ro mount of %s: %v, want EROFS", tc.id, err)
		case !tc.ro && err != nil:
			t.Errorf("write into rw mount of %s: %v", tc.id, err)
		case !tc.ro:
			if got := readString(t, filepath.Join(d.diffDir(tc.id), "new")); got != "n" {
				t.Errorf("rw write of %s did not land in its diff: %q", tc.id, got)
			}
			if err := os.Remove(filepath.Join(p, "new")); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Unmount(tc.id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(d.diffDir("A"), "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("write reached parent A: %v", err)
	}
}

func mustMounted(t *testing.T, d *Driver, id string, want bool) {
	t.Helper()
	got, err := d.Mounted(id)
	if err != nil || got != want {
		t.Fatalf("Mounted(%s) = %v, %v; want %v", id, got, err, want)
	}
}

func TestMountCounts(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")

	p1, err := d.Mount("A", driver.MountOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := d.Mount("A", driver.MountOpts{})
	if err != nil || p2 != p1 {
		t.Fatalf("second Mount = %q, %v; want %q", p2, err, p1)
	}
	if err := d.Unmount("A"); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, d, "A", true)
	if err := d.Unmount("A"); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, d, "A", false)
	if err := d.Unmount("A"); err != nil {
		t.Errorf("Unmount of an unmounted layer = %v, want nil", err)
	}
	if err := d.Unmount("nope"); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Errorf("Unmount(nope) = %v, want ErrLayerUnknown", err)
	}

	// Mounted by another process (another driver object stands in): this
	// one unmounts it at once.
	other := openTestDriver(t, d.home, Options{})
	if _, err := other.Mount("A", driver.MountOpts{}); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, d, "A", true)
	if err := d.Unmount("A"); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, d, "A", false)

	// The count says mounted, the table says not (another process
	// unmounted it): Mount mounts again.
	if _, err := d.Mount("A", driver.MountOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(d.mergedDir("A"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Mount("A", driver.MountOpts{}); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, d, "A", true)
	if err := d.Unmount("A"); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, d, "A", false)

	// Cleanup unmounts whatever is left, whatever the count.
	for range 3 {
		if _, err := d.Mount("A", driver.MountOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Cleanup(); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, d, "A", false)
}

func TestMountOptionsVisible(t *testing.T) {
	d := newTestDriver(t, Options{MountOptions: []string{"nodev"}})
	mustCreate(t, d, "A", "")
	mustCreate(t, d, "B", "A")
	p, err := d.Mount("B", driver.MountOpts{Options: []string{"nosuid,noexec", "volatile"}})
	if err != nil {
		t.Fatal(err)
	}
	m, ok := findMount(t, p)
	if !ok {
		t.Fatalf("%s not in mountinfo", p)
	}
	for _, o := range []string{"nodev", "nosuid", "noexec"} {
		if !hasOpt(m.mountOpts, o) {
			t.Errorf("mount options %v lack %s", m.mountOpts, o)
		}
	}
	// Linux shows volatile as fsync=volatile since 6.x.
	if !hasOpt(m.superOpts, "volatile") && !hasOpt(m.superOpts, "fsync=volatile") {
		t.Errorf("super options %v lack volatile", m.superOpts)
	}
	// The driver never adds metacopy=on (see copyUpOptions).
	if hasOpt(m.superOpts, "metacopy=on") {
		t.Errorf("super options %v have metacopy=on, which the driver must not add", m.superOpts)
	}
	if m.fsType != "overlay" {
		t.Errorf("fs type %q", m.fsType)
	}

	if _, err := d.Mount("A", driver.MountOpts{Options: []string{"upperdir=/tmp"}}); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Errorf("Mount with upperdir option = %v, want ErrInvalidArgument", err)
	}
}

func TestSplitOptions(t *testing.T) {
	got := splitOptions([]string{"nodev,metacopy=on", `context="system_u:object_r:c_t:s0:c1,c2"`, ",,ro"})
	want := []string{"nodev", "metacopy=on", "context=system_u:object_r:c_t:s0:c1,c2", "ro"}
	if !slices.Equal(got, want) {
		t.Errorf("splitOptions = %q, want %q", got, want)
	}
	overlay, flags, err := classifyOptions([]string{"nodev,nosuid", "index=off", "nodev", "rw"})
	if err != nil || !slices.Equal(overlay, []string{"index=off"}) ||
		flags.attr != unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID || flags.ms != unix.MS_NODEV|unix.MS_NOSUID {
		t.Errorf("classifyOptions = %q, %+v, %v", overlay, flags, err)
	}
	for _, bad := range []string{"lowerdir=/x", "workdir=/y", "lowerdir+=/z"} {
		if _, _, err := classifyOptions([]string{bad}); !errors.Is(err, driver.ErrInvalidArgument) {
			t.Errorf("classifyOptions(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

// C21: ':' and ',' in the graph root. Layer paths in mount options are
// relative to the home, so both mount methods take such a root.
func TestColonCommaRootC21(t *testing.T) {
	for _, classic := range []bool{false, true} {
		t.Run(map[bool]string{false: "fsopen", true: "mount2"}[classic], func(t *testing.T) {
			base := newTestDriver(t, Options{})
			home := filepath.Join(filepath.Dir(base.home), "a:b,c", "store", "overlay")
			d := openTestDriver(t, home, Options{classicMount: classic})
			mustCreate(t, d, "A", "")
			writeDiffFile(t, d, "A", "a", "a")
			mustCreate(t, d, "B", "A")
			writeDiffFile(t, d, "B", "b", "b")
			for _, ro := range []bool{true, false} {
				p, err := d.Mount("B", driver.MountOpts{ReadOnly: ro, Options: []string{"nodev"}})
				if err != nil {
					t.Fatalf("C21 Mount(B, ro=%v) under %s: %v", ro, home, err)
				}
				if got := listTree(t, p); !slices.Equal(got, []string{"a", "b"}) {
					t.Errorf("C21 merged = %v", got)
				}
				if m, ok := findMount(t, p); !ok || !hasOpt(m.mountOpts, "nodev") {
					t.Errorf("C21 mountinfo entry %+v, %v", m, ok)
				}
				if err := d.Unmount("B"); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// C24: a volatile mount that was not cleanly ended leaves
// work/work/incompat/volatile, which overlayfs refuses; Mount clears it.
func TestVolatileLeftoversC24(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	p, err := d.Mount("A", driver.MountOpts{Options: []string{"volatile"}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(p, "open"))
	if err != nil {
		t.Fatal(err)
	}
	// The process "dies": its mount is lazily detached while a file is
	// still open, and its counts are lost.
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mark := filepath.Join(d.workDir("A"), "work", "incompat", "volatile")
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("C24 setup: no volatile mark: %v", err)
	}

	d2 := openTestDriver(t, d.home, Options{})
	for _, opts := range [][]string{{"volatile"}, nil} {
		p, err := d2.Mount("A", driver.MountOpts{Options: opts})
		if err != nil {
			t.Fatalf("C24 Mount after volatile leftovers (options %v): %v", opts, err)
		}
		if got := listTree(t, p); !slices.Equal(got, []string{"open"}) {
			t.Errorf("C24 merged = %v, want [open]", got)
		}
		if err := d2.Unmount("A"); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

func TestMountErrors(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	mustCreate(t, d, "B", "A")
	mustCreate(t, d, "C", "B")

	if _, err := d.Mount("nope", driver.MountOpts{}); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Errorf("Mount(nope) = %v, want ErrLayerUnknown", err)
	}
	// C27: a parent's dir removed by hand: the error names it.
	if err := os.RemoveAll(d.layerDir("B")); err != nil {
		t.Fatal(err)
	}
	_, err := d.Mount("C", driver.MountOpts{})
	if !errors.Is(err, driver.ErrLayerUnknown) || !strings.Contains(err.Error(), "parent B") {
		t.Errorf("C27 Mount(C) with B gone = %v, want ErrLayerUnknown naming B", err)
	}
	mustMounted(t, d, "C", false)

	// A layer whose files live in an Additional Layer Store that is gone.
	mustCreate(t, d, "S", "")
	gone := filepath.Join(filepath.Dir(d.home), "als", "sha256-x")
	if err := os.WriteFile(d.additionalLayerFile("S"), []byte(gone), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d.diffDir("S")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(gone, "diff"), d.diffDir("S")); err != nil {
		t.Fatal(err)
	}
	_, err = d.Mount("S", driver.MountOpts{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "S") {
		t.Errorf("Mount(S) with its ALS gone = %v, want an error naming S", err)
	}
	mustMounted(t, d, "S", false)
}

// A relative home is made absolute: mounts run in the home, where a
// relative mount point would point elsewhere.
func TestRelativeHome(t *testing.T) {
	base := newTestDriver(t, Options{})
	t.Chdir(filepath.Dir(base.home))
	d := openTestDriver(t, filepath.Join("rel", "overlay"), Options{})
	if !filepath.IsAbs(d.home) {
		t.Fatalf("home %q is relative", d.home)
	}
	mustCreate(t, d, "A", "")
	p, err := d.Mount("A", driver.MountOpts{ReadOnly: true, MountLabel: "system_u:object_r:container_file_t:s0:c1,c2"})
	if err != nil {
		t.Fatalf("Mount with a label (SELinux enabled: %v): %v", d.feat.selinux, err)
	}
	if _, ok := findMount(t, p); !ok || p != d.mergedDir("A") {
		t.Errorf("mount at %s not found", p)
	}
}

// A layer written by a program that writes only the lower file (no
// lower-layers) mounts through its short links.
func TestMountFromLowerFileOnly(t *testing.T) {
	d := newTestDriver(t, Options{})
	buildWhiteoutChain(t, d)
	for _, id := range []string{"B", "C"} {
		if err := os.Remove(d.lowerLayersFile(id)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := d.Mount("C", driver.MountOpts{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a/", "a/2", "b/", "b/y", "c", "keep/", "keep/stay"}
	if got := listTree(t, p); !slices.Equal(got, want) {
		t.Errorf("merged = %v, want %v", got, want)
	}
	// A child of such a layer still gets both files.
	mustCreate(t, d, "D", "C")
	if got := readString(t, d.lowerLayersFile("D")); got != "C:B:A" {
		t.Errorf("D lower-layers = %q, want C:B:A", got)
	}
}

// Goroutines sharing one driver keep the count straight: after as many
// unmounts as mounts, the layer is not mounted.
func TestMountConcurrent(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	mustCreate(t, d, "B", "A")
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 20 {
				if _, err := d.Mount("B", driver.MountOpts{ReadOnly: true}); err != nil {
					errs <- err
					return
				}
				if err := d.Unmount("B"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mustMounted(t, d, "B", false)
}

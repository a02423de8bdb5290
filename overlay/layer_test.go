package overlay

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

var shortRe = regexp.MustCompile(`^[A-Z0-9]{26}$`)

func statOwner(t *testing.T, p string) (mode uint32, uid, gid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode & 0o7777, st.Uid, st.Gid
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateLayout(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")

	// The child's diff root starts as the parent's.
	if err := os.Chown(d.diffDir("A"), 1000, 1001); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(d.diffDir("A"), 0o1751); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, d, "B", "A")
	mustCreate(t, d, "C", "B")

	shorts := map[string]string{}
	for _, id := range []string{"A", "B", "C"} {
		if mode, _, _ := statOwner(t, d.layerDir(id)); mode != 0o700 {
			t.Errorf("%s: layer dir mode %o, want 700", id, mode)
		}
		link := readString(t, d.linkFile(id))
		if !shortRe.MatchString(link) {
			t.Fatalf("%s: link file %q is not 26 chars of [A-Z0-9]", id, link)
		}
		shorts[id] = link
		target, err := os.Readlink(filepath.Join(d.home, "l", link))
		if err != nil || target != "../"+id+"/diff" {
			t.Errorf("%s: l/%s -> %q, %v; want ../%s/diff", id, link, target, err, id)
		}
		for _, sub := range []string{"diff", "work", "merged", "empty"} {
			if st, err := os.Lstat(filepath.Join(d.layerDir(id), sub)); err != nil || !st.IsDir() {
				t.Errorf("%s/%s: %v, want a dir", id, sub, err)
			}
		}
	}

	if mode, uid, gid := statOwner(t, d.diffDir("C")); mode != 0o1751 || uid != 1000 || gid != 1001 {
		t.Errorf("C diff root %o %d:%d, want 1751 1000:1001 (from A via B)", mode, uid, gid)
	}
	if err := unix.Chmod(d.diffDir("A"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d.diffDir("A"), 0, 0); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, d, "D", "")
	if mode, uid, gid := statOwner(t, d.diffDir("D")); mode != 0o555 || uid != 0 || gid != 0 {
		t.Errorf("parentless diff root %o %d:%d, want 555 0:0", mode, uid, gid)
	}

	for _, tc := range []struct{ id, lower, layers string }{
		{"A", "", ""},
		{"B", "l/" + shorts["A"], "A"},
		{"C", "l/" + shorts["B"] + ":l/" + shorts["A"], "B:A"},
	} {
		for _, f := range []struct{ path, want string }{
			{d.lowerFile(tc.id), tc.lower},
			{d.lowerLayersFile(tc.id), tc.layers},
		} {
			b, err := os.ReadFile(f.path)
			if f.want == "" {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: want no such file, got %q, %v", f.path, b, err)
				}
				continue
			}
			if err != nil || string(b) != f.want {
				t.Errorf("%s = %q, %v; want %q", f.path, b, err, f.want)
			}
		}
	}

	if !d.Exists("C") || d.Exists("nope") {
		t.Errorf("Exists: C %v, nope %v", d.Exists("C"), d.Exists("nope"))
	}
	if p, err := d.DiffPath("C"); err != nil || p != d.diffDir("C") {
		t.Errorf("DiffPath(C) = %q, %v", p, err)
	}
}

func TestCreateErrors(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	top, links := listHome(t, d)

	tests := []struct {
		name, id, parent string
		opts             *driver.CreateOpts
		want             error
		mention          string
	}{
		{"existing id", "A", "", nil, driver.ErrLayerExists, "A"},
		{"unknown parent", "X", "nope", nil, driver.ErrLayerUnknown, "nope"},
		{"storage option", "X", "", &driver.CreateOpts{StorageOpt: map[string]string{"size": "1G"}},
			driver.ErrNotSupported, "size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Create(tc.id, tc.parent, tc.opts)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Create(%s, %s) = %v, want %v naming %q", tc.id, tc.parent, err, tc.want, tc.mention)
			}
			gotTop, gotLinks := listHome(t, d)
			if !slices.Equal(gotTop, top) || !slices.Equal(gotLinks, links) {
				t.Errorf("home changed: %v %v, was %v %v", gotTop, gotLinks, top, links)
			}
		})
	}
}

// A failure after the layer dir exists (here: l/ cannot take the link)
// leaves neither the dir nor a link.
func TestCreateFailureLeavesNothing(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	top, links := listHome(t, d)

	if err := os.Rename(d.linkDir(), d.linkDir()+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.linkDir(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := d.Create("B", "A", nil)
	if err == nil || !strings.Contains(err.Error(), "B") {
		t.Fatalf("Create with l/ broken = %v, want an error naming B", err)
	}
	if _, err := os.Lstat(d.layerDir("B")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layer dir B left behind: %v", err)
	}
	if err := os.Remove(d.linkDir()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(d.linkDir()+".saved", d.linkDir()); err != nil {
		t.Fatal(err)
	}
	gotTop, gotLinks := listHome(t, d)
	if !slices.Equal(gotTop, top) || !slices.Equal(gotLinks, links) {
		t.Errorf("home changed: %v %v, was %v %v", gotTop, gotLinks, top, links)
	}
}

func TestRemove(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	mustCreate(t, d, "B", "A")
	writeDiffFile(t, d, "B", "f", "x")
	if _, err := d.Mount("B", driver.MountOpts{}); err != nil {
		t.Fatal(err)
	}
	short := readString(t, d.linkFile("B"))

	if err := d.Remove("B"); err != nil {
		t.Fatalf("Remove(B) mounted: %v", err)
	}
	if _, err := os.Lstat(d.layerDir("B")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("B dir left: %v", err)
	}
	if _, err := os.Lstat(d.shortLinkPath(short)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("l/%s left: %v", short, err)
	}
	if err := d.Remove("B"); err != nil {
		t.Errorf("Remove(B) again = %v, want nil", err)
	}
	if !d.Exists("A") {
		t.Error("A gone with B")
	}

	// A diff that is a symlink out of the home (an ALS layer) is removed
	// as a link; what it points to stays.
	outside := filepath.Join(filepath.Dir(d.home), "als-layer")
	if err := os.MkdirAll(filepath.Join(outside, "diff"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "diff", "keep"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, d, "S", "")
	if err := os.Remove(d.diffDir("S")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "diff"), d.diffDir("S")); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("S"); err != nil {
		t.Fatalf("Remove(S): %v", err)
	}
	if readString(t, filepath.Join(outside, "diff", "keep")) != "k" {
		t.Error("file behind the diff symlink changed")
	}
}

// C25: l/ links lost (copied store, crash in Create) come back on open.
func TestRebuildShortLinksC25(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	mustCreate(t, d, "B", "A")
	writeDiffFile(t, d, "A", "a", "a")
	if err := os.RemoveAll(d.linkDir()); err != nil {
		t.Fatal(err)
	}
	// A wrong link is fixed too.
	if err := os.Mkdir(d.linkDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../elsewhere/diff", d.shortLinkPath(readString(t, d.linkFile("B")))); err != nil {
		t.Fatal(err)
	}

	d2 := openTestDriver(t, d.home, Options{})
	for _, id := range []string{"A", "B"} {
		short := readString(t, d2.linkFile(id))
		if target, err := os.Readlink(d2.shortLinkPath(short)); err != nil || target != "../"+id+"/diff" {
			t.Errorf("%s: l/%s -> %q, %v", id, short, target, err)
		}
	}
	p, err := d2.Mount("B", driver.MountOpts{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(p, "a")); got != "a" {
		t.Errorf("merged a = %q", got)
	}
}

// C19: a bad id is refused before any path is built from it.
func TestBadIDsC19(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	top, links := listHome(t, d)
	parentDir := filepath.Dir(d.home)
	before, _ := os.ReadDir(parentDir)

	for _, id := range []string{"../../x", "../x", "a/b", "a\x00b", "", ".", "..", "/abs", strings.Repeat("a", 200)} {
		calls := map[string]error{
			"Create":       d.Create(id, "", nil),
			"CreateParent": d.Create("ok", id, nil),
			"Remove":       d.Remove(id),
			"Unmount":      d.Unmount(id),
		}
		_, calls["Mount"] = d.Mount(id, driver.MountOpts{})
		_, calls["Mounted"] = d.Mounted(id)
		_, calls["DiffPath"] = d.DiffPath(id)
		_, calls["ApplyDiff"] = d.ApplyDiff(id, driver.ApplyDiffOpts{Diff: strings.NewReader("")})
		if id == "" {
			delete(calls, "CreateParent") // "" is "no parent"
			_ = d.Remove("ok")
		}
		for name, err := range calls {
			if !errors.Is(err, driver.ErrInvalidArgument) {
				t.Errorf("C19 %s(%q) = %v, want ErrInvalidArgument", name, id, err)
			}
		}
		if d.Exists(id) {
			t.Errorf("C19 Exists(%q) = true", id)
		}
	}
	gotTop, gotLinks := listHome(t, d)
	if !slices.Equal(gotTop, top) || !slices.Equal(gotLinks, links) {
		t.Errorf("home changed: %v %v, was %v %v", gotTop, gotLinks, top, links)
	}
	after, _ := os.ReadDir(parentDir)
	if len(after) != len(before) {
		t.Errorf("graph root changed: %v -> %v", before, after)
	}
}

func TestStatus(t *testing.T) {
	d := newTestDriver(t, Options{})
	got := map[string]string{}
	for _, p := range d.Status() {
		got[p.Key] = p.Value
	}
	for _, key := range []string{"Backing Filesystem", "Mount API", "Supports d_type", "Using metacopy"} {
		if got[key] == "" {
			t.Errorf("Status lacks %q: %v", key, got)
		}
	}
	if d.Name() != "overlay" {
		t.Errorf("Name = %q", d.Name())
	}
}

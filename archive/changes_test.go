package archive

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/testutil"
)

// TestChanges checks Changes on a hand-made stack of overlay diff dirs.
func TestChanges(t *testing.T) {
	testutil.RequireRoot(t)
	base, mid, upper := t.TempDir(), t.TempDir(), t.TempDir()
	in := func(dir, rel string) string { return filepath.Join(dir, rel) }
	file := func(dir, rel, content string) {
		t.Helper()
		exportNoErr(t, os.MkdirAll(filepath.Dir(in(dir, rel)), 0o755))
		exportNoErr(t, os.WriteFile(in(dir, rel), []byte(content), 0o644))
	}
	whiteout := func(dir, rel string) {
		t.Helper()
		exportNoErr(t, os.MkdirAll(filepath.Dir(in(dir, rel)), 0o755))
		exportNoErr(t, unix.Mknod(in(dir, rel), unix.S_IFCHR, 0))
	}
	opaque := func(dir, rel string) {
		t.Helper()
		exportNoErr(t, os.MkdirAll(in(dir, rel), 0o755))
		exportNoErr(t, unix.Setxattr(in(dir, rel), overlayOpaqueXattr, []byte("y"), 0))
	}

	file(base, "a/old", "1")
	file(base, "a/keep", "1")
	file(base, "etc/passwd", "1")
	file(base, "etc/group", "1")
	file(base, "d/x", "1")
	file(base, "o/under", "1")
	whiteout(mid, "etc/group") // already gone before the upper layer
	opaque(mid, "o")           // hides o/under for everything above
	file(mid, "o/mid", "2")

	opaque(upper, "a")
	file(upper, "a/new", "3")
	whiteout(upper, "etc/passwd")
	whiteout(upper, "etc/group") // deleting what is already gone is no change
	whiteout(upper, "never")     // nor is deleting what never was
	file(upper, "d/x", "3")
	file(upper, "f", "3")
	file(upper, "o/under", "3") // under mid's opaque o: an addition

	got, err := Changes(upper, []string{mid, base})
	exportNoErr(t, err)
	want := []Change{
		{"/a", ChangeModify},
		{"/a/keep", ChangeDelete},
		{"/a/new", ChangeAdd},
		{"/a/old", ChangeDelete},
		{"/d", ChangeModify},
		{"/d/x", ChangeModify},
		{"/etc", ChangeModify},
		{"/etc/passwd", ChangeDelete},
		{"/f", ChangeAdd},
		{"/o", ChangeModify},
		{"/o/under", ChangeAdd},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes\n got %v\nwant %v", got, want)
	}

	size, err := DirSize(upper)
	exportNoErr(t, err)
	if size != 4 {
		t.Errorf("DirSize = %d, want 4 (a/new, d/x, f, o/under)", size)
	}
}

package archive

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// layerDirs makes a layer root and a sibling victim/ dir that no entry may
// change.
func layerDirs(t *testing.T) (root, victim string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "layer")
	victim = filepath.Join(base, "victim")
	for _, d := range []string{root, victim} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(victim, "hello"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, victim
}

// applyCase is one table case: a tar, the error it must give (a substring
// naming the entry; "" for success) and checks on the applied tree.
type applyCase struct {
	name    string
	tar     []byte
	wantErr string
	fails   bool // an error naming wantErr (possibly "") is expected
	check   func(t *testing.T, root string, tree testutil.Tree)
}

func runCases(t *testing.T, cases []applyCase) {
	testutil.RequireRoot(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkTarReader(t, tc.tar)
			root, victim := layerDirs(t)
			before := testutil.Snapshot(t, victim)
			_, err := Apply(root, bytes.NewReader(tc.tar), Options{})
			fails := tc.fails || tc.wantErr != ""
			if !fails && err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if fails {
				checkEntryErr(t, err, tc.wantErr)
			}
			if d := before.Diff(testutil.Snapshot(t, victim)); len(d) != 0 {
				t.Errorf("victim/ changed: %v", d)
			}
			if tc.check != nil {
				tc.check(t, root, testutil.Snapshot(t, root))
			}
		})
	}
}

// checkEntryErr asserts err is an *EntryError naming entry and wrapping
// driver.ErrInvalidLayerData.
func checkEntryErr(t *testing.T, err error, entry string) {
	t.Helper()
	var ee *EntryError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v, want an EntryError naming %q", err, entry)
	}
	if ee.Name != entry || !strings.Contains(err.Error(), fmt.Sprintf("entry %q", entry)) {
		t.Errorf("err = %v, want it to name %q", err, entry)
	}
	if !errors.Is(err, driver.ErrInvalidLayerData) {
		t.Errorf("err = %v, want ErrInvalidLayerData", err)
	}
}

// want asserts fields of one node.
type want struct {
	typ, link, rdev string
	mode            uint32
	uid, gid        uint32
	noMode          bool // skip the mode check
}

func expect(t *testing.T, tree testutil.Tree, p string, w want) {
	t.Helper()
	n, ok := tree[p]
	if !ok {
		t.Errorf("%s missing; tree: %v", p, tree.Paths())
		return
	}
	if n.Type != w.typ || n.Link != w.link || n.Rdev != w.rdev || n.UID != w.uid || n.GID != w.gid ||
		(!w.noMode && n.Mode != w.mode) {
		t.Errorf("%s = %s %04o %d:%d link %q rdev %q; want %s %04o %d:%d link %q rdev %q",
			p, n.Type, n.Mode, n.UID, n.GID, n.Link, n.Rdev, w.typ, w.mode, w.uid, w.gid, w.link, w.rdev)
	}
}

func absent(t *testing.T, tree testutil.Tree, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, ok := tree[p]; ok {
			t.Errorf("%s exists, want it absent", p)
		}
	}
}

// only asserts the tree holds exactly these paths (besides ".").
func only(t *testing.T, tree testutil.Tree, paths ...string) {
	t.Helper()
	got := strings.Join(tree.Without(".").Paths(), ",")
	if w := strings.Join(paths, ","); got != w {
		t.Errorf("paths = %s, want %s", got, w)
	}
}

func whiteoutDev(t *testing.T, tree testutil.Tree, p string) {
	t.Helper()
	expect(t, tree, p, want{typ: "char", rdev: "0:0", mode: 0})
}

func opaque(t *testing.T, tree testutil.Tree, p string, is bool) {
	t.Helper()
	if got := tree[p].Xattrs["trusted.overlay.opaque"] == "y"; got != is {
		t.Errorf("%s opaque = %v, want %v", p, got, is)
	}
}

func fileContent(t *testing.T, root, p, content string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, p))
	if err != nil || string(data) != content {
		t.Errorf("%s = %q, %v; want %q", p, data, err, content)
	}
}

func mtime(t *testing.T, tree testutil.Tree, p string, at time.Time) {
	t.Helper()
	if !tree[p].MTime.Equal(at) {
		t.Errorf("%s mtime = %v, want %v", p, tree[p].MTime, at)
	}
}

func TestApplySmoke(t *testing.T) {
	runCases(t, []applyCase{{
		name: "basic",
		tar: testutil.NewTar().Dir("etc").File("etc/f", "hi", testutil.Owner(5, 6)).
			Symlink("l", "etc/f").Hardlink("h", "etc/f").Whiteout("etc/gone").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			expect(t, tree, "etc/f", want{typ: "file", mode: 0o644, uid: 5, gid: 6})
			whiteoutDev(t, tree, "etc/gone")
			fileContent(t, root, "h", "hi")
			mtime(t, tree, "etc", testutil.DefaultMTime)
		},
	}})
}

// TestCleanName pins cleanName's fast path to what path.Clean gives.
func TestCleanName(t *testing.T) {
	slow := func(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }
	parts := []string{"", ".", "..", "a", "b.c", ".wh.x", "...", "./", "/", "//", "a/", "/a"}
	var names []string
	for _, p := range parts {
		for _, q := range parts {
			for _, r := range parts {
				names = append(names, p+q+r, p+"/"+q+"/"+r, "./"+p+q+"/"+r)
			}
		}
	}
	for _, name := range names {
		if got, want := cleanName(name), slow(name); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", name, got, want)
		}
	}
}

package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stratafs/strata/testutil"
)

var (
	t2001 = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	t2003 = time.Date(2003, 3, 3, 3, 3, 3, 123456789, time.UTC)
)

// paxWithPath is a PAX header whose path record holds raw bytes (archive/tar
// refuses to write a NUL), followed by an empty file entry.
func paxWithPath(path string) []byte {
	rec := " path=" + path + "\n"
	n := len(rec) + 2
	rec = fmt.Sprintf("%d%s", n, rec)
	var out bytes.Buffer
	h := testutil.USTARBlock(tar.Header{Name: "PaxHeaders/x", Typeflag: tar.TypeXHeader, Size: int64(len(rec))})
	out.Write(h[:])
	out.WriteString(rec)
	out.Write(make([]byte, 512-len(rec)))
	f := testutil.USTARBlock(tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644})
	out.Write(f[:])
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

func TestApplyRules(t *testing.T) {
	long := strings.Repeat("long-directory-name/", 12) + strings.Repeat("f", 200)
	runCases(t, []applyCase{{
		name: "every entry kind",
		tar: testutil.NewTar().Dir("d", testutil.Mode(0o750), testutil.Owner(3, 4), testutil.MTime(t2001)).
			File("d/f", "data", testutil.Mode(0o640), testutil.Owner(5, 6), testutil.MTime(t2003),
				testutil.Format(tar.FormatPAX)).
			Symlink("d/l", "f", testutil.Owner(7, 8)).Hardlink("d/h", "d/f").
			Fifo("p", testutil.Mode(0o600)).CharDev("c", 1, 3).BlockDev("b", 8, 0).Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			expect(t, tree, "d", want{typ: "dir", mode: 0o750, uid: 3, gid: 4})
			expect(t, tree, "d/f", want{typ: "file", mode: 0o640, uid: 5, gid: 6})
			expect(t, tree, "d/l", want{typ: "symlink", link: "f", uid: 7, gid: 8, noMode: true})
			expect(t, tree, "p", want{typ: "fifo", mode: 0o600})
			expect(t, tree, "c", want{typ: "char", rdev: "1:3", mode: 0o666})
			expect(t, tree, "b", want{typ: "block", rdev: "8:0", mode: 0o660})
			if tree["d/h"].Hardlink != "d/f" {
				t.Errorf("d/h not linked to d/f: %+v", tree["d/h"])
			}
			fileContent(t, root, "d/f", "data")
			mtime(t, tree, "d", t2001)
			mtime(t, tree, "d/f", t2003)
		},
	}, {
		name: "xattrs kept, overlay xattrs dropped",
		tar: testutil.NewTar().File("f", "", testutil.Xattr("user.a", "1"), testutil.Xattr("trusted.b", "2"),
			testutil.Xattr("trusted.overlay.opaque", "y"), testutil.Xattr("user.overlay.redirect", "/x")).
			Dir("d", testutil.Xattr("trusted.overlay.opaque", "y"), testutil.Xattr("user.d", "3")).
			Fifo("p", testutil.Xattr("trusted.p", "4")).Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			x := tree["f"].Xattrs
			if len(x) != 2 || x["user.a"] != "1" || x["trusted.b"] != "2" {
				t.Errorf("f xattrs = %v", x)
			}
			if x := tree["d"].Xattrs; len(x) != 1 || x["user.d"] != "3" {
				t.Errorf("d xattrs = %v", x)
			}
			if tree["p"].Xattrs["trusted.p"] != "4" {
				t.Errorf("p xattrs = %v", tree["p"].Xattrs)
			}
		},
	}, {
		name: "long names",
		tar:  testutil.NewTar().File(long, "x").Symlink("l", long).Hardlink("h", long).Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			fileContent(t, root, long, "x")
			expect(t, tree, "l", want{typ: "symlink", link: long, noMode: true})
			if tree["h"].Hardlink == "" {
				t.Error("h is not a hardlink")
			}
		},
	}, {
		name: "setuid setgid sticky",
		tar: testutil.NewTar().File("su", "", testutil.Mode(0o6755), testutil.Owner(1000, 1000)).
			File("st", "", testutil.Mode(0o1644)).Dir("d", testutil.Mode(0o3775), testutil.Owner(0, 50)).
			File("d/inherit", "").CharDev("dev", 1, 1, testutil.Mode(0o4640), testutil.Owner(9, 9)).Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			expect(t, tree, "su", want{typ: "file", mode: 0o6755, uid: 1000, gid: 1000})
			expect(t, tree, "st", want{typ: "file", mode: 0o1644})
			expect(t, tree, "d", want{typ: "dir", mode: 0o3775, gid: 50})
			expect(t, tree, "d/inherit", want{typ: "file", mode: 0o644})
			expect(t, tree, "dev", want{typ: "char", rdev: "1:1", mode: 0o4640, uid: 9, gid: 9})
		},
	}, {
		name:    "owner 2^32-1 rejected",
		tar:     testutil.NewTar().File("f", "", testutil.Owner(1<<32-1, 0)).Bytes(),
		wantErr: "f",
	}, {
		name: "dir times after children and whiteouts",
		tar: testutil.NewTar().Dir("d", testutil.MTime(t2001)).File("d/f", "").Whiteout("d/gone").
			Dir("d/sub", testutil.MTime(t2003), testutil.Format(tar.FormatPAX)).File("d/sub/x", "").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			mtime(t, tree, "d", t2001)
			mtime(t, tree, "d/sub", t2003)
		},
	}, {
		name: "whiteout recognised by name before type",
		tar: testutil.NewTar().Hardlink(".wh.a", "nowhere").Dir(".wh.b").
			Symlink("x/.wh.c", "/etc").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			whiteoutDev(t, tree, "a")
			whiteoutDev(t, tree, "b")
			whiteoutDev(t, tree, "x/c")
			absent(t, tree, ".wh.a", ".wh.b", "x/.wh.c")
		},
	}, {
		name: "whiteout of this layer's file keeps it",
		tar:  testutil.NewTar().File("f", "keep").Whiteout("f").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			only(t, tree, "f")
			fileContent(t, root, "f", "keep")
		},
	}, {
		name: "whiteout replaced by a later file",
		tar:  testutil.NewTar().Whiteout("f").File("f", "new").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			fileContent(t, root, "f", "new")
		},
	}, {
		name: "opaque root",
		tar:  testutil.NewTar().File("a", "").Opaque("").Whiteout("b").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			opaque(t, tree, ".", true)
			only(t, tree, "a")
		},
	}, {
		name: "implicit parents 0755 0:0",
		tar:  testutil.NewTar().File("a/b/c", "", testutil.Owner(5, 5)).Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			expect(t, tree, "a", want{typ: "dir", mode: 0o755})
			expect(t, tree, "a/b", want{typ: "dir", mode: 0o755})
		},
	}, {
		name: "repeated dir updates metadata",
		tar: testutil.NewTar().Dir("d", testutil.Mode(0o700), testutil.MTime(t2003)).File("d/f", "").
			Dir("./d/", testutil.Mode(0o751), testutil.Owner(4, 5), testutil.MTime(t2001), testutil.Xattr("user.x", "1")).
			Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			expect(t, tree, "d", want{typ: "dir", mode: 0o751, uid: 4, gid: 5})
			mtime(t, tree, "d", t2001)
			if tree["d"].Xattrs["user.x"] != "1" {
				t.Errorf("d xattrs = %v", tree["d"].Xattrs)
			}
		},
	}, {
		name:    "f and ./f rejected",
		tar:     testutil.NewTar().File("f", "1").File("./f", "2").Bytes(),
		wantErr: "./f",
	}, {
		name:    "symlink twice rejected",
		tar:     testutil.NewTar().Symlink("l", "a").Symlink("l", "b").Bytes(),
		wantErr: "l",
	}, {
		name:    "file then dir rejected",
		tar:     testutil.NewTar().File("x", "").Dir("x").Bytes(),
		wantErr: "x/",
	}, {
		name:    "entry beneath a fifo",
		tar:     testutil.NewTar().Fifo("p").File("p/x", "").Bytes(),
		wantErr: "p/x",
	}, {
		name:    "whiteout beneath a file",
		tar:     testutil.NewTar().File("f", "").Whiteout("f/x").Bytes(),
		wantErr: "f/.wh.x",
	}, {
		name:    "dot as a file rejected",
		tar:     testutil.NewTar().File(".", "").Bytes(),
		wantErr: ".",
	}, {
		name: "./ sets the root's metadata",
		tar: testutil.NewTar().Dir("./", testutil.Mode(0o710), testutil.Owner(7, 8), testutil.MTime(t2001),
			testutil.Xattr("user.r", "1")).File("f", "").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			expect(t, tree, ".", want{typ: "dir", mode: 0o710, uid: 7, gid: 8})
			mtime(t, tree, ".", t2001)
			if tree["."].Xattrs["user.r"] != "1" {
				t.Errorf("root xattrs = %v", tree["."].Xattrs)
			}
		},
	}, {
		name: "names cleaned as if root were /",
		tar:  testutil.NewTar().File("../x", "1").File("/abs/y", "2").File("a/../../../z", "3").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			only(t, tree, "abs", "abs/y", "x", "z")
		},
	}, {
		name: "symlink to ../../.. lands at the root",
		tar:  testutil.NewTar().Symlink("a", "../../..").File("a/f", "in").Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			fileContent(t, root, "f", "in")
		},
	}, {
		name:    "NUL in a name",
		tar:     paxWithPath("a\x00b"),
		wantErr: "a\x00b", // named, the NUL quoted as \x00
	}, {
		name:    "hardlink to a later entry",
		tar:     testutil.NewTar().Hardlink("h", "f").File("f", "").Bytes(),
		wantErr: "h",
	}, {
		name:    "hardlink to a dir",
		tar:     testutil.NewTar().Dir("d").Hardlink("h", "d").Bytes(),
		wantErr: "h",
	}, {
		name:    "hardlink to a whiteout",
		tar:     testutil.NewTar().Whiteout("x").Hardlink("h", ".wh.x").Bytes(),
		wantErr: "h",
	}, {
		name:    "symlink loop etc -> /etc",
		tar:     testutil.NewTar().Symlink("etc", "/etc").File("etc/f", "").Bytes(),
		wantErr: "etc/f",
	}, {
		name:    "unsupported type",
		tar:     testutil.NewTar().Raw(&tar.Header{Name: "v", Typeflag: 'V', Mode: 0o644}, nil).Bytes(),
		wantErr: "v",
	}, {
		name: "sparse file with a trailing hole",
		tar: testutil.NewTar().Sparse("s", 1<<20, []testutil.SparseChunk{{Offset: 4096, Data: []byte("mid")}}).
			Bytes(),
		check: func(t *testing.T, root string, tree testutil.Tree) {
			want := make([]byte, 1<<20)
			copy(want[4096:], "mid")
			fileContent(t, root, "s", string(want))
		},
	}})
}

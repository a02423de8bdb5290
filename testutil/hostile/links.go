package hostile

import (
	"archive/tar"

	"github.com/stratafs/strata/testutil"
)

// hardlinkCases link to targets outside the layer, later in the tar, to
// whiteouts and to directories.
func hardlinkCases(victim string) []Case {
	in := inside(victim)
	return []Case{{
		Name:    "H30 hardlink up and out to the victim's file",
		Blob:    testutil.NewTar().Hardlink("h", ups+in+"/hello").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "H31 hardlink to the victim's absolute path",
		Blob:    testutil.NewTar().Hardlink("h", victim+"/hello").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "H32 hardlink to a later entry",
		Blob:    testutil.NewTar().Hardlink("h", "later").File("later", "a").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "H33 hardlink to a whiteout entry",
		Blob:    testutil.NewTar().Whiteout("gone").Hardlink("h", ".wh.gone").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "H34 hardlink to a whited-out path",
		Blob:    testutil.NewTar().Whiteout("gone").Hardlink("h", "gone").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "H35 hardlink to a directory",
		Blob:    testutil.NewTar().Dir("d").Hardlink("h", "d").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "H36 hardlink to itself",
		Blob:    testutil.NewTar().Hardlink("h", "h").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "H37 hardlink to the root",
		Blob:    testutil.NewTar().Hardlink("h", ".").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name: "H38 hardlink to a symlink that points at the victim",
		Blob: testutil.NewTar().Symlink("s", victim+"/hello").Hardlink("h", "s").Bytes(),
		Tree: tree("s", "symlink:"+victim+"/hello link=h", "h", "symlink:"+victim+"/hello link=h"),
	}, {
		Name: "H39 hardlink to a device and a fifo",
		Blob: testutil.NewTar().CharDev("c", 1, 3).Hardlink("c2", "c").Fifo("p").Hardlink("p2", "p").Bytes(),
		Tree: tree("c", "char:1:3 link=c", "c2", "char:1:3 link=c", "p", "fifo link=p", "p2", "fifo link=p"),
	}, {
		Name:    "H40 hardlink with an empty target",
		Blob:    testutil.NewTar().Hardlink("h", "").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "C15 hardlink to ../victim/hello",
		Blob:    testutil.NewTar().Hardlink("h", "../"+ups+in+"/hello").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name:    "C15 hardlink through a symlink to ../victim",
		Blob:    testutil.NewTar().Symlink("loop", ups+in).Hardlink("h", "loop/hello").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name: "C06 hardlink to a dangling symlink declared first",
		Blob: testutil.NewTar().Symlink("s1", "regfile").Hardlink("s2", "s1").File("regfile", "r").Bytes(),
		Tree: tree("s1", "symlink:regfile link=s1", "s2", "symlink:regfile link=s1", "regfile", "file:r"),
	}, {
		Name: "C06 hardlink with implicit parents",
		Blob: testutil.NewTar().File("bin/app", "app").Hardlink("x/y/z", "bin/app").Bytes(),
		Tree: tree("bin/app", "file:app link=bin/app", "x/y/z", "file:app link=bin/app"),
	}}
}

// whiteoutCases are whiteouts and opaque markers of odd paths.
func whiteoutCases(victim string) []Case {
	in := inside(victim)
	return []Case{{
		Name:    "H41 whiteout of .",
		Blob:    testutil.NewTar().File(".wh..", "").Bytes(),
		WantErr: errEntry(".wh.."),
	}, {
		Name:    "H42 whiteout of ..",
		Blob:    testutil.NewTar().File(".wh...", "").Bytes(),
		WantErr: errEntry(".wh..."),
	}, {
		Name:    "H43 whiteout of the empty name",
		Blob:    testutil.NewTar().File("d/.wh.", "").Bytes(),
		WantErr: errEntry("d/.wh."),
	}, {
		Name: "H44 whiteout up and out at the victim",
		Blob: testutil.NewTar().Whiteout(ups + in + "/hello").Bytes(),
		Tree: tree(in+"/hello", "char:0:0"),
	}, {
		Name: "H45 whiteout at the victim's absolute path",
		Blob: testutil.NewTar().Whiteout(victim + "/sub").Bytes(),
		Tree: tree(in+"/sub", "char:0:0"),
	}, {
		Name: "H46 whiteout through a symlink to /",
		Blob: testutil.NewTar().Symlink("root", "/").Whiteout("root/x").Bytes(),
		Tree: tree("root", "symlink:/", "x", "char:0:0"),
	}, {
		Name:    "H47 whiteout through a dangling symlink to the victim",
		Blob:    testutil.NewTar().Symlink("host", victim).Whiteout("host/hello").Bytes(),
		WantErr: errEntry("host/.wh.hello"),
	}, {
		Name:    "H48 a whiteout name used as a directory",
		Blob:    testutil.NewTar().File(".wh.a/b", "x").Bytes(),
		WantErr: errEntry(".wh.a/b"),
	}, {
		Name:    "H49 a whiteout whose name holds a slash (PAX path)",
		Blob:    paxEntry(map[string]string{"path": "d/.wh.x/y"}, tar.Header{Name: "d/x", Typeflag: tar.TypeReg}),
		WantErr: errEntry("d/.wh.x/y"),
	}, {
		Name: "H50 opaque marker of the root",
		Blob: testutil.NewTar().Opaque(".").File("f", "a").Bytes(),
		Tree: map[string]string{".": "dir opaque", "f": "file:a"},
	}, {
		Name: "H51 opaque marker in a dir the tar never declares",
		Blob: testutil.NewTar().Opaque("x/y").Bytes(),
		Tree: tree("x", "dir", "x/y", "dir opaque"),
	}, {
		Name: "H52 opaque marker stored as a directory, a symlink and a hardlink",
		Blob: testutil.NewTar().Dir("a/.wh..wh..opq").Symlink("b/.wh..wh..opq", "/").
			File("c/f", "c").Hardlink("c/.wh..wh..opq", "c/f").Bytes(),
		Tree: tree("a", "dir opaque", "b", "dir opaque", "c", "dir opaque", "c/f", "file:c"),
	}, {
		Name:    "H53 opaque marker with data, twice, is a repeated path",
		Blob:    testutil.NewTar().File("d/.wh..wh..opq", "junk").File("d/.wh..wh..opq", "").Bytes(),
		WantErr: errEntry("d/.wh..wh..opq"),
	}, {
		Name: "H54 opaque marker below a whiteout of its dir",
		Blob: testutil.NewTar().Whiteout("d").Opaque("d").Bytes(),
		Tree: tree("d", "char:0:0"),
	}, {
		Name: "H55 whiteout stored as a hardlink to the victim",
		Blob: testutil.NewTar().Hardlink(".wh.x", victim+"/hello").Bytes(),
		Tree: tree("x", "char:0:0"),
	}, {
		Name: "H56 whiteout then a file of the same name",
		Blob: testutil.NewTar().Whiteout("a").File("a", "new").Bytes(),
		Tree: tree("a", "file:new"),
	}, {
		Name:    "H57 whiteout below a file of this layer",
		Blob:    testutil.NewTar().File("f", "a").Whiteout("f/x").Bytes(),
		WantErr: errEntry("f/.wh.x"),
	}, {
		Name: "C04 nested and target-less whiteouts",
		Blob: testutil.NewTar().Whiteout("foo").Whiteout("foo/bar").Whiteout("never").Bytes(),
		Tree: tree("foo", "char:0:0", "never", "char:0:0"),
	}}
}

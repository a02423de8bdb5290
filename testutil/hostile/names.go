package hostile

import (
	"archive/tar"
	"strings"

	"github.com/stratafs/strata/testutil"
)

// nameCases are entry names that try to leave the layer root, or that the
// kernel or the tar format cannot take.
func nameCases(victim string) []Case {
	in := inside(victim)
	deep := strings.Repeat("a/", 2100) + "f"
	return []Case{{
		Name: "H01 ../x lands at x",
		Blob: testutil.NewTar().File("../x", "a").Bytes(),
		Tree: tree("x", "file:a"),
	}, {
		Name: "H02 /abs lands at abs",
		Blob: testutil.NewTar().File("/abs", "a").Bytes(),
		Tree: tree("abs", "file:a"),
	}, {
		Name: "H03 many .. aimed at the victim land inside",
		Blob: testutil.NewTar().File(ups+in+"/x", "a").Bytes(),
		Tree: tree(in+"/x", "file:a"),
	}, {
		Name: "H04 absolute victim path lands inside",
		Blob: testutil.NewTar().File(victim+"/hello", "evil").Bytes(),
		Tree: tree(in+"/hello", "file:evil"),
	}, {
		Name: "H05 dot-dot inside a name",
		Blob: testutil.NewTar().File("./../../a/../b", "a").Bytes(),
		Tree: tree("b", "file:a"),
	}, {
		Name: "H06 directory entry .. is the root",
		Blob: testutil.NewTar().Dir("../", testutil.Mode(0o700)).File("f", "a").Bytes(),
		Tree: map[string]string{".": "dir 0700", "f": "file:a"},
	}, {
		Name:    "H07 NUL in a name (PAX path)",
		Blob:    paxEntry(map[string]string{"path": "a\x00b"}, tar.Header{Name: "x", Typeflag: tar.TypeReg}),
		WantErr: "invalid tar header",
	}, {
		// The failing header is named, not the file before it, also when
		// that file's data leaves padding before the header.
		Name: "H87 NUL in a PAX path after a file whose data ends inside a block",
		Blob: append(testutil.NewTar().File("first", "abc").NoEnd().Bytes(),
			paxEntry(map[string]string{"path": "bad\x00name"}, tar.Header{Name: "x", Typeflag: tar.TypeReg})...),
		WantErr: `entry "bad\x00name"`,
	}, {
		Name: "H08 NUL in a link target (PAX linkpath)",
		Blob: paxEntry(map[string]string{"linkpath": "t\x00u"},
			tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "t"}),
		WantErr: "invalid tar header",
	}, {
		Name:    "H09 a 300-byte path component",
		Blob:    testutil.NewTar().File("d/"+strings.Repeat("n", 300), "a").Bytes(),
		WantErr: errEntry("d/" + strings.Repeat("n", 300)),
	}, {
		Name:    "H10 a path longer than PATH_MAX",
		Blob:    testutil.NewTar().File(deep, "a").Bytes(),
		WantErr: errEntry(deep),
	}, {
		Name: "H11 a PAX header larger than 1 MiB",
		Blob: paxEntry(map[string]string{"comment": strings.Repeat("c", 1<<20+10)},
			tar.Header{Name: "x", Typeflag: tar.TypeReg}),
		WantErr: "header field too long",
	}, {
		Name:    "H12 a PAX record whose length field is absurd",
		Blob:    paxRaw([]byte("99999999999999 path=x\n"), tar.Header{Name: "x", Typeflag: tar.TypeReg}),
		WantErr: "invalid tar header",
	}, {
		Name: "H13 a 64 KiB xattr value",
		Blob: testutil.NewTar().File("f", "a",
			testutil.Xattr("user.big", strings.Repeat("v", 70000))).Bytes(),
		WantErr: errEntry("f"),
	}, {
		Name:    "H14 symlink loop a -> a then a/f",
		Blob:    testutil.NewTar().Symlink("a", "a").File("a/f", "x").Bytes(),
		WantErr: errEntry("a/f"),
	}, {
		Name:    "H15 a name that is only dots and slashes as a file",
		Blob:    rawEntries(rawEntry{hdr: tar.Header{Name: "./../", Typeflag: tar.TypeReg, Size: 1}, data: []byte("a")}),
		WantErr: errEntry("./../"),
	}}
}

// symlinkCases plant a symlink that points out of the layer (to /, up, or
// to the victim's absolute path) and then write through it.
func symlinkCases(victim string) []Case {
	in := inside(victim)
	// victimDirs recreates the victim's path inside the layer, so that a
	// symlink to it resolves (inside) to a directory.
	victimDirs := func() *testutil.Tar { return testutil.NewTar().Dir(in) }
	return []Case{{
		Name: "H16 symlink to / then a file through it",
		Blob: testutil.NewTar().Symlink("root", "/").File("root/f", "a").Bytes(),
		Tree: tree("root", "symlink:/", "f", "file:a"),
	}, {
		Name: "H17 symlink to ../.. then a file through it",
		Blob: testutil.NewTar().Symlink("up", "../..").File("up/f", "a").Bytes(),
		Tree: tree("up", "symlink:../..", "f", "file:a"),
	}, {
		Name: "H18 symlink to the victim then a file through it",
		Blob: victimDirs().Symlink("host", victim).File("host/hello", "evil").Bytes(),
		Tree: tree(in, "dir", "host", "symlink:"+victim, in+"/hello", "file:evil"),
	}, {
		Name:    "H19 dangling symlink to the victim then a file through it",
		Blob:    testutil.NewTar().Symlink("host", victim).File("host/hello", "evil").Bytes(),
		WantErr: errEntry("host/hello"),
	}, {
		Name: "H20 symlink to the victim then a dir through it",
		Blob: victimDirs().Symlink("host", victim).Dir("host/newdir").Bytes(),
		Tree: tree(in, "dir", "host", "symlink:"+victim, in+"/newdir", "dir"),
	}, {
		Name: "H21 symlink to the victim then a hardlink through it",
		Blob: victimDirs().File("a", "a").Symlink("host", victim).Hardlink("host/h", "a").Bytes(),
		Tree: tree(in, "dir", "a", "file:a link=a", "host", "symlink:"+victim,
			in+"/h", "file:a link=a"),
	}, {
		Name: "H22 symlink to the victim then a symlink through it",
		Blob: victimDirs().Symlink("host", victim).Symlink("host/s", "/etc/shadow").Bytes(),
		Tree: tree(in, "dir", "host", "symlink:"+victim, in+"/s", "symlink:/etc/shadow"),
	}, {
		Name: "H23 symlink to the victim then a whiteout through it",
		Blob: victimDirs().Symlink("host", victim).Whiteout("host/hello").Bytes(),
		Tree: tree(in, "dir", "host", "symlink:"+victim, in+"/hello", "char:0:0"),
	}, {
		Name:    "H24 an opaque marker through a symlink to the victim is refused",
		Blob:    victimDirs().Symlink("host", victim).Opaque("host").Bytes(),
		WantErr: errEntry("host/.wh..wh..opq"),
	}, {
		Name: "H25 symlink to the victim then a device through it",
		Blob: victimDirs().Symlink("host", victim).CharDev("host/null", 1, 3).Bytes(),
		Tree: tree(in, "dir", "host", "symlink:"+victim, in+"/null", "char:1:3"),
	}, {
		Name:    "H26 a hardlink whose target goes through a symlink is refused",
		Blob:    testutil.NewTar().File("a", "a").Symlink("root", "/").Hardlink("h", "root/a").Bytes(),
		WantErr: errEntry("h"),
	}, {
		Name: "H27 metadata of a symlink to the victim is not applied through it",
		Blob: testutil.NewTar().Symlink("x", victim+"/hello", testutil.Mode(0o4777),
			testutil.Owner(1000, 1000), testutil.Xattr("user.x", "1")).Bytes(),
		Tree: tree("x", "symlink:"+victim+"/hello"),
	}, {
		Name:    "H28 a file replacing a symlink to the victim",
		Blob:    testutil.NewTar().Symlink("loop", victim).File("loop", "x").Bytes(),
		WantErr: errEntry("loop"),
	}, {
		Name: "H29 chain of symlinks up and out",
		Blob: testutil.NewTar().Symlink("a", "b/../..").Dir("b").Symlink("c", "a/"+ups+in).
			File("c/f", "x").Bytes(),
		WantErr: errEntry("c/f"),
	}, {
		Name: "C15 ../victim/x lands inside",
		Blob: testutil.NewTar().File(ups+in+"/x", "a").Bytes(),
		Tree: tree(in+"/x", "file:a"),
	}, {
		Name: "C15 /../victim/y lands inside",
		Blob: testutil.NewTar().File("/../"+in+"/y", "a").Bytes(),
		Tree: tree(in+"/y", "file:a"),
	}, {
		Name: "C16 absolute link to an inside dir",
		Blob: testutil.NewTar().Dir("run").Dir("var").Symlink("var/run", "/run").
			File("var/run/foo", "a").Bytes(),
		Tree: tree("run", "dir", "var", "dir", "var/run", "symlink:/run", "run/foo", "file:a"),
	}, {
		Name: "C18 setuid mode on a link to a host file",
		Blob: testutil.NewTar().Dir("etc").Symlink("etc/x", victim+"/hello", testutil.Mode(0o4777),
			testutil.Owner(1000, 0), testutil.Xattr("user.pwn", "1")).Bytes(),
		Tree: tree("etc", "dir", "etc/x", "symlink:"+victim+"/hello"),
	}}
}

package hostile

import (
	"archive/tar"

	"github.com/stratafs/strata/testutil"
)

// entryCases are devices, overlay xattrs, type changes and duplicates.
func entryCases(victim string) []Case {
	in := inside(victim)
	return []Case{{
		Name: "H58 devices and fifos",
		Blob: testutil.NewTar().CharDev("dev/null", 1, 3).BlockDev("dev/sda", 8, 0).
			Fifo("run/fifo").CharDev("dev/zero00", 0, 0).Bytes(),
		Tree: tree("dev/null", "char:1:3", "dev/sda", "block:8:0", "run/fifo", "fifo",
			"dev/zero00", "char:0:0"),
	}, {
		Name: "H59 a block device named like the victim's disk, aimed out",
		Blob: testutil.NewTar().BlockDev(ups+in+"/disk", 8, 0).Bytes(),
		Tree: tree(in+"/disk", "block:8:0"),
	}, {
		Name: "H60 trusted.overlay xattrs in the tar are dropped",
		Blob: testutil.NewTar().
			Dir("d", testutil.Xattr("trusted.overlay.opaque", "y")).
			File("f", "a", testutil.Xattr("trusted.overlay.redirect", "/etc"),
				testutil.Xattr("trusted.overlay.metacopy", ""),
				testutil.Xattr("user.overlay.origin", "x")).
			CharDev("w", 0, 0, testutil.Xattr("trusted.overlay.whiteout", "y")).Bytes(),
		Tree: tree("d", "dir", "f", "file:a", "w", "char:0:0"),
	}, {
		Name: "H61 an opaque xattr on the root entry is dropped",
		Blob: testutil.NewTar().Dir("./", testutil.Xattr("trusted.overlay.opaque", "y")).Bytes(),
		Tree: tree(),
	}, {
		Name:    "H62 a dir then a file of the same name",
		Blob:    testutil.NewTar().Dir("x").File("x/c", "c").File("x", "f").Bytes(),
		WantErr: errEntry("x"),
	}, {
		Name:    "H63 a file then a dir of the same name",
		Blob:    testutil.NewTar().File("y", "f").Dir("y").Bytes(),
		WantErr: errEntry("y/"),
	}, {
		Name:    "H64 an entry below a file",
		Blob:    testutil.NewTar().File("y", "f").File("y/z", "z").Bytes(),
		WantErr: errEntry("y/z"),
	}, {
		Name:    "H65 a symlink then a dir of the same name",
		Blob:    testutil.NewTar().Symlink("s", "t").Dir("s").Bytes(),
		WantErr: errEntry("s/"),
	}, {
		Name: "H66 a dir twice: the later metadata wins",
		Blob: testutil.NewTar().Dir("d", testutil.Mode(0o700)).File("d/f", "a").
			Dir("d", testutil.Mode(0o750)).Bytes(),
		Tree: tree("d", "dir 0750", "d/f", "file:a"),
	}, {
		Name:    "H67 a file twice",
		Blob:    testutil.NewTar().File("file", "one").File("file", "two").Bytes(),
		WantErr: errEntry("file"),
	}, {
		Name:    "H68 f and ./f",
		Blob:    testutil.NewTar().File("f", "one").File("./f", "two").Bytes(),
		WantErr: errEntry("./f"),
	}, {
		Name:    "H69 the root as a file",
		Blob:    rawEntries(rawEntry{hdr: tar.Header{Name: "./", Typeflag: tar.TypeReg, Size: 1}, data: []byte("x")}),
		WantErr: errEntry("./"),
	}, {
		Name:    "H70 an unknown entry type",
		Blob:    rawEntries(rawEntry{hdr: tar.Header{Name: "odd", Typeflag: 'Z'}}),
		WantErr: errEntry("odd"),
	}, {
		Name:    "H71 a socket entry type is refused",
		Blob:    rawEntries(rawEntry{hdr: tar.Header{Name: "sock", Typeflag: 's'}}),
		WantErr: errEntry("sock"),
	}, {
		Name: "H72 owners at the edges",
		Blob: testutil.NewTar().File("a", "a", testutil.Owner(4294967294, 4294967294)).Bytes(),
		Tree: tree("a", "file:a 4294967294:4294967294"),
	}, {
		Name: "H73 owner 2^32-1 (chown's no-change value) is refused",
		Blob: testutil.NewTar().File("a", "a", testutil.Owner(4294967295, 0),
			testutil.Format(tar.FormatPAX)).Bytes(),
		WantErr: errEntry("a"),
	}, {
		Name: "H74 a huge sparse file stays sparse",
		Blob: testutil.NewTar().Sparse("big", 1<<40, []testutil.SparseChunk{
			{Offset: 1 << 32, Data: []byte("data at 4 GiB")}}).Bytes(),
		Huge: true,
		Tree: tree("big", "file size=1099511627776"),
	}, {
		Name: "H75 a sparse map pointing past the file's size",
		Blob: testutil.NewTar().Sparse("bad", 4096, []testutil.SparseChunk{
			{Offset: 1 << 20, Data: []byte("x")}}).Bytes(),
		WantErr: "invalid tar header",
	}, {
		Name: "C07 names: absolute, doubled slashes, dots",
		Blob: testutil.NewTar().File("/abs/x", "x").Dir("abs/").Dir("./").Dir(".//a//b/").
			File("a/./b/c", "c").Bytes(),
		Tree: tree("abs/x", "file:x", "a/b/c", "file:c"),
	}, {
		Name:    "C08 y file then y/z",
		Blob:    testutil.NewTar().File("y", "y").File("y/z", "z").Bytes(),
		WantErr: errEntry("y/z"),
	}}
}

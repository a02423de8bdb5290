package tarsplit_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stratafs/strata/testutil"
)

// layerCase is a tar the recorder must record exactly.
type layerCase struct {
	name   string
	blob   []byte
	sparse bool // holds a sparse entry: tar-split's own recorder expands it
	// lossy: tar-split's own recorder drops bytes of this tar (so its
	// record cannot rebuild it) where the Recorder keeps them.
	lossy bool
	// kept: the Recorder keeps data in the record that tar-split's own
	// recorder expects to find in a file (whiteout markers' data).
	kept bool
}

var mtime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// corpus is a varied set of layer tars: every header form the recorder
// parses, framing variants, and entries of every type.
func corpus() []layerCase {
	long := strings.Repeat("long-directory-name/", 8) + "file"
	return []layerCase{
		{name: "ustar files and dirs", blob: testutil.NewTar().Dir("etc/").
			File("etc/passwd", "root:x:0:0::/root:/bin/sh\n").File("empty", "").
			File("block", strings.Repeat("x", 512)).Bytes()},
		{name: "PAX records and xattrs", blob: testutil.NewTar().
			File("usr/bin/ping", "elf", testutil.Mode(0o4755),
				testutil.Xattr("user.bin", "\x01\x00\x00\x02"),
				testutil.PAX("SCHILY.xattr.user.note", "hi")).
			File("caf\xe9", "latin-1 name", testutil.Format(tar.FormatPAX)).
			File("π/ünïcödé", "utf-8 name").Bytes()},
		{name: "PAX path longer than 100", blob: testutil.NewTar().
			File(long, "deep", testutil.Format(tar.FormatPAX)).Bytes()},
		{name: "GNU long name and link", blob: testutil.NewTar().
			File(long, "deep", testutil.Format(tar.FormatGNU)).
			Symlink("l", strings.Repeat("t", 150), testutil.Format(tar.FormatGNU)).
			Hardlink("h-"+strings.Repeat("n", 120), long, testutil.Format(tar.FormatGNU)).Bytes()},
		{name: "ustar prefix", blob: testutil.NewTar().
			File(strings.Repeat("p", 120)+"/name", "prefixed", testutil.Format(tar.FormatUSTAR)).Bytes()},
		{name: "hardlinks symlinks devices fifo", blob: testutil.NewTar().File("bin/app", "app").
			Hardlink("x/y/z", "bin/app").Symlink("s", "bin/app").CharDev("dev/null", 1, 3).
			BlockDev("dev/sda", 8, 0).Fifo("pipe").Bytes()},
		{name: "whiteouts", blob: testutil.NewTar().Dir("d/").Whiteout("d/gone").Opaque("o").Bytes()},
		{name: "repeated dirs", blob: testutil.NewTar().Dir("d/", testutil.Mode(0o755)).
			File("d/f", "hello").Dir("d/", testutil.Mode(0o700)).Dir("d/", testutil.Mode(0o750)).Bytes()},
		{name: "big owners and base-256 size fields", blob: testutil.NewTar().
			File("owned", "x", testutil.Owner(4294967294, 1885580785)).Bytes()},
		{name: "global PAX header", blob: testutil.NewTar().
			Raw(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global",
				PAXRecords: map[string]string{"comment": "built by a test"}}, nil).
			File("after-global", "g").Bytes()},
		{name: "trailing zeros", blob: testutil.NewTar().File("a", "a").Dir("b/").
			Trailing(make([]byte, 8192)).Bytes()},
		{name: "trailing junk", blob: testutil.NewTar().File("a", "a").
			Trailing([]byte("not a tar, but after its end")).Bytes()},
		{name: "missing end blocks", blob: testutil.NewTar().File("a", "a").Dir("b/").
			File("b/c", "c").NoEnd().Bytes()},
		{name: "one end block", blob: append(testutil.NewTar().File("a", "a").NoEnd().Bytes(),
			make([]byte, 512)...)},
		{name: "cut in the last padding", lossy: true, blob: testutil.NewTar().File("a", "a").NoEnd().Bytes()[:700]},
		{name: "empty stream", blob: nil},
		{name: "only end blocks", blob: make([]byte, 1024)},
		{name: "old V7 directory with trailing slash", blob: v7Dir("olddir/")},
		{name: "sparse 1.0", sparse: true, blob: testutil.NewTar().File("before", "b").
			Sparse("big", 1<<30, []testutil.SparseChunk{{Offset: 1 << 20, Data: []byte("mid")},
				{Offset: 1<<30 - 4096, Data: bytes.Repeat([]byte("e"), 4096)}}).
			File("after", "a").Bytes()},
		{name: "sparse 1.0 all hole", sparse: true, blob: testutil.NewTar().
			Sparse("hole", 1<<40, nil).Bytes()},
		{name: "sparse 0.1", sparse: true, blob: sparse0x("s01", "0.1")},
		{name: "sparse 0.0", sparse: true, blob: sparse0x("s00", "0.0")},
		{name: "old GNU sparse with extension blocks", sparse: true, blob: oldGNUSparse("gnu", 30)},
		{name: "old GNU sparse in the header alone", sparse: true, blob: oldGNUSparse("gnu4", 3)},
		{name: "GNU atime with a NUL inside", blob: gnuBlocks(gnuFile("f", "abc", func(b *[512]byte) {
			copy(b[345:357], "0\x0012345670") // archive/tar reads 0; the prefix is not used
		}))},
		{name: "whiteout and opaque markers with data", kept: true, blob: testutil.NewTar().Dir("d/").
			File("d/.wh.gone", "data of a whiteout").File("o/.wh..wh..opq", strings.Repeat("o", 600)).
			File("after", "a").Bytes()},
		{name: "empty GNU long name", blob: gnuBlocks(gnuFile("././@LongLink", "", func(b *[512]byte) {
			b[156] = 'L'
		}), gnuFile("named", "n", nil))},
	}
}

// gnuFile is a GNU-format header block for a file of content, edited by
// edit before its checksum is written, followed by the content's blocks.
func gnuFile(name, content string, edit func(b *[512]byte)) []byte {
	b := testutil.USTARBlock(tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(content)),
		Mode: 0o644, ModTime: mtime})
	copy(b[257:265], "ustar  \x00")
	if edit != nil {
		edit(&b)
	}
	testutil.FixChecksum(&b)
	return append(b[:], padded([]byte(content))...)
}

// gnuBlocks ends entries with the end-of-archive blocks.
func gnuBlocks(entries ...[]byte) []byte {
	return append(bytes.Join(entries, nil), make([]byte, 1024)...)
}

// regions are the data regions of the hand-built sparse files: n pieces of
// 100 bytes, one every MiB.
func regions(n int) (offsets []int64, data []byte) {
	for i := range n {
		offsets = append(offsets, int64(i)<<20)
		data = append(data, bytes.Repeat([]byte{byte('a' + i%26)}, 100)...)
	}
	return offsets, data
}

// sparse0x builds a GNU sparse file in PAX format 0.0 (repeated
// offset/numbytes records) or 0.1 (one map record), apparent size 64 MiB.
func sparse0x(name, version string) []byte {
	offsets, data := regions(5)
	var records [][2]string
	records = append(records, [2]string{"GNU.sparse.name", name},
		[2]string{"GNU.sparse.size", strconv.Itoa(64 << 20)},
		[2]string{"GNU.sparse.numblocks", strconv.Itoa(len(offsets))})
	if version == "0.1" {
		var m []string
		for _, off := range offsets {
			m = append(m, strconv.FormatInt(off, 10), "100")
		}
		records = append(records, [2]string{"GNU.sparse.major", "0"},
			[2]string{"GNU.sparse.minor", "1"}, [2]string{"GNU.sparse.map", strings.Join(m, ",")})
	} else {
		for _, off := range offsets {
			records = append(records, [2]string{"GNU.sparse.offset", strconv.FormatInt(off, 10)},
				[2]string{"GNU.sparse.numbytes", "100"})
		}
	}
	body := paxBody(records)

	var out bytes.Buffer
	pax := testutil.USTARBlock(tar.Header{Typeflag: tar.TypeXHeader, Name: "PaxHeaders/" + name,
		Size: int64(len(body)), Mode: 0o644, ModTime: mtime})
	out.Write(pax[:])
	out.Write(padded(body))
	hdr := testutil.USTARBlock(tar.Header{Typeflag: tar.TypeReg, Name: "GNUSparseFile/" + name,
		Size: int64(len(data)), Mode: 0o644, ModTime: mtime})
	out.Write(hdr[:])
	out.Write(padded(data))
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

// oldGNUSparse builds a GNU 'S' entry with n data regions: four in the
// header, the rest in extension blocks of 21.
func oldGNUSparse(name string, n int) []byte {
	offsets, data := regions(n)
	realSize := offsets[n-1] + 100 + 1<<20

	var blk [512]byte
	copy(blk[0:], name)
	octalField(blk[100:108], 0o644)
	octalField(blk[108:116], 0)
	octalField(blk[116:124], 0)
	octalField(blk[124:136], int64(len(data)))
	octalField(blk[136:148], mtime.Unix())
	blk[156] = 'S'
	copy(blk[257:265], "ustar  \x00")
	slot := func(b []byte, i int, off int64) {
		octalField(b[i*24:i*24+12], off)
		octalField(b[i*24+12:i*24+24], 100)
	}
	for i := 0; i < 4 && i < n; i++ {
		slot(blk[386:482], i, offsets[i])
	}
	if n > 4 {
		blk[482] = 1
	}
	octalField(blk[483:495], realSize)
	testutil.FixChecksum(&blk)

	var out bytes.Buffer
	out.Write(blk[:])
	for rest := offsets[min(4, n):]; len(rest) > 0; {
		var ext [512]byte
		k := min(21, len(rest))
		for i := range k {
			slot(ext[:504], i, rest[i])
		}
		rest = rest[k:]
		if len(rest) > 0 {
			ext[504] = 1
		}
		out.Write(ext[:])
	}
	out.Write(padded(data))
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

// v7Dir is a pre-POSIX header of type '\x00' whose name ends in a slash:
// a directory.
func v7Dir(name string) []byte {
	var blk [512]byte
	copy(blk[0:], name)
	octalField(blk[100:108], 0o755)
	octalField(blk[108:116], 0)
	octalField(blk[116:124], 0)
	octalField(blk[124:136], 0)
	octalField(blk[136:148], mtime.Unix())
	testutil.FixChecksum(&blk)
	return append(blk[:], make([]byte, 1024)...)
}

func octalField(b []byte, v int64) {
	s := fmt.Sprintf("%0*o", len(b)-1, v)
	copy(b, s)
	b[len(b)-1] = 0
}

// paxBody encodes records in the order given.
func paxBody(records [][2]string) []byte {
	var out bytes.Buffer
	for _, kv := range records {
		rest := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rest)
		for n != len(strconv.Itoa(n))+len(rest) {
			n = len(strconv.Itoa(n)) + len(rest)
		}
		fmt.Fprintf(&out, "%d%s", n, rest)
	}
	return out.Bytes()
}

func padded(b []byte) []byte {
	return append(append([]byte(nil), b...), make([]byte, -len(b)&511)...)
}

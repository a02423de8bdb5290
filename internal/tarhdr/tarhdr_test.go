package tarhdr_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stratafs/strata/internal/tarhdr"
	"github.com/stratafs/strata/testutil"
)

// readFirst reads the first header of blob with archive/tar.
func readFirst(blob []byte) (*tar.Header, error) {
	return tar.NewReader(bytes.NewReader(blob)).Next()
}

// withEnd appends blocks to an end-of-archive marker.
func withEnd(blocks ...[]byte) []byte {
	var out []byte
	for _, b := range blocks {
		out = append(out, b...)
	}
	return append(out, make([]byte, 1024)...)
}

// TestOctalAndNumericAgreeWithArchiveTar puts each field in a header's uid
// and reads it back with archive/tar: Numeric must accept exactly what it
// accepts, with the same value.
func TestOctalAndNumericAgreeWithArchiveTar(t *testing.T) {
	fields := []string{
		"0000764\x00", "     12 ", "\x00\x0012\x00\x00\x00\x00", "12\x0034\x00\x00\x00",
		"1 2\x00\x00\x00\x00\x00", "0000009\x00", "-000001\x00", "\x00\x00\x00\x00\x00\x00\x00\x00",
		"        ", "7777777\x00", "+000007\x00", "0x10\x00\x00\x00\x00",
		"\x80\x00\x00\x00\x00\x00\x03\xe8", "\xff\xff\xff\xff\xff\xff\xff\xff", "\xc0\x00\x00\x00\x00\x00\x00\x01",
	}
	for _, field := range fields {
		blk := testutil.USTARBlock(tar.Header{Name: "f", Mode: 0o644, Typeflag: tar.TypeReg})
		copy(blk[tarhdr.OffUID:tarhdr.OffGID], field)
		testutil.FixChecksum(&blk)
		hdr, err := readFirst(withEnd(blk[:]))
		got, ok := tarhdr.Numeric(blk[tarhdr.OffUID:tarhdr.OffGID])
		if ok != (err == nil) || (ok && int64(hdr.Uid) != got) {
			t.Errorf("field %q: Numeric gives %d, %v; archive/tar gives %v, %v", field, got, ok, hdr, err)
		}
		if field[0]&0x80 == 0 {
			if o, ook := tarhdr.Octal(blk[tarhdr.OffUID:tarhdr.OffGID]); o != got || ook != ok {
				t.Errorf("field %q: Octal gives %d, %v, Numeric %d, %v", field, o, ook, got, ok)
			}
		}
	}
}

// TestCheckKinds: the kind Check gives decides, as in archive/tar, whether
// the prefix field is part of the name (USTAR, whatever its version
// field, and star) or not (V7 and GNU); a bad checksum is refused by both.
func TestCheckKinds(t *testing.T) {
	cases := []struct {
		magic, version string
		star           bool
		want           tarhdr.Kind
	}{
		{"ustar\x00", "00", false, tarhdr.USTAR},
		{"ustar\x00", "  ", false, tarhdr.USTAR},
		{"ustar\x00", "\x00\x00", false, tarhdr.USTAR},
		{"ustar\x00", "00", true, tarhdr.STAR},
		{"ustar ", " \x00", false, tarhdr.GNU},
		{"ustar ", "\x00\x00", false, tarhdr.V7},
		{"\x00\x00\x00\x00\x00\x00", "\x00\x00", false, tarhdr.V7},
	}
	for _, c := range cases {
		blk := testutil.USTARBlock(tar.Header{Name: "n", Mode: 0o644, Typeflag: tar.TypeReg})
		copy(blk[tarhdr.OffMagic:tarhdr.OffVersion], c.magic)
		copy(blk[tarhdr.OffVersion:tarhdr.OffVersion+2], c.version)
		if c.want != tarhdr.GNU { // GNU keeps atime there
			copy(blk[tarhdr.OffPrefix:], "p")
		}
		if c.star {
			copy(blk[tarhdr.OffSTARTrailer:], "tar\x00")
		}
		testutil.FixChecksum(&blk)
		kind, _, ok := tarhdr.Check(&blk)
		hdr, err := readFirst(withEnd(blk[:]))
		if !ok || err != nil || kind != c.want {
			t.Fatalf("magic %q version %q: kind %v ok %v (want %v); archive/tar: %v", c.magic, c.version, kind, ok, c.want, err)
		}
		prefixed := hdr.Name == "p/n"
		if prefixed != (kind == tarhdr.USTAR || kind == tarhdr.STAR) {
			t.Errorf("magic %q version %q: kind %v, archive/tar names the entry %q", c.magic, c.version, kind, hdr.Name)
		}
		blk[0] ^= 1 // the checksum no longer matches
		if _, _, ok := tarhdr.Check(&blk); ok {
			t.Errorf("magic %q version %q: a changed block still passes", c.magic, c.version)
		}
		if _, err := readFirst(withEnd(blk[:])); err == nil {
			t.Errorf("magic %q version %q: archive/tar accepts the changed block", c.magic, c.version)
		}
	}
}

// TestNextPAXRecordAgreesWithArchiveTar gives each PAX data to archive/tar
// in an extended header before a file: it must accept exactly the data
// NextPAXRecord splits, with the same records.
func TestNextPAXRecordAgreesWithArchiveTar(t *testing.T) {
	datas := []string{
		"12 path=abc\n", "+12 path=abc\n", "12 path=abc\n13 uname=bob\n", "11 path=abc\n",
		"12 path=abc", "12 pathXabc\n", "7 =abc\n", "4 a=\n", "5 a=\n", "6 a=bc\n",
		"14 path=a\x00bc\n", "13 mykey=a\x00b\n", "13 my\x00ey=ab\n", "012 path=abc\n",
		"12  path=ab\n", "x path=abc\n", "99999999999999999999 a=b\n", "15 comment=a=b\n",
		"14 uname=bob\n\n",
	}
	for _, data := range datas {
		x := testutil.USTARBlock(tar.Header{Name: "PaxHeaders/f", Size: int64(len(data)), Typeflag: tar.TypeXHeader})
		body := append([]byte(data), make([]byte, -len(data)&511)...)
		file := testutil.USTARBlock(tar.Header{Name: "f", Mode: 0o644, Typeflag: tar.TypeReg})
		hdr, err := readFirst(withEnd(x[:], body, file[:]))

		recs := map[string]string{}
		ok := true
		for s := data; len(s) > 0 && ok; {
			var k, v string
			k, v, s, ok = tarhdr.NextPAXRecord(s)
			if ok {
				recs[k] = v
			}
		}
		if ok != (err == nil) {
			t.Errorf("%q: NextPAXRecord ok %v, archive/tar error %v", data, ok, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, tar.ErrHeader) && err != io.ErrUnexpectedEOF {
				t.Errorf("%q: archive/tar: %v", data, err)
			}
			continue
		}
		for k, v := range recs {
			if hdr.PAXRecords[k] != v {
				t.Errorf("%q: record %q is %q here, %q in archive/tar", data, k, v, hdr.PAXRecords[k])
			}
		}
		if len(recs) != len(hdr.PAXRecords) {
			t.Errorf("%q: records %v here, %v in archive/tar", data, recs, hdr.PAXRecords)
		}
	}
}

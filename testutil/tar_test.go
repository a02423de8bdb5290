package testutil

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func readAll(t *testing.T, p []byte) ([]*tar.Header, map[string][]byte, error) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(p))
	var hdrs []*tar.Header
	data := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return hdrs, data, nil
		}
		if err != nil {
			return hdrs, data, err
		}
		hdrs = append(hdrs, hdr)
		b, err := io.ReadAll(tr)
		if err != nil {
			return hdrs, data, err
		}
		data[hdr.Name] = b
	}
}

func TestTarEntryKinds(t *testing.T) {
	long := string(bytes.Repeat([]byte("d"), 150)) + "/file"
	b := NewTar().
		Dir("etc", Mode(0o1777), Owner(4294967294, 7)).
		File("etc/f", "hi", Mode(0o4755), Xattr("user.note", "x")).
		Symlink("l", "/etc").
		Hardlink("h", "etc/f").
		Fifo("p").
		CharDev("null", 1, 3).
		BlockDev("sda", 8, 0).
		Whiteout("etc/gone").
		Opaque("etc").
		Opaque("").
		File(long, "long")
	hdrs, data, err := readAll(t, b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		typ  byte
	}{
		{"etc/", tar.TypeDir}, {"etc/f", tar.TypeReg}, {"l", tar.TypeSymlink},
		{"h", tar.TypeLink}, {"p", tar.TypeFifo}, {"null", tar.TypeChar},
		{"sda", tar.TypeBlock}, {"etc/.wh.gone", tar.TypeReg},
		{"etc/.wh..wh..opq", tar.TypeReg}, {".wh..wh..opq", tar.TypeReg}, {long, tar.TypeReg},
	}
	if len(hdrs) != len(want) {
		t.Fatalf("got %d entries, want %d", len(hdrs), len(want))
	}
	for i, w := range want {
		if hdrs[i].Name != w.name || hdrs[i].Typeflag != w.typ {
			t.Errorf("entry %d = %q %q, want %q %q", i, hdrs[i].Name, hdrs[i].Typeflag, w.name, w.typ)
		}
	}
	if hdrs[0].Mode != 0o1777 || hdrs[0].Uid != 4294967294 || hdrs[0].Gid != 7 {
		t.Errorf("etc/ header = %o %d:%d", hdrs[0].Mode, hdrs[0].Uid, hdrs[0].Gid)
	}
	if hdrs[1].PAXRecords["SCHILY.xattr.user.note"] != "x" || hdrs[1].Mode != 0o4755 {
		t.Errorf("etc/f header = %o %v", hdrs[1].Mode, hdrs[1].PAXRecords)
	}
	if hdrs[5].Devmajor != 1 || hdrs[5].Devminor != 3 {
		t.Errorf("null = %d:%d", hdrs[5].Devmajor, hdrs[5].Devminor)
	}
	if string(data["etc/f"]) != "hi" || string(data[long]) != "long" {
		t.Errorf("data = %q", data)
	}
	if !hdrs[0].ModTime.Equal(DefaultMTime) {
		t.Errorf("mtime = %v", hdrs[0].ModTime)
	}
}

func TestTarSparse(t *testing.T) {
	payload := bytes.Repeat([]byte("z"), 4096)
	b := NewTar().Sparse("big", 1<<40, []SparseChunk{{Offset: 1 << 32, Data: payload}},
		Owner(5, 6), Xattr("user.a", "b")).File("after", "x")
	tr := tar.NewReader(bytes.NewReader(b.Bytes()))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != "big" || hdr.Size != 1<<40 || hdr.Uid != 5 || hdr.PAXRecords["SCHILY.xattr.user.a"] != "b" {
		t.Fatalf("sparse header = %+v", hdr)
	}
	// Read the region around the data without reading the whole TiB.
	if _, err := io.CopyN(io.Discard, tr, 1<<32-10); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 20)
	if _, err := io.ReadFull(tr, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(make([]byte, 10), payload[:10]...)) {
		t.Errorf("around offset 2^32: %q", got)
	}
	hdr, err = tr.Next()
	if err != nil || hdr.Name != "after" {
		t.Fatalf("next = %v, %v", hdr, err)
	}
}

func TestTarFraming(t *testing.T) {
	base := func() *Tar { return NewTar().File("a", "1").Dir("b").File("b/c", "hello world") }
	full := base().Bytes()
	noEnd := base().NoEnd().Bytes()
	if len(full)-len(noEnd) != 1024 {
		t.Errorf("NoEnd removed %d bytes, want 1024", len(full)-len(noEnd))
	}
	if _, _, err := readAll(t, noEnd); err != nil {
		t.Errorf("no end blocks: %v", err)
	}
	padded := base().Trailing(make([]byte, 8192)).Bytes()
	if len(padded) != len(full)+8192 {
		t.Errorf("Trailing: %d bytes", len(padded))
	}
	cut := base().CutIn("b/c")
	if _, _, err := readAll(t, cut); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut in b/c: err = %v", err)
	}

	zr, err := gzip.NewReader(bytes.NewReader(base().Gzip()))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, full) {
		t.Error("gzip round trip differs")
	}
	zd, err := zstd.NewReader(bytes.NewReader(base().Zstd()))
	if err != nil {
		t.Fatal(err)
	}
	defer zd.Close()
	if got, _ := io.ReadAll(zd); !bytes.Equal(got, full) {
		t.Error("zstd round trip differs")
	}
}

func TestTarRawBytes(t *testing.T) {
	blk := USTARBlock(tar.Header{Name: "raw", Typeflag: tar.TypeReg, Size: 0, Mode: 0o600})
	b := NewTar().File("a", "x").RawBytes(blk[:]).Raw(&tar.Header{Name: "z", Typeflag: tar.TypeReg, Mode: 0o600}, []byte("zz"))
	hdrs, data, err := readAll(t, b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(hdrs) != 3 || hdrs[1].Name != "raw" || hdrs[1].Mode != 0o600 || string(data["z"]) != "zz" {
		t.Fatalf("entries = %+v", hdrs)
	}
}

package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/internal/crc64iso"
	"github.com/stratafs/strata/internal/tarsplit"
	"github.com/stratafs/strata/testutil"
)

// splitTar records the tar-split of layer, the way the layer store does on
// Put, and writes its regular files into dir at the names Apply would use.
func recordTarSplit(t *testing.T, layer []byte, dir string) []byte {
	t.Helper()
	var record bytes.Buffer
	zw := gzip.NewWriter(&record)
	stream, err := asm.NewInputTarStream(bytes.NewReader(layer), storage.NewJSONPacker(zw), storage.NewDiscardFilePutter())
	exportNoErr(t, err)
	tr := tar.NewReader(stream)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		exportNoErr(t, err)
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		target := filepath.Join(dir, filepath.Clean("/"+hdr.Name))
		exportNoErr(t, os.MkdirAll(filepath.Dir(target), 0o755))
		content, err := io.ReadAll(tr)
		exportNoErr(t, err)
		exportNoErr(t, os.WriteFile(target, content, 0o644))
	}
	_, err = io.Copy(io.Discard, stream)
	exportNoErr(t, err)
	exportNoErr(t, zw.Close())
	return record.Bytes()
}

// TestExportTarSplitExactBytes reassembles tars whose bytes a plain export
// could never reproduce (GNU and PAX headers, odd names, trailing padding).
func TestExportTarSplitExactBytes(t *testing.T) {
	stamp := time.Date(2003, 4, 5, 6, 7, 8, 0, time.UTC)
	build := func(format tar.Format, entries []*tar.Header, contents map[string]string, tail int) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, hdr := range entries {
			hdr.Format = format
			hdr.ModTime = stamp
			hdr.Size = int64(len(contents[hdr.Name]))
			exportNoErr(t, tw.WriteHeader(hdr))
			_, err := io.WriteString(tw, contents[hdr.Name])
			exportNoErr(t, err)
		}
		exportNoErr(t, tw.Close())
		buf.Write(make([]byte, tail))
		return buf.Bytes()
	}
	entries := func() []*tar.Header {
		return []*tar.Header{
			{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "./etc/os-release", Typeflag: tar.TypeReg, Mode: 0o644, Uname: "root"},
			{Name: "./etc/.wh.gone", Typeflag: tar.TypeReg},
			{Name: "/abs/x", Typeflag: tar.TypeReg, Mode: 0o600, Uid: 4294967294},
			{Name: "a/./b/c", Typeflag: tar.TypeReg, Mode: 0o644},
			{Name: "empty", Typeflag: tar.TypeReg, Mode: 0o644},
			{Name: "hard", Typeflag: tar.TypeLink, Linkname: "./etc/os-release"},
			{Name: "long/" + strings.Repeat("n", 150), Typeflag: tar.TypeReg, Mode: 0o644},
		}
	}
	contents := map[string]string{
		"./etc/os-release":                 "NAME=test\n",
		"/abs/x":                           strings.Repeat("x", 5000),
		"a/./b/c":                          "c",
		"long/" + strings.Repeat("n", 150): "long",
	}

	cases := []struct {
		name  string
		layer []byte
	}{
		{"pax", build(tar.FormatPAX, entries(), contents, 0)},
		{"gnu", build(tar.FormatGNU, entries(), contents, 0)},
		{"C13-trailing-zeros", build(tar.FormatPAX, entries(), contents, 8192)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			record := recordTarSplit(t, c.layer, dir)

			var out bytes.Buffer
			exportNoErr(t, ExportTarSplit(dir, bytes.NewReader(record), &out))
			if !bytes.Equal(out.Bytes(), c.layer) {
				t.Fatalf("reassembled tar differs: %d bytes, want %d", out.Len(), len(c.layer))
			}

			// A file changed after the import cannot give the old bytes.
			exportNoErr(t, os.WriteFile(filepath.Join(dir, "a/b/c"), []byte("C"), 0o644))
			err := ExportTarSplit(dir, bytes.NewReader(record), io.Discard)
			if err == nil || !strings.Contains(err.Error(), "a/./b/c") {
				t.Fatalf("changed file: err = %v, want a checksum error naming a/./b/c", err)
			}
		})
	}
}

// TestExportTarSplitReadsOnlyRegularFiles: a record naming a FIFO, a char
// device or a directory with a size (a record that does not match the
// diff dir, or one written with a size for a header-only entry) fails
// naming the entry, without blocking on the FIFO and without copying a
// byte of the device; a regular file longer than recorded gives only the
// recorded bytes.
func TestExportTarSplitReadsOnlyRegularFiles(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	exportNoErr(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	exportNoErr(t, unix.Mknod(filepath.Join(dir, "zero"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
	exportNoErr(t, os.Mkdir(filepath.Join(dir, "dir"), 0o755))
	exportNoErr(t, os.WriteFile(filepath.Join(dir, "longer"), []byte("abcdEXTRA"), 0o644))

	record := func(name string, size int64) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		p := tarsplit.NewPacker(zw)
		_, err := p.AddEntry(storage.Entry{Type: storage.SegmentType, Payload: []byte("HEADER")})
		exportNoErr(t, err)
		_, err = p.AddEntry(storage.Entry{Type: storage.FileType, Name: name, Size: size, Payload: make([]byte, 8)})
		exportNoErr(t, err)
		exportNoErr(t, zw.Close())
		return buf.Bytes()
	}
	for _, name := range []string{"fifo", "zero", "dir"} {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			var out bytes.Buffer
			go func() { done <- ExportTarSplit(dir, bytes.NewReader(record(name, 4)), &out) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), `"`+name+`"`) || !strings.Contains(err.Error(), "not a regular file") {
					t.Fatalf("err = %v, want one naming %q as not a regular file", err, name)
				}
				if out.String() != "HEADER" {
					t.Fatalf("wrote %q after the header segment", out.String()[min(6, out.Len()):])
				}
			case <-time.After(30 * time.Second):
				t.Fatal("ExportTarSplit still blocked after 30 s (hang guard, not a speed check)")
			}
		})
	}

	t.Run("longer regular file", func(t *testing.T) {
		h := crc64iso.New()
		h.Write([]byte("abcd"))
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		p := tarsplit.NewPacker(zw)
		_, err := p.AddEntry(storage.Entry{Type: storage.FileType, Name: "longer", Size: 4, Payload: h.Sum(nil)})
		exportNoErr(t, err)
		exportNoErr(t, zw.Close())
		var out bytes.Buffer
		exportNoErr(t, ExportTarSplit(dir, &buf, &out))
		if out.String() != "abcd" {
			t.Fatalf("wrote %q, want the 4 recorded bytes", out.String())
		}
	})
}

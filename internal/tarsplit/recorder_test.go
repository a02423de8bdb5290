package tarsplit_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	tsTar "github.com/vbatts/tar-split/archive/tar"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/stratafs/strata/archive"
	"github.com/stratafs/strata/internal/tarsplit"
	"github.com/stratafs/strata/testutil"
)

// chunkSizes feed the recorder in pieces that split headers, records and
// data every way.
var chunkSizes = []int{1, 7, 511, 512, 4096, 1 << 30}

// record runs blob through a Recorder in writes of chunk bytes and returns
// the JSON record.
func record(t testing.TB, blob []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	rec := tarsplit.NewRecorder(tarsplit.NewPacker(&out))
	for p := blob; len(p) > 0; {
		n := min(chunk, len(p))
		if _, err := rec.Write(p[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		p = p[n:]
	}
	if err := rec.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.Bytes()
}

// tarSplitRecord is what tar-split's own input stream records for blob.
func tarSplitRecord(t testing.TB, blob []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	stream, err := asm.NewInputTarStream(bytes.NewReader(blob), tarsplit.NewPacker(&out), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, stream); err != nil {
		t.Fatalf("tar-split: %v", err)
	}
	return out.Bytes()
}

func entries(t testing.TB, rec []byte) []storage.Entry {
	t.Helper()
	var list []storage.Entry
	u := tarsplit.NewUnpacker(bytes.NewReader(rec))
	for {
		e, err := u.Next()
		if err == io.EOF {
			return list
		}
		if err != nil {
			t.Fatalf("decoding record: %v", err)
		}
		list = append(list, *e)
	}
}

// TestRecorderMatchesTarSplit: for tars without sparse entries the record
// holds the same entries, in the same order, as tar-split's own.
func TestRecorderMatchesTarSplit(t *testing.T) {
	for _, c := range corpus() {
		if c.sparse || c.lossy || c.kept {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			want := entries(t, tarSplitRecord(t, c.blob))
			for _, chunk := range chunkSizes {
				got := entries(t, record(t, c.blob, chunk))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("writes of %d bytes: entries differ\n got %s\nwant %s",
						chunk, describe(got), describe(want))
				}
			}
		})
	}
}

// TestRecorderRebuild rebuilds every tar of the corpus byte for byte from
// its record and the file contents, as tar-split reassembles a layer.
func TestRecorderRebuild(t *testing.T) {
	for _, c := range corpus() {
		t.Run(c.name, func(t *testing.T) {
			files := contents(t, c.blob)
			for _, chunk := range chunkSizes {
				var rebuilt bytes.Buffer
				rec := record(t, c.blob, chunk)
				if err := asm.WriteOutputTarStream(files, tarsplit.NewUnpacker(bytes.NewReader(rec)), &rebuilt); err != nil {
					t.Fatalf("writes of %d bytes: rebuild: %v", chunk, err)
				}
				if !bytes.Equal(rebuilt.Bytes(), c.blob) {
					t.Fatalf("writes of %d bytes: rebuilt %d bytes, want %d", chunk, rebuilt.Len(), len(c.blob))
				}
			}
		})
	}
}

// TestRecorderRebuildFromAppliedDir applies each tar and rebuilds it from
// the record and the applied files, the way Store.Diff exports a layer.
func TestRecorderRebuildFromAppliedDir(t *testing.T) {
	testutil.RequireRoot(t)
	for _, c := range corpus() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := archive.Apply(dir, bytes.NewReader(c.blob), archive.Options{}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(record(t, c.blob, 4096))
			zw.Close()
			var rebuilt bytes.Buffer
			if err := archive.ExportTarSplit(dir, &gz, &rebuilt); err != nil {
				t.Fatalf("ExportTarSplit: %v", err)
			}
			if !bytes.Equal(rebuilt.Bytes(), c.blob) {
				t.Fatalf("rebuilt %d bytes, want %d", rebuilt.Len(), len(c.blob))
			}
		})
	}
}

// TestRecorderSparseNeverReadsHoles records a 1 TiB sparse file (hostile
// case H74's shape): the record keeps its compact form and a file entry
// of size 0, so neither recording nor rebuilding touches the holes.
func TestRecorderSparseNeverReadsHoles(t *testing.T) {
	blob := testutil.NewTar().Sparse("big", 1<<40, []testutil.SparseChunk{
		{Offset: 1 << 32, Data: []byte("data at 4 GiB")}}).Bytes()
	list := entries(t, record(t, blob, 1<<30))
	var files []storage.Entry
	for _, e := range list {
		if e.Type == storage.FileType {
			files = append(files, e)
		}
	}
	if len(files) != 1 || files[0].Name != "big" || files[0].Size != 0 || files[0].Payload != nil {
		t.Fatalf("file entries %s, want one for big of size 0", describe(files))
	}
}

// TestRecorderErrors: a tar archive/tar refuses is refused, and one cut
// short fails with io.ErrUnexpectedEOF naming the entry.
func TestRecorderErrors(t *testing.T) {
	good := testutil.NewTar().File("a", "a").File("victim", strings.Repeat("v", 2000)).Bytes()
	badSum := bytes.Clone(good)
	badSum[148] = '7'
	zeroThenHeader := append(make([]byte, 512), good...)
	badPAX := testutil.NewTar().RawBytes(paxEntry("12 path=x\n")).Bytes()
	bigPAX := testutil.USTARBlock(tar.Header{Typeflag: tar.TypeXHeader, Name: "p", Size: 2 << 20})

	for _, c := range []struct {
		name string
		blob []byte
		want error
		text string
	}{
		{"cut in data", testutil.NewTar().File("a", "a").File("victim", strings.Repeat("v", 2000)).
			CutIn("victim"), io.ErrUnexpectedEOF, `entry "victim"`},
		{"cut in header", good[:1300], io.ErrUnexpectedEOF, "byte 1300"},
		{"bad checksum", badSum, tarsplit.ErrHeader, "byte 0"},
		{"zero block then header", zeroThenHeader, tarsplit.ErrHeader, "byte 512"},
		{"bad PAX record", badPAX, tarsplit.ErrHeader, "PAX header"},
		{"PAX header over 1 MiB", bigPAX[:], tarsplit.ErrHeader, "extension header"},
		{"sparse map cut", testutil.NewTar().Sparse("s", 1<<20, []testutil.SparseChunk{
			{Offset: 10, Data: []byte("x")}}).CutIn("s"), io.ErrUnexpectedEOF, `entry "s"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := tarsplit.NewRecorder(tarsplit.NewPacker(io.Discard))
			_, err := rec.Write(c.blob)
			if err == nil {
				err = rec.Close()
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("error %v, want %v mentioning %q", err, c.want, c.text)
			}
			if _, again := rec.Write([]byte{0}); !errors.Is(again, c.want) {
				t.Errorf("Write after the error: %v", again)
			}
		})
	}
}

// paxEntry is a PAX extended header with body (not necessarily valid)
// followed by a file.
func paxEntry(body string) []byte {
	hdr := testutil.USTARBlock(tar.Header{Typeflag: tar.TypeXHeader, Name: "pax", Size: int64(len(body))})
	file := testutil.USTARBlock(tar.Header{Typeflag: tar.TypeReg, Name: "f"})
	return append(append(hdr[:], padded([]byte(body))...), file[:]...)
}

// contents maps each entry name to its content as archive/tar reads it.
func contents(t testing.TB, blob []byte) storage.FileGetter {
	t.Helper()
	files := storage.NewBufferFileGetPutter()
	tr := tar.NewReader(bytes.NewReader(blob))
	for {
		h, err := tr.Next()
		if err == io.EOF || (err != nil && len(blob) == 0) {
			return files
		}
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		if h.Typeflag == tar.TypeReg && h.Size < 1<<20 {
			if _, _, err := files.Put(h.Name, tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func describe(list []storage.Entry) string {
	var b strings.Builder
	for _, e := range list {
		if e.Type == storage.SegmentType {
			fmt.Fprintf(&b, "\n  [%d] segment %d bytes", e.Position, len(e.Payload))
		} else {
			fmt.Fprintf(&b, "\n  [%d] file %q size %d crc %x", e.Position, e.GetName(), e.Size, e.Payload)
		}
	}
	return b.String()
}

// TestRecorderHeadersWalkable: tools that walk a record's headers without
// the files (tar-split's IterateHeaders, which containers/storage uses)
// see every entry archive/tar sees, sparse ones included. IterateHeaders
// reads junk after the end as a header and wants whole padding, so the
// framing cases that have neither are left out.
func TestRecorderHeadersWalkable(t *testing.T) {
	for _, c := range corpus() {
		if c.lossy || strings.Contains(c.name, "junk") {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			var want []string
			tr := tar.NewReader(bytes.NewReader(c.blob))
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				want = append(want, h.Name)
			}
			var got []string
			u := tarsplit.NewUnpacker(bytes.NewReader(record(t, c.blob, 4096)))
			err := asm.IterateHeaders(u, func(h *tarsplitHeader) error {
				got = append(got, h.Name)
				return nil
			})
			if err != nil {
				t.Fatalf("IterateHeaders: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("headers %q, want %q", got, want)
			}
		})
	}
}

type tarsplitHeader = tsTar.Header

// TestRecorderBigSparseData: a sparse entry with more data than one
// segment should hold is split over segments of at most 1 MiB and still
// rebuilds byte for byte.
func TestRecorderBigSparseData(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
	blob := testutil.NewTar().Sparse("big", 1<<40, []testutil.SparseChunk{{Offset: 1 << 30, Data: data}}).
		File("after", "a").Bytes()
	for _, chunk := range []int{4096, 1 << 30} {
		rec := record(t, blob, chunk)
		for _, e := range entries(t, rec) {
			if len(e.Payload) > 1<<20 {
				t.Fatalf("writes of %d bytes: a segment of %d bytes", chunk, len(e.Payload))
			}
		}
		var rebuilt bytes.Buffer
		if err := asm.WriteOutputTarStream(contents(t, blob), tarsplit.NewUnpacker(bytes.NewReader(rec)), &rebuilt); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rebuilt.Bytes(), blob) {
			t.Fatalf("writes of %d bytes: rebuilt %d bytes, want %d", chunk, rebuilt.Len(), len(blob))
		}
	}
}

// TestRecorderReadsFieldsAsArchiveTar: header fields that archive/tar
// accepts in forms writers rarely use are read alike by the recorder, so
// the file entry names the path and size the applier used: a USTAR block
// whose version field is not "00" still has its prefix, and a numeric
// field is cut at a NUL inside it.
func TestRecorderReadsFieldsAsArchiveTar(t *testing.T) {
	blk := testutil.USTARBlock(tar.Header{Name: "n", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	copy(blk[263:265], "\x00\x00")        // version
	copy(blk[345:], "p")                  // prefix
	copy(blk[124:136], "3\x007777777777") // size: 3, then junk after a NUL
	testutil.FixChecksum(&blk)
	blob := append(append(blk[:], "abc"...), make([]byte, 509+1024)...)

	hdr, err := tar.NewReader(bytes.NewReader(blob)).Next()
	if err != nil || hdr.Name != "p/n" || hdr.Size != 3 {
		t.Fatalf("archive/tar reads %+v, %v", hdr, err)
	}
	for _, chunk := range chunkSizes {
		var file *storage.Entry
		for _, e := range entries(t, record(t, blob, chunk)) {
			if e.Type == storage.FileType {
				file = &e
			}
		}
		if file == nil || file.Name != hdr.Name || file.Size != hdr.Size {
			t.Fatalf("writes of %d bytes: file entry %+v, archive/tar read %q of %d bytes", chunk, file, hdr.Name, hdr.Size)
		}
	}
}

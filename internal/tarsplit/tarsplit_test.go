package tarsplit

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

// TestRepeatedDirectoryRoundTrip records a tar that names a directory twice
// (allowed by the apply rules) and rebuilds it byte for byte; tar-split's
// own packer refuses such a tar.
func TestRepeatedDirectoryRoundTrip(t *testing.T) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, h := range []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5},
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o700},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hello"))
		}
	}
	tw.Close()
	layer.Write(make([]byte, 4096)) // padding after the end blocks is kept too

	if _, err := recordWith(storage.NewJSONPacker(io.Discard), layer.Bytes()); err == nil {
		t.Fatal("tar-split's own packer accepted a repeated path; this package may be unneeded")
	}

	var record bytes.Buffer
	files, err := recordWith(NewPacker(&record), layer.Bytes())
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	getter := storage.NewBufferFileGetPutter()
	for name, data := range files {
		getter.Put(name, bytes.NewReader(data))
	}
	var rebuilt bytes.Buffer
	if err := asm.WriteOutputTarStream(getter, NewUnpacker(&record), &rebuilt); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if !bytes.Equal(rebuilt.Bytes(), layer.Bytes()) {
		t.Fatalf("rebuilt tar differs: %d bytes, want %d", rebuilt.Len(), layer.Len())
	}
}

// TestNonUTF8Name keeps a name that is not UTF-8 exact through name_raw.
func TestNonUTF8Name(t *testing.T) {
	var record bytes.Buffer
	p := NewPacker(&record)
	if _, err := p.AddEntry(storage.Entry{Type: storage.FileType, Name: "caf\xe9"}); err != nil {
		t.Fatal(err)
	}
	e, err := NewUnpacker(&record).Next()
	if err != nil {
		t.Fatal(err)
	}
	if got := e.GetName(); got != "caf\xe9" {
		t.Fatalf("name %q, want %q", got, "caf\xe9")
	}
}

// recordWith runs tar through tar-split's input stream with packer and
// returns the file contents it saw.
func recordWith(packer storage.Packer, layer []byte) (map[string][]byte, error) {
	files := map[string][]byte{}
	putter := storage.NewBufferFileGetPutter()
	stream, err := asm.NewInputTarStream(bytes.NewReader(layer), packer, putter)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return nil, err
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
}

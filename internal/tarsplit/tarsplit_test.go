package tarsplit

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"unicode/utf8"

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

// TestPackerMatchesEncodingJSON: the packer's hand-written JSON lines are
// byte for byte what encoding/json's Encoder writes for the same entry.
func TestPackerMatchesEncodingJSON(t *testing.T) {
	names := []string{"", "usr/bin/env", "a b", `q"uote`, `back\slash`, "tab\tnew\nline", "<&>",
		"ütf-8", "\u2028\u2029", "\x7f", string([]byte{0xff, 'x'})}
	payloads := [][]byte{nil, {}, {0}, []byte("header bytes"), bytes.Repeat([]byte{0xab}, 1000)}
	for i, name := range names {
		for j, payload := range payloads {
			comparePacked(t, storage.Entry{Type: storage.Type(1 + (i+j)%2), Name: name,
				Size: int64(i * j * 1000), Payload: payload, Position: i + j}, int64(i))
		}
	}
	comparePacked(t, storage.Entry{Type: storage.FileType, NameRaw: []byte{0xfe, 0xff}, Size: -1}, 0)
}

func FuzzPacker(f *testing.F) {
	f.Add(1, "usr/bin/env", []byte(nil), []byte("x"), int64(5))
	f.Add(2, "<\u2028>", []byte{0xff}, []byte{}, int64(0))
	f.Fuzz(func(t *testing.T, typ int, name string, nameRaw, payload []byte, size int64) {
		comparePacked(t, storage.Entry{Type: storage.Type(typ), Name: name, NameRaw: nameRaw,
			Size: size, Payload: payload}, size)
	})
}

// comparePacked packs e with a Packer whose next position is pos and
// with encoding/json, and fails on any difference.
func comparePacked(t *testing.T, e storage.Entry, pos int64) {
	t.Helper()
	var got bytes.Buffer
	p := NewPacker(&got)
	p.pos = int(pos & 0xffff)
	if _, err := p.AddEntry(e); err != nil {
		t.Fatal(err)
	}
	if e.Name != "" && !utf8.ValidString(e.Name) {
		e.NameRaw, e.Name = []byte(e.Name), ""
	}
	e.Position = int(pos & 0xffff)
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(e); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("packer wrote\n%s\nencoding/json wrote\n%s", got.Bytes(), want.Bytes())
	}
}

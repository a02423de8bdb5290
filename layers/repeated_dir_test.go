package layers

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// TestRepeatedDirectoryEntry: a later entry for a directory updates its
// metadata (DESIGN.md, "Duplicate entries"); the layer is stored and exported
// byte for byte, while a repeated file is still rejected with nothing left.
func TestRepeatedDirectoryEntry(t *testing.T) {
	s, drv := overlayStore(t)

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, h := range []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 7},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hi"))
		}
	}
	tw.Close()

	l, err := s.Put(PutOptions{}, bytes.NewReader(layer.Bytes()))
	if err != nil {
		t.Fatalf("Put of a tar repeating a directory: %v", err)
	}
	diffDir, err := drv.DiffPath(l.ID)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(diffDir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("d mode %o, want the later entry's 0700", fi.Mode().Perm())
	}

	var out bytes.Buffer
	src, err := s.Diff(l.ID, &out)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if src != DiffFromTarSplit || !bytes.Equal(out.Bytes(), layer.Bytes()) {
		t.Fatalf("Diff from %s gave %d bytes (sha256 %x), want the %d input bytes",
			src, out.Len(), sha256.Sum256(out.Bytes()), layer.Len())
	}
	if l.UncompressedDigest != digest.FromBytes(layer.Bytes()) {
		t.Errorf("diff digest %s, want %s", l.UncompressedDigest, digest.FromBytes(layer.Bytes()))
	}

	var twice bytes.Buffer
	tw = tar.NewWriter(&twice)
	for range 2 {
		tw.WriteHeader(&tar.Header{Name: "file", Typeflag: tar.TypeReg, Mode: 0o644})
	}
	tw.Close()
	before, _ := s.List()
	if _, err := s.Put(PutOptions{}, bytes.NewReader(twice.Bytes())); err == nil {
		t.Fatal("Put of a tar repeating a file succeeded")
	}
	after, _ := s.List()
	if len(after) != len(before) {
		t.Errorf("a failed Put left a layer: %d layers, want %d", len(after), len(before))
	}
}

package layers

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/testutil"
)

// countWriter counts what it is given.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestDiffNeverLongerThanTheLayer: a tar-split record edited to name a
// file over and over cannot make an export longer than the layer's
// recorded diff size: the export stops there, saying so. (A writable
// layer's trial reassembly goes through the same reassemble, then exports
// its diff dir.)
func TestDiffNeverLongerThanTheLayer(t *testing.T) {
	s, _ := overlayStore(t)
	layerTar := testutil.NewTar().File("big", strings.Repeat("x", 1<<20)).Bytes()
	l, err := s.Put(PutOptions{ID: "base"}, bytes.NewReader(layerTar))
	if err != nil {
		t.Fatal(err)
	}
	repeatFileEntry(t, filepath.Join(s.layerDir, l.ID+".tar-split.gz"), `"name":"big"`, 50)

	var out countWriter
	src, err := s.Diff(l.ID, &out)
	if err == nil || !strings.Contains(err.Error(), "longer than the recorded diff size") {
		t.Fatalf("Diff: %v (source %q), want an error about the diff size", err, src)
	}
	if out.n > l.UncompressedSize {
		t.Fatalf("wrote %d bytes for a layer of %d", out.n, l.UncompressedSize)
	}
}

// repeatFileEntry rewrites a gzipped tar-split record with the line that
// contains marker repeated times times.
func repeatFileEntry(t *testing.T, path, marker string, times int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	found := false
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		n := 1
		if strings.Contains(sc.Text(), marker) {
			n, found = times, true
		}
		for range n {
			io.WriteString(zw, sc.Text()+"\n")
		}
	}
	f.Close()
	if err := sc.Err(); err != nil || !found {
		t.Fatalf("record %s: %v, line with %s found: %v", path, err, marker, found)
	}
	zw.Close()
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDiffNeverShorterThanTheLayer: a record cut between whole lines fails
// the export even when the recorded diff digest is gone, since the diff
// size still says how long the tar is.
func TestDiffNeverShorterThanTheLayer(t *testing.T) {
	s, _ := overlayStore(t)
	layerTar := testutil.NewTar().File("a", "first").File("b", "second").Bytes()
	l, err := s.Put(PutOptions{ID: "base"}, bytes.NewReader(layerTar))
	if err != nil {
		t.Fatal(err)
	}
	repeatFileEntry(t, filepath.Join(s.layerDir, l.ID+".tar-split.gz"), `"name":"b"`, 0)
	s.layers[0].UncompressedDigest = ""

	var out countWriter
	if src, err := s.Diff(l.ID, &out); err == nil || !strings.Contains(err.Error(), "shorter than the recorded diff size") {
		t.Fatalf("Diff: %v (source %q), want an error about the diff size", err, src)
	}
}

package layers

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
)

// FuzzLoadLayersJSON opens stores whose layers.json holds arbitrary bytes:
// no panic; the one-pass reader and writer agree with encoding/json; a
// store that opens lists its layers and saves them again in a form that
// loads to the same list. Seeds in testdata/fuzz.
func FuzzLoadLayersJSON(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"id":"`))
	f.Add([]byte(`[{"id":"` + string(bytes.Repeat([]byte("a"), 64)) + `","names":["x"],"flags":{"incomplete":true}}]`))
	f.Add([]byte(`[{"id":"a","names":["\u00fc<"],"ID":1,"x":{"y" : [1e3,null]},"flags":{"f":-0.5},` +
		`"uidmap":[{"size":1}],"created":"2024-01-02T03:04:05.5+01:00","diff-size":1e3}]`))
	// One pair of roots serves every input of this process: lock files are
	// kept open for the life of the process (lockfile.Get), so a new store
	// per input would run out of file descriptors.
	graph, run := f.TempDir(), f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		compareWithReference(t, data)
		resetStoreRoots(t, graph, run)
		if err := os.WriteFile(filepath.Join(graph, "overlay-layers", "layers.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		drv := newFakeDriver(filepath.Join(graph, "fake"))
		s, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv})
		if err != nil {
			return
		}
		list, err := s.List()
		if err != nil {
			t.Fatalf("List after a good open: %v", err)
		}
		if _, err := s.Create(CreateOptions{}); err != nil {
			t.Fatalf("Create after a good open: %v", err)
		}
		s2, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv})
		if err != nil {
			t.Fatalf("reopen after a save: %v", err)
		}
		list2, err := s2.List()
		if err != nil || len(list2) != len(list)+1 {
			t.Fatalf("reopened store lists %d layers (%v), want %d", len(list2), err, len(list)+1)
		}
	})
}

// resetStoreRoots empties the store at graph and run for the next input,
// keeping only the lock files (their descriptors stay open in this process).
func resetStoreRoots(t *testing.T, graph, run string) {
	t.Helper()
	for _, root := range []string{graph, run} {
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "overlay-layers" {
				if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		meta := filepath.Join(root, "overlay-layers")
		if err := os.MkdirAll(meta, 0o700); err != nil {
			t.Fatal(err)
		}
		files, err := os.ReadDir(meta)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range files {
			if !strings.HasSuffix(e.Name(), ".lock") {
				if err := os.RemoveAll(filepath.Join(meta, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// fuzzALSHandle is an ALS layer handle whose info record is given.
type fuzzALSHandle struct{ info []byte }

func (h fuzzALSHandle) Info() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(h.info)), nil
}
func (h fuzzALSHandle) Blob() (io.ReadCloser, error)     { return io.NopCloser(bytes.NewReader(nil)), nil }
func (h fuzzALSHandle) CreateAs(id, parent string) error { return driver.ErrNotSupported }
func (h fuzzALSHandle) Release()                         {}

// FuzzALSInfo parses arbitrary info records of an Additional Layer Store:
// no panic, and an accepted record has valid digests and the TOC digest
// asked for.
func FuzzALSInfo(f *testing.F) {
	toc := digest.FromString("toc")
	f.Add([]byte(`{"toc-digest":"` + toc.String() + `","diff-size":-1,"compression":2}`))
	f.Add([]byte(`{"toc-digest":"sha256:../../etc/passwd"}`))
	f.Add([]byte(`{"toc-digest":"` + toc.String() + `","flags":{"incomplete":true,"expected-layer-diffid":"sha256:AB"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := readALSInfo(fuzzALSHandle{info: data}, toc)
		if err != nil {
			return
		}
		if info.TOCDigest != toc {
			t.Fatalf("accepted toc-digest %q, asked for %s", info.TOCDigest, toc)
		}
		for _, d := range []digest.Digest{info.CompressedDigest, info.UncompressedDigest, info.Flags.ExpectedDiffID} {
			if d != "" && d.Validate() != nil {
				t.Fatalf("accepted malformed digest %q", d)
			}
		}
	})
}

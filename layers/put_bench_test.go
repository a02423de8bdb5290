package layers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/overlay"
	"github.com/stratafs/strata/testutil"
)

// benchPutTar is a layer of 2,000 small files and one 16 MiB file: the
// mix of metadata and data work a real layer has.
func benchPutTar() []byte {
	b := testutil.NewTar()
	for d := range 20 {
		dir := fmt.Sprintf("usr/lib/d%02d/", d)
		b.Dir(dir)
		for f := range 100 {
			b.File(fmt.Sprintf("%sf%03d", dir, f), strings.Repeat("text ", 20+(d*100+f)%800))
		}
	}
	return b.File("usr/lib/big", strings.Repeat("0123456789abcdef", 1<<20)).Bytes()
}

// BenchmarkPut puts a layer through the whole pipeline (digests, tar-split,
// overlay apply) for each compression; bytes are the uncompressed tar.
func BenchmarkPut(b *testing.B) {
	testutil.RequireRoot(b)
	plain := benchPutTar()
	for _, tc := range []struct {
		name string
		data []byte
	}{{"plain", plain}, {"gzip", testutil.Gzip(plain)}, {"zstd", testutil.Zstd(plain)}} {
		b.Run(tc.name, func(b *testing.B) {
			graph, run := testutil.TempStore(b)
			drv, err := overlay.New(filepath.Join(graph, "overlay"), overlay.Options{})
			if err != nil {
				b.Fatal(err)
			}
			s, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(plain)))
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("put%d", i)
				if _, err := s.Put(PutOptions{ID: id}, bytes.NewReader(tc.data)); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Delete(id); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// writeManyRecords writes a layers.json of n read-only layers in a chain
// of 100 (as images share bases), with the fake driver's dirs present.
func writeManyRecords(b *testing.B, graph string, n int) {
	b.Helper()
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	records := make([]*Layer, n)
	drv := newFakeDriver(filepath.Join(graph, "fake"))
	for i := range records {
		id := fmt.Sprintf("%064x", i+1)
		l := &Layer{
			ID:                 id,
			Created:            created,
			CompressedDigest:   digest.FromString("c" + id),
			CompressedSize:     int64(i) * 1000,
			UncompressedDigest: digest.FromString("u" + id),
			UncompressedSize:   int64(i) * 3000,
			CompressionType:    Gzip,
			UIDs:               []uint32{0},
			GIDs:               []uint32{0},
			ReadOnly:           true,
		}
		if i%100 != 0 {
			l.Parent = records[i-1].ID
		}
		l.setFlag(flagReadOnly, true)
		records[i] = l
		if err := drv.Create(id, l.Parent, nil); err != nil {
			b.Fatal(err)
		}
	}
	data, err := json.Marshal(records)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(graph, "overlay-layers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "layers.json"), data, 0o600); err != nil {
		b.Fatal(err)
	}
}

// openManyRecords opens a store over a layers.json of n layers (see
// writeManyRecords) with the fake driver.
func openManyRecords(b *testing.B, n int) *Store {
	graph, run := b.TempDir(), b.TempDir()
	writeManyRecords(b, graph, n)
	drv := newFakeDriver(filepath.Join(graph, "fake"))
	s, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkOpen10000 opens a read-write store of 10,000 layers (loading
// layers.json, checking for crash leftovers).
func BenchmarkOpen10000(b *testing.B) {
	graph, run := b.TempDir(), b.TempDir()
	writeManyRecords(b, graph, 10000)
	drv := newFakeDriver(filepath.Join(graph, "fake"))
	for b.Loop() {
		s, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(s.layers); n != 10000 {
			b.Fatalf("%d layers loaded", n)
		}
		s.Close()
	}
}

// BenchmarkSave10000 is the metadata save one Put does (twice: incomplete
// record, then the finished one) in a store of 10,000 layers.
func BenchmarkSave10000(b *testing.B) {
	s := openManyRecords(b, 10000)
	done, err := s.startWriting()
	if err != nil {
		b.Fatal(err)
	}
	defer done()
	for b.Loop() {
		if err := s.save(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutSmallIn10000 is a whole Put of a one-file layer into a store
// of 10,000 layers: the metadata cost a pull pays per layer.
func BenchmarkPutSmallIn10000(b *testing.B) {
	s := openManyRecords(b, 10000)
	layerTar := testutil.NewTar().File("f", "x").Bytes()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(PutOptions{ID: fmt.Sprintf("small%d", i)}, bytes.NewReader(layerTar)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstSave10000 is the save of a process's first Put in a
// store of 10,000 layers: every record is as loaded from layers.json, none
// encoded by this process yet (what a CLI import pays).
func BenchmarkFirstSave10000(b *testing.B) {
	graph, run := b.TempDir(), b.TempDir()
	writeManyRecords(b, graph, 10000)
	drv := newFakeDriver(filepath.Join(graph, "fake"))
	for b.Loop() {
		b.StopTimer()
		s, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv})
		if err != nil {
			b.Fatal(err)
		}
		done, err := s.startWriting()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.save(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		done()
		s.Close()
		b.StartTimer()
	}
}

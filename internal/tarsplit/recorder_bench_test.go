package tarsplit_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/vbatts/tar-split/tar/asm"

	"github.com/stratafs/strata/internal/tarsplit"
	"github.com/stratafs/strata/testutil"
)

// manySmallFiles is a layer of 10,000 files of 1 to 2 KiB in 100 dirs:
// the shape where recording costs most per byte.
func manySmallFiles() []byte {
	b := testutil.NewTar()
	for d := range 100 {
		b.Dir(fmt.Sprintf("d%02d/", d))
		for f := range 100 {
			b.File(fmt.Sprintf("d%02d/file-%03d", d, f), string(bytes.Repeat([]byte{byte(f)}, 1024+f*10)))
		}
	}
	return b.Bytes()
}

// BenchmarkRecord compares the one-pass Recorder with tar-split's own input
// stream (a second tar parse through a pipe) on the same layer, both
// writing JSON to a discarding packer.
func BenchmarkRecord(b *testing.B) {
	blob := manySmallFiles()
	b.Run("Recorder", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			rec := tarsplit.NewRecorder(tarsplit.NewPacker(io.Discard))
			for p := blob; len(p) > 0; p = p[min(len(p), 256<<10):] {
				if _, err := rec.Write(p[:min(len(p), 256<<10)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := rec.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("asm.NewInputTarStream", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			stream, done, err := asm.NewInputTarStreamWithDone(bytes.NewReader(blob), tarsplit.NewPacker(io.Discard), nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, stream); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	})
}

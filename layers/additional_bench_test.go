package layers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/testutil/als"
)

// sparseALSLayer offers a layer whose blob and one diff file are sparse
// files of size bytes, with an info stating that size.
func sparseALSLayer(t testing.TB, dir *als.Dir, toc digest.Digest, size int64) {
	t.Helper()
	info, _ := json.Marshal(map[string]any{
		"toc-digest": toc, "compressed-diff-digest": digest.FromString(toc.String()),
		"compressed-size": size, "diff-size": size, "compression": 2,
	})
	layerDir := dir.AddLayer(t, als.Layer{Ref: alsRef, TOCDigest: toc, Info: info})
	for _, p := range []string{filepath.Join(layerDir, "blob"), filepath.Join(layerDir, "diff", "big")} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkPutAdditionalLayer shows that creating a layer from an ALS
// costs the same whatever the layer's size: no layer byte is read.
func BenchmarkPutAdditionalLayer(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int64
	}{{"1KiB", 1 << 10}, {"1GiB", 1 << 30}} {
		size := tc.size
		b.Run(tc.name, func(b *testing.B) {
			dir := als.NewDir(b)
			toc := digest.FromString(fmt.Sprint("bench", size))
			sparseALSLayer(b, dir, toc, size)
			s := openALSStore(b, dir.Root+":ref")
			b.ResetTimer()
			for i := range b.N {
				a, err := s.LookupAdditionalLayer(toc, alsRef)
				if err != nil {
					b.Fatal(err)
				}
				id := fmt.Sprintf("bench%d", i)
				if _, err := a.PutAs(id, "", nil); err != nil {
					b.Fatal(err)
				}
				a.Release()
				b.StopTimer()
				if err := s.Delete(id); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// TestPutAdditionalLayerHuge puts a 1 TiB (sparse) ALS layer: the record
// takes its sizes from info and no layer byte is read (reading a TiB of
// holes would not finish within the suite's time; the cost is measured by
// BenchmarkPutAdditionalLayer, not here).
func TestPutAdditionalLayerHuge(t *testing.T) {
	dir := als.NewDir(t)
	toc := digest.FromString("huge")
	sparseALSLayer(t, dir, toc, 1<<40)
	s := openALSStore(t, dir.Root+":ref")
	a, err := s.LookupAdditionalLayer(toc, alsRef)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	l, err := a.PutAs("huge", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.CompressedSize != 1<<40 || l.UncompressedSize != 1<<40 {
		t.Fatalf("sizes %d/%d, want 1 TiB", l.CompressedSize, l.UncompressedSize)
	}
}

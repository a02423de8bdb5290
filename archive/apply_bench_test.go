package archive

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/testutil"
)

// benchLayers are the shapes BenchmarkApply times; each is built once.
var benchLayers = []struct {
	name  string
	build func() []byte
}{
	{"small-files-5000", func() []byte {
		b := testutil.NewTar()
		for d := range 50 {
			dir := fmt.Sprintf("usr/share/d%02d/", d)
			b.Dir(dir)
			for f := range 100 {
				b.File(fmt.Sprintf("%sf%03d", dir, f), strings.Repeat("x", 64+(d*100+f)%4096))
			}
		}
		return b.Bytes()
	}},
	{"big-file-64MiB", func() []byte {
		return testutil.NewTar().Dir("data/").File("data/blob", strings.Repeat("0123456789abcdef", 4<<20)).Bytes()
	}},
	{"deep-200", func() []byte {
		b := testutil.NewTar()
		name := "d"
		for range 200 {
			b.Dir(name+"/").File(name+"/f", "leaf")
			name += "/d"
		}
		return b.Bytes()
	}},
	{"hardlinks-5000", func() []byte {
		b := testutil.NewTar().Dir("src/").Dir("links/")
		for i := range 500 {
			b.File(fmt.Sprintf("src/f%03d", i), "payload", testutil.Mode(0o755))
		}
		for i := range 5000 {
			b.Hardlink(fmt.Sprintf("links/l%04d", i), fmt.Sprintf("src/f%03d", i%500))
		}
		return b.Bytes()
	}},
}

// BenchmarkApply applies layer tars into fresh directories; bytes are the
// tar's size, so MB/s compares shapes.
func BenchmarkApply(b *testing.B) {
	testutil.RequireRoot(b)
	for _, layer := range benchLayers {
		b.Run(layer.name, func(b *testing.B) {
			data := layer.build()
			base := b.TempDir()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				root := filepath.Join(base, fmt.Sprint(i))
				b.StopTimer()
				if err := os.Mkdir(root, 0o755); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := Apply(root, bytes.NewReader(data), Options{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := os.RemoveAll(root); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

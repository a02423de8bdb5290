package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/internal/image/imagetest"
	"github.com/stratafs/strata/testutil"
)

// TestImportImage imports two images sharing a base layer in different
// forms: the second reuses the base, names its top layer, and every layer
// exports back to its diff ID.
func TestImportImage(t *testing.T) {
	c := newCLI(t)
	baseTar := testutil.NewTar().Dir("etc/").File("etc/os-release", "ID=test\n").Bytes()
	base := imagetest.NewLayer(baseTar, "gzip")
	a := imagetest.Image{Ref: "example.com/a:1", Layers: []imagetest.Layer{
		base, imagetest.NewLayer(testutil.NewTar().File("a", "a").Bytes(), "zstd"),
	}}
	b := imagetest.Image{Ref: "example.com/b:1", Layers: []imagetest.Layer{
		imagetest.NewLayer(baseTar, ""), // same diff ID, stored plain
		imagetest.NewLayer(testutil.NewTar().Dir("etc/").Whiteout("etc/os-release").Bytes(), ""),
	}}
	dir := t.TempDir()
	imagetest.WriteOCILayout(t, filepath.Join(dir, "a"), a)
	imagetest.WriteDockerArchive(t, filepath.Join(dir, "b.tar"), b)

	outA := c.ok("import-image", filepath.Join(dir, "a"))
	if strings.Count(outA, " applied ") != 2 {
		t.Errorf("first image: want two layers applied, got:\n%s", outA)
	}
	outB := c.ok("import-image", "--name", "bee", filepath.Join(dir, "b.tar"))
	if !strings.Contains(outB, "layer 1/2 ") || !strings.Contains(strings.Split(outB, "\n")[0], " reused ") {
		t.Errorf("second image: want its base layer reused, got:\n%s", outB)
	}
	topA, topB := lastLine(outA), lastLine(outB)
	if got := c.ok("layer", "--json", "example.com/a:1"); !strings.Contains(got, topA) {
		t.Errorf("top layer of a is not named after its reference:\n%s", got)
	}
	if got := c.ok("layer", "--json", "bee"); !strings.Contains(got, topB) {
		t.Errorf("--name did not name the top layer of b:\n%s", got)
	}

	for _, img := range []struct {
		top  string
		want imagetest.Layer
	}{{topA, a.Layers[1]}, {topB, b.Layers[1]}} {
		out := filepath.Join(t.TempDir(), "diff.tar")
		c.ok("diff", "-o", out, img.top)
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if "sha256:"+hex.EncodeToString(sum[:]) != img.want.DiffID.String() {
			t.Errorf("diff of %s does not match its diff ID %s", img.top, img.want.DiffID)
		}
	}
	if n := strings.Count(c.ok("layers"), "\n"); n != 4 { // header + 3 layers
		t.Errorf("store holds %d lines of layers, want header and 3 layers", n)
	}
}

// TestImportImageCorrupt: a damaged or truncated blob stops the import
// with an error naming the problem and leaves no new layer.
func TestImportImageCorrupt(t *testing.T) {
	img := imagetest.Image{Ref: "example.com/bad:1", Layers: []imagetest.Layer{
		imagetest.NewLayer(testutil.NewTar().File("one", "1").Bytes(), "gzip"),
		imagetest.NewLayer(testutil.NewTar().File("two", strings.Repeat("2", 4000)).Bytes(), "gzip"),
	}}
	cases := []struct {
		name   string
		damage func(blob string) error
		want   string
	}{
		{"flipped-byte", func(blob string) error {
			data, err := os.ReadFile(blob)
			if err != nil {
				return err
			}
			data[len(data)-12] ^= 0x55
			return os.WriteFile(blob, data, 0o644)
		}, "invalid layer data"},
		{"truncated", func(blob string) error { return os.Truncate(blob, 40) }, "blob has 40 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t)
			dir := t.TempDir()
			imagetest.WriteOCILayout(t, dir, img)
			blob := filepath.Join(dir, "blobs/sha256", img.Layers[1].Digest().Encoded())
			if err := tc.damage(blob); err != nil {
				t.Fatal(err)
			}
			// Progress lines come first on stderr, then the error.
			r := c.run(nil, "import-image", dir)
			msg := lastLine(r.stderr)
			if r.code != 1 || !strings.HasPrefix(msg, "strata: ") ||
				!strings.Contains(msg, "layer 2") || !strings.Contains(msg, tc.want) {
				t.Errorf("exit %d, error %q; want exit 1 naming layer 2 and %q", r.code, msg, tc.want)
			}
			if n := strings.Count(c.ok("layers"), "\n"); n > 1 {
				t.Errorf("layers left behind after the failed import:\n%s", c.ok("layers"))
			}
		})
	}
}

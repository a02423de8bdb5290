package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// TestImportImageMatchesSequential: import-image, which applies layers
// concurrently and commits them in order, gives the same layers as
// importing them one by one with --parent: records, exported bytes and
// layer roots (with and without a "./" entry) alike.
func TestImportImageMatchesSequential(t *testing.T) {
	tars := [][]byte{
		testutil.NewTar().Dir("./", testutil.Mode(0o2750), testutil.Owner(10, 20)).Dir("etc/").File("etc/a", "a").Bytes(),
		testutil.NewTar().Dir("etc/").File("etc/b", strings.Repeat("b", 300<<10), testutil.Owner(1000, 1000)).Bytes(),
		testutil.NewTar().Dir("etc/").Whiteout("etc/a").Bytes(),
		testutil.NewTar().Dir(".", testutil.Mode(0o700), testutil.Owner(3, 4)).File("c", "c").Bytes(),
		testutil.NewTar().File("d", "d").Bytes(),
	}
	var img imagetest.Image
	img.Ref = "example.com/seq:1"
	for i, tb := range tars {
		img.Layers = append(img.Layers, imagetest.NewLayer(tb, []string{"gzip", "zstd", ""}[i%3]))
	}
	dir := t.TempDir()
	imagetest.WriteOCILayout(t, dir, img)

	together := newCLI(t)
	var chainA []string
	for _, line := range strings.Split(together.ok("import-image", dir), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[3] == "applied" {
			chainA = append(chainA, f[4])
		}
	}

	oneByOne := newCLI(t)
	var chainB []string
	for i, l := range img.Layers {
		blob := filepath.Join(dir, "blobs", "sha256", l.Digest().Encoded())
		args := []string{"import"}
		if i > 0 {
			args = append(args, "--parent", chainB[i-1])
		}
		chainB = append(chainB, lastLine(oneByOne.ok(append(args, blob)...)))
	}
	if len(chainA) != len(tars) || len(chainB) != len(tars) {
		t.Fatalf("chains %v and %v, want %d layers each", chainA, chainB, len(tars))
	}

	for i := range tars {
		recA, recB := layerJSON(t, together, chainA[i]), layerJSON(t, oneByOne, chainB[i])
		for _, key := range []string{"diff-digest", "diff-size", "compressed-diff-digest", "compressed-size", "compression", "uidset", "gidset"} {
			if a, b := fmt.Sprint(recA[key]), fmt.Sprint(recB[key]); a != b {
				t.Errorf("layer %d: %s %s (import-image) != %s (one by one)", i+1, key, a, b)
			}
		}
		if i > 0 && (recA["parent"] != chainA[i-1] || recB["parent"] != chainB[i-1]) {
			t.Errorf("layer %d: parents %v and %v", i+1, recA["parent"], recB["parent"])
		}
		treeA := testutil.Snapshot(t, filepath.Join(together.root, "overlay", chainA[i], "diff"))
		treeB := testutil.Snapshot(t, filepath.Join(oneByOne.root, "overlay", chainB[i], "diff"))
		// The root's mtime is the apply time when no "./" entry sets it.
		diff := slices.DeleteFunc(treeA.Diff(treeB), func(s string) bool { return strings.HasPrefix(s, ".: mtime ") })
		if len(diff) > 0 {
			t.Errorf("layer %d: files differ: %v", i+1, diff)
		}
		outA, outB := filepath.Join(t.TempDir(), "a.tar"), filepath.Join(t.TempDir(), "b.tar")
		together.ok("diff", "-o", outA, chainA[i])
		oneByOne.ok("diff", "-o", outB, chainB[i])
		a, _ := os.ReadFile(outA)
		b, _ := os.ReadFile(outB)
		if !bytes.Equal(a, b) || !bytes.Equal(a, tars[i]) {
			t.Errorf("layer %d: exported tars differ from each other or from the input", i+1)
		}
	}
}

// layerJSON returns the JSON record `strata layer --json` prints.
func layerJSON(t *testing.T, c *cli, id string) map[string]any {
	t.Helper()
	out := c.ok("layer", "--json", id)
	var rec map[string]any
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("layer --json %s: %v\n%s", id, err, out)
	}
	return rec
}

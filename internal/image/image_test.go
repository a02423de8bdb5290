package image_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/internal/image"
	"github.com/stratafs/strata/internal/image/imagetest"
	"github.com/stratafs/strata/testutil"
)

// sample returns a two-layer image with a plain and a gzip layer.
func sample() imagetest.Image {
	base := testutil.NewTar().Dir("etc/").File("etc/os-release", "ID=test\n").Bytes()
	top := testutil.NewTar().Dir("etc/").Whiteout("etc/os-release").File("app", "hello").Bytes()
	return imagetest.Image{Ref: "example.com/app:1", Layers: []imagetest.Layer{
		imagetest.NewLayer(base, ""),
		imagetest.NewLayer(top, "gzip"),
	}}
}

// writeForm writes img in one of the three forms and returns the spec.
func writeForm(t *testing.T, form string, img imagetest.Image) string {
	t.Helper()
	dir := t.TempDir()
	switch form {
	case "oci":
		imagetest.WriteOCILayout(t, dir, img)
		return dir
	case "oci-archive":
		p := filepath.Join(dir, "img.tar")
		imagetest.WriteOCIArchive(t, p, img)
		return p
	default:
		p := filepath.Join(dir, "img.tar")
		imagetest.WriteDockerArchive(t, p, img)
		return p
	}
}

func TestOpenForms(t *testing.T) {
	img := sample()
	for _, form := range []string{"oci", "oci-archive", "docker-archive"} {
		t.Run(form, func(t *testing.T) {
			spec := writeForm(t, form, img)
			got, err := image.Open(spec)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if string(got.Format) != form {
				t.Errorf("format %q, want %q", got.Format, form)
			}
			if got.Ref != img.Ref {
				t.Errorf("ref %q, want %q", got.Ref, img.Ref)
			}
			if len(got.Layers) != len(img.Layers) {
				t.Fatalf("%d layers, want %d", len(got.Layers), len(img.Layers))
			}
			for i, l := range got.Layers {
				if l.DiffID != img.Layers[i].DiffID {
					t.Errorf("layer %d diff ID %s, want %s", i, l.DiffID, img.Layers[i].DiffID)
				}
				if form != "docker-archive" && l.Digest != img.Layers[i].Digest() {
					t.Errorf("layer %d digest %s, want %s", i, l.Digest, img.Layers[i].Digest())
				}
				rc, err := got.OpenLayer(i)
				if err != nil {
					t.Fatal(err)
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("layer %d: %v", i, err)
				}
				if string(data) != string(img.Layers[i].Blob) {
					t.Errorf("layer %d: blob bytes differ", i)
				}
			}
		})
	}
}

// TestOpenCorrupt damages blobs after writing a layout: the error must
// come, and name what is wrong, before a consumer sees io.EOF.
func TestOpenCorrupt(t *testing.T) {
	img := sample()
	blob := func(dir string, i int) string {
		return filepath.Join(dir, "blobs/sha256", img.Layers[i].Digest().Encoded())
	}
	cases := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		openErr string // error from Open, or "" when Open succeeds
		readErr string // error from reading layer 1
	}{
		{"flipped-byte", func(t *testing.T, dir string) {
			data, _ := os.ReadFile(blob(dir, 1))
			data[len(data)/2] ^= 0xff
			if err := os.WriteFile(blob(dir, 1), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "", "blob digest is"},
		{"truncated", func(t *testing.T, dir string) {
			if err := os.Truncate(blob(dir, 1), 10); err != nil {
				t.Fatal(err)
			}
		}, "", "blob has 10 bytes"},
		{"missing", func(t *testing.T, dir string) {
			if err := os.Remove(blob(dir, 1)); err != nil {
				t.Fatal(err)
			}
		}, "", "missing"},
		{"bad-index", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests":[`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "index.json", ""},
		{"config-changed", func(t *testing.T, dir string) {
			entries, _ := os.ReadDir(filepath.Join(dir, "blobs/sha256"))
			for _, e := range entries {
				p := filepath.Join(dir, "blobs/sha256", e.Name())
				data, _ := os.ReadFile(p)
				if strings.Contains(string(data), `"diff_ids"`) {
					data = []byte(strings.Replace(string(data), "amd64", "arm64", 1))
					if err := os.WriteFile(p, data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
		}, "has digest", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			imagetest.WriteOCILayout(t, dir, img)
			c.damage(t, dir)

			got, err := image.Open(dir)
			if c.openErr != "" {
				if err == nil || !errors.Is(err, image.ErrInvalidImage) || !strings.Contains(err.Error(), c.openErr) {
					t.Fatalf("Open: err = %v, want ErrInvalidImage mentioning %q", err, c.openErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			rc, err := got.OpenLayer(1)
			if err == nil {
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			if err == nil || !errors.Is(err, image.ErrInvalidImage) || !strings.Contains(err.Error(), c.readErr) {
				t.Fatalf("reading layer: err = %v, want ErrInvalidImage mentioning %q", err, c.readErr)
			}
		})
	}
}

func TestOpenSpecs(t *testing.T) {
	a, b := sample(), sample()
	b.Ref = "example.com/other:2"
	b.Layers = b.Layers[:1]
	dir := t.TempDir()
	imagetest.WriteOCILayout(t, dir, a, b)

	if _, err := image.Open(dir); err == nil || !strings.Contains(err.Error(), "2 images") {
		t.Fatalf("two images without a ref: err = %v", err)
	}
	got, err := image.Open("oci:" + dir + ":example.com/other:2")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Ref != b.Ref || len(got.Layers) != 1 {
		t.Errorf("picked ref %q with %d layers, want %q with 1", got.Ref, len(got.Layers), b.Ref)
	}
	if _, err := image.Open("docker-archive:" + dir); err == nil {
		t.Errorf("docker-archive: on a directory succeeded")
	}
}

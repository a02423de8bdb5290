// Package imagetest writes small container images in the three forms
// internal/image reads, for tests: an OCI layout directory, an oci-archive
// and a docker-archive (podman's file naming).
package imagetest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/testutil"
)

// Layer is one layer blob with the diff ID of its uncompressed tar.
type Layer struct {
	Blob      []byte
	DiffID    digest.Digest
	MediaType string
}

// NewLayer makes a layer from an uncompressed tar, stored plain, "gzip" or
// "zstd".
func NewLayer(tarBytes []byte, compression string) Layer {
	l := Layer{DiffID: digest.FromBytes(tarBytes), Blob: tarBytes,
		MediaType: "application/vnd.oci.image.layer.v1.tar"}
	switch compression {
	case "gzip":
		l.Blob = testutil.Gzip(tarBytes)
		l.MediaType += "+gzip"
	case "zstd":
		l.Blob = testutil.Zstd(tarBytes)
		l.MediaType += "+zstd"
	}
	return l
}

// Digest is the digest of the stored blob.
func (l Layer) Digest() digest.Digest { return digest.FromBytes(l.Blob) }

// Image is an image to write.
type Image struct {
	Ref    string // ref.name annotation / docker RepoTag; "" for none
	Layers []Layer
}

// files maps the paths of an image layout to their contents.
type files map[string][]byte

// blob stores data under blobs/sha256 and returns its descriptor.
func (f files) blob(mediaType string, data []byte) map[string]any {
	d := digest.FromBytes(data)
	f["blobs/sha256/"+d.Encoded()] = data
	return map[string]any{"mediaType": mediaType, "digest": d, "size": len(data)}
}

// config returns the image config JSON of img.
func config(img Image) []byte {
	diffIDs := []digest.Digest{}
	for _, l := range img.Layers {
		diffIDs = append(diffIDs, l.DiffID)
	}
	data, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	return data
}

// layoutFiles returns the files of an OCI layout holding imgs.
func layoutFiles(imgs []Image) files {
	f := files{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)}
	var manifests []map[string]any
	for _, img := range imgs {
		var layers []map[string]any
		for _, l := range img.Layers {
			layers = append(layers, f.blob(l.MediaType, l.Blob))
		}
		m, _ := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        f.blob("application/vnd.oci.image.config.v1+json", config(img)),
			"layers":        layers,
		})
		desc := f.blob("application/vnd.oci.image.manifest.v1+json", m)
		if img.Ref != "" {
			desc["annotations"] = map[string]string{"org.opencontainers.image.ref.name": img.Ref}
		}
		manifests = append(manifests, desc)
	}
	f["index.json"], _ = json.Marshal(map[string]any{"schemaVersion": 2, "manifests": manifests})
	return f
}

// WriteOCILayout writes imgs as an OCI image layout in dir.
func WriteOCILayout(t testing.TB, dir string, imgs ...Image) {
	t.Helper()
	for name, data := range layoutFiles(imgs) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// WriteOCIArchive writes imgs as an oci-archive tar at path.
func WriteOCIArchive(t testing.TB, path string, imgs ...Image) {
	t.Helper()
	writeTar(t, path, layoutFiles(imgs))
}

// WriteDockerArchive writes img as a docker-archive at path, naming files
// as podman save does: <diffid-hex>.tar layers and <config-hex>.json.
func WriteDockerArchive(t testing.TB, path string, img Image) {
	t.Helper()
	f := files{}
	cfg := config(img)
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	f[cfgName] = cfg
	var layers []string
	for _, l := range img.Layers {
		name := l.DiffID.Encoded() + ".tar"
		f[name] = l.Blob
		layers = append(layers, name)
	}
	entry := map[string]any{"Config": cfgName, "Layers": layers}
	if img.Ref != "" {
		entry["RepoTags"] = []string{img.Ref}
	}
	f["manifest.json"], _ = json.Marshal([]any{entry})
	writeTar(t, path, f)
}

// writeTar writes files into a tar at path, sorted by name, directories
// implied.
func writeTar(t testing.TB, path string, f files) {
	t.Helper()
	var names []string
	for name := range f {
		names = append(names, name)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	stamp := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	dirs := map[string]bool{}
	for _, name := range names {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: stamp}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644,
			Size: int64(len(f[name])), ModTime: stamp}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

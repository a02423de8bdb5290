// Package als provides Additional Layer Stores for tests: a plain directory
// laid out as DESIGN.md "Additional Layer Store" describes, and a FUSE store
// that behaves like stargz-store (names can only be looked up, `use` and
// layer-dir rmdir answer ENOENT and are counted).
package als

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// Layer describes one layer a test store offers.
type Layer struct {
	// Ref is the image reference the layer is offered for.
	Ref string
	// TOCDigest names the layer's directory.
	TOCDigest digest.Digest
	// Files are written below diff/ (path relative to diff -> contents);
	// missing parent directories are made 0755.
	Files map[string]string
	// DiffID is the layer's uncompressed digest, written to the default
	// info as flags.expected-layer-diffid; "" derives one from TOCDigest.
	DiffID digest.Digest
	// Info is the info file's contents; nil writes StargzInfo.
	Info []byte
	// Blob is the blob file's contents; nil writes a short marker.
	Blob []byte
}

// RefDir is the directory name an image reference takes in a store: the
// padded standard base64 of the reference.
func RefDir(ref string) string {
	return base64.StdEncoding.EncodeToString([]byte(ref))
}

// LayerDir is where a store rooted at root offers layer tocDigest for ref.
func LayerDir(root, ref string, tocDigest digest.Digest) string {
	return filepath.Join(root, RefDir(ref), tocDigest.String())
}

// StargzInfo is the info record stargz-store writes for a resolved layer:
// unknown diff size, gzip compression, the TOC digest and the expected
// uncompressed digest, and nothing else.
func StargzInfo(tocDigest, diffID digest.Digest) []byte {
	rec := map[string]any{
		"diff-size":   -1,
		"compression": 2,
		"toc-digest":  tocDigest,
		"flags":       map[string]any{"expected-layer-diffid": diffID},
	}
	b, err := json.Marshal(rec)
	if err != nil {
		panic(err)
	}
	return b
}

// ShortInfo is the info record stargz-store answers for a layer it has not
// resolved yet: only the TOC digest.
func ShortInfo(tocDigest digest.Digest) []byte {
	b, err := json.Marshal(map[string]any{"toc-digest": tocDigest})
	if err != nil {
		panic(err)
	}
	return b
}

// DiffIDOf returns the layer's uncompressed digest as its default info
// states it.
func (l Layer) DiffIDOf() digest.Digest {
	if l.DiffID != "" {
		return l.DiffID
	}
	return digest.FromString("diff of " + l.TOCDigest.String())
}

// write lays the layer out below root and returns its layer dir.
func (l Layer) write(t testing.TB, root string) string {
	t.Helper()
	dir := LayerDir(root, l.Ref, l.TOCDigest)
	diff := filepath.Join(dir, "diff")
	if err := os.MkdirAll(diff, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range l.Files {
		p := filepath.Join(diff, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info := l.Info
	if info == nil {
		info = StargzInfo(l.TOCDigest, l.DiffIDOf())
	}
	if err := os.WriteFile(filepath.Join(dir, "info"), info, 0o644); err != nil {
		t.Fatal(err)
	}
	blob := l.Blob
	if blob == nil {
		blob = []byte("blob of " + l.TOCDigest.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Dir is an Additional Layer Store that is a plain directory. It does not
// count references: creating `use` succeeds and rmdir of a layer dir fails
// with ENOTEMPTY, as with any directory.
type Dir struct {
	// Root is the store's path, the PATH of an ALS location.
	Root string
}

// NewDir makes an empty plain-directory store below t.TempDir().
func NewDir(t testing.TB) *Dir {
	t.Helper()
	root := filepath.Join(t.TempDir(), "als")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return &Dir{Root: root}
}

// AddLayer writes l into the store and returns its layer dir.
func (d *Dir) AddLayer(t testing.TB, l Layer) string {
	t.Helper()
	return l.write(t, d.Root)
}

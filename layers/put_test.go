package layers

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"

	"github.com/stratafs/strata/internal/tarsplit"
)

// fakeStore opens a store with a fakeDriver below fresh temp roots.
func fakeStore(t *testing.T) (*Store, *fakeDriver) {
	t.Helper()
	graph, run := t.TempDir(), t.TempDir()
	return openFake(t, graph, run, false)
}

func openFake(t *testing.T, graph, run string, readOnly bool) (*Store, *fakeDriver) {
	t.Helper()
	drv := newFakeDriver(filepath.Join(graph, "fake"))
	s, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv, ReadOnly: readOnly})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, drv
}

func sha(b []byte) digest.Digest {
	sum := sha256.Sum256(b)
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum[:]))
}

// sampleTar is T of case C13 with owners.
func sampleTar() *testutil.Tar {
	return testutil.NewTar().
		File("a", "alpha", testutil.Owner(10, 20)).
		Dir("b/", testutil.Owner(0, 0)).
		File("b/c", strings.Repeat("c", 3000), testutil.Owner(1000, 1001))
}

// checkTarSplit reassembles the layer's tar from its tar-split record and
// the file contents of want, and compares it with want byte for byte.
func checkTarSplit(t *testing.T, s *Store, id string, want []byte) {
	t.Helper()
	contents := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(want))
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		contents[hdr.Name] = b
	}
	f, err := os.Open(s.tarSplitPath(id))
	if err != nil {
		t.Fatalf("tar-split record: %v", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("tar-split record is not gzip: %v", err)
	}
	getter := storage.NewBufferFileGetPutter()
	for name, b := range contents {
		if _, _, err := getter.Put(name, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	out := asm.NewOutputTarStream(getter, tarsplit.NewUnpacker(gz))
	got, err := io.ReadAll(out)
	out.Close()
	if err != nil {
		t.Fatalf("reassemble: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("reassembled tar: %d bytes, want the %d received", len(got), len(want))
	}
}

func TestPutDigestsAndSizes(t *testing.T) {
	plain := sampleTar().Bytes()
	noEnd := sampleTar().NoEnd().Bytes()
	padded := sampleTar().Trailing(make([]byte, 8192)).Bytes()
	half := len(plain) / 2

	tests := []struct {
		name string
		// input is what Put receives; tarBytes is the uncompressed stream.
		input    func(t *testing.T) []byte
		tarBytes []byte
		want     Compression
	}{
		{"plain", func(*testing.T) []byte { return plain }, plain, Uncompressed},
		{"gzip", func(*testing.T) []byte { return testutil.Gzip(plain) }, plain, Gzip},
		{"zstd", func(*testing.T) []byte { return testutil.Zstd(plain) }, plain, Zstd},
		{"bzip2", func(t *testing.T) []byte { return testutil.CompressWith(t, "bzip2", plain) }, plain, Bzip2},
		{"C13 8 KiB zeros after the tar", func(*testing.T) []byte { return padded }, padded, Uncompressed},
		{"C13 no end blocks", func(*testing.T) []byte { return noEnd }, noEnd, Uncompressed},
		{"C13 multi-member gzip", func(*testing.T) []byte {
			return append(testutil.Gzip(plain[:half]), testutil.Gzip(plain[half:])...)
		}, plain, Gzip},
		{"C13 gzip then 16 NUL bytes", func(*testing.T) []byte {
			return append(testutil.Gzip(plain), make([]byte, 16)...)
		}, plain, Gzip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := fakeStore(t)
			input := tc.input(t)
			l, err := s.Put(PutOptions{
				ExpectedCompressedDigest:   sha(input),
				ExpectedUncompressedDigest: sha(tc.tarBytes),
			}, bytes.NewReader(input))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if l.CompressedDigest != sha(input) || l.CompressedSize != int64(len(input)) {
				t.Errorf("compressed %s/%d, want %s/%d", l.CompressedDigest, l.CompressedSize, sha(input), len(input))
			}
			if l.UncompressedDigest != sha(tc.tarBytes) || l.UncompressedSize != int64(len(tc.tarBytes)) {
				t.Errorf("uncompressed %s/%d, want %s/%d", l.UncompressedDigest, l.UncompressedSize,
					sha(tc.tarBytes), len(tc.tarBytes))
			}
			if l.CompressionType != tc.want {
				t.Errorf("compression %v, want %v", l.CompressionType, tc.want)
			}
			if !slices.Equal(l.UIDs, []uint32{0, 10, 1000}) || !slices.Equal(l.GIDs, []uint32{0, 20, 1001}) {
				t.Errorf("uidset %v gidset %v", l.UIDs, l.GIDs)
			}
			if !l.ReadOnly || l.Flags[flagReadOnly] != true || l.incomplete() || len(l.ID) != 64 {
				t.Errorf("record %+v: want read-only, complete, 64-hex id", l)
			}
			checkTarSplit(t, s, l.ID, tc.tarBytes)

			// The record on disk says the same.
			s2, _ := openFake(t, s.GraphRoot(), s.RunRoot(), true)
			got, err := s2.Get(l.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.UncompressedDigest != l.UncompressedDigest || got.CompressionType != l.CompressionType ||
				!got.ReadOnly || !got.Created.Equal(l.Created) {
				t.Errorf("reloaded %+v, want %+v", got, l)
			}
		})
	}
}

// checkNothingLeft asserts that a failed Put left no record, driver dir or
// tar-split file, and that the lock is free.
func checkNothingLeft(t *testing.T, s *Store, drv *fakeDriver) {
	t.Helper()
	list, err := s.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %d layers, %v; want only the base", len(list), err)
	}
	entries, _ := os.ReadDir(drv.home)
	if len(entries) != 1 {
		t.Errorf("driver home holds %d layers, want 1", len(entries))
	}
	splits, _ := filepath.Glob(filepath.Join(s.layerDir, "*.tar-split.gz"))
	if len(splits) != 1 {
		t.Errorf("tar-split files %v, want only the base's", splits)
	}
	if err := s.lock.TryLock(); err != nil {
		t.Errorf("lock still held: %v", err)
	} else {
		s.lock.Unlock()
	}
}

func TestPutFailures(t *testing.T) {
	plain := sampleTar().Bytes()
	junk := make([]byte, 1<<20)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	xz := []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	tooBig := testutil.NewTar().File("big", strings.Repeat("x", 1<<20)).Bytes()

	tests := []struct {
		name    string
		opts    PutOptions
		input   []byte
		wantErr error
	}{
		{"C13 cut inside b/c", PutOptions{}, sampleTar().CutIn("b/c"), driver.ErrInvalidLayerData},
		{"C13 gzip of cut tar", PutOptions{}, testutil.Gzip(sampleTar().CutIn("b/c")), driver.ErrInvalidLayerData},
		{"C14 raw junk", PutOptions{}, junk, driver.ErrInvalidLayerData},
		{"C14 junk behind gzip magic", PutOptions{}, append([]byte{0x1f, 0x8b}, junk...), driver.ErrInvalidLayerData},
		{"C14 gzip header then junk", PutOptions{}, append(testutil.Gzip(nil)[:10], junk...), driver.ErrInvalidLayerData},
		{"C14 junk behind zstd magic", PutOptions{}, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, junk...), driver.ErrInvalidLayerData},
		{"C14 junk behind bzip2 magic", PutOptions{}, append([]byte("BZh9"), junk...), driver.ErrInvalidLayerData},
		{"C14 junk behind xz magic", PutOptions{}, append(xz, junk...), driver.ErrNotSupported},
		{"apply fails", PutOptions{}, testutil.NewTar().File("fail-apply", "x").Bytes(), driver.ErrInvalidLayerData},
		{"compressed digest mismatch", PutOptions{ExpectedCompressedDigest: sha([]byte("other"))}, plain, driver.ErrInvalidLayerData},
		{"uncompressed digest mismatch", PutOptions{ExpectedUncompressedDigest: sha([]byte("other"))},
			testutil.Gzip(plain), driver.ErrInvalidLayerData},
		{"larger than MaxDiffSize", PutOptions{}, tooBig, driver.ErrInvalidLayerData},
		{"C19 digest with dots", PutOptions{ExpectedUncompressedDigest: "sha256:../../etc/passwd"}, plain, driver.ErrInvalidArgument},
		{"C19 digest 63 hex", PutOptions{ExpectedCompressedDigest: digest.Digest("sha256:" + strings.Repeat("a", 63))}, plain, driver.ErrInvalidArgument},
		{"C19 digest uppercase", PutOptions{ExpectedCompressedDigest: digest.Digest("sha256:" + strings.Repeat("A", 64))}, plain, driver.ErrInvalidArgument},
		{"C19 md5 digest", PutOptions{ExpectedCompressedDigest: "md5:d41d8cd98f00b204e9800998ecf8427e"}, plain, driver.ErrInvalidArgument},
		{"C19 id ../../x", PutOptions{ID: "../../x"}, plain, driver.ErrInvalidArgument},
		{"C19 id with slash", PutOptions{ID: "a/b"}, plain, driver.ErrInvalidArgument},
		{"C19 id with NUL", PutOptions{ID: "a\x00b"}, plain, driver.ErrInvalidArgument},
		{"existing id", PutOptions{ID: "base"}, plain, driver.ErrLayerExists},
		{"unknown parent", PutOptions{Parent: "nope"}, plain, driver.ErrLayerUnknown},
		{"name in use", PutOptions{Names: []string{"base-name"}}, plain, driver.ErrNameInUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, drv := fakeStore(t)
			s.maxDiffSize = 512 << 10
			if _, err := s.Put(PutOptions{ID: "base", Names: []string{"base-name"}}, bytes.NewReader(plain)); err != nil {
				t.Fatal(err)
			}
			opts := tc.opts
			if opts.ID == "" {
				opts.ID = "new"
			}
			if opts.Parent == "" {
				opts.Parent = "base"
			}
			_, err := s.Put(opts, bytes.NewReader(tc.input))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Put = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != driver.ErrInvalidArgument && !strings.Contains(err.Error(), opts.ID) {
				t.Errorf("error %q does not name layer %s", err, opts.ID)
			}
			checkNothingLeft(t, s, drv)
		})
	}
}

func TestCreate(t *testing.T) {
	s, drv := fakeStore(t)
	base, err := s.Put(PutOptions{ID: "base"}, sampleTar().Reader())
	if err != nil {
		t.Fatal(err)
	}
	rw, err := s.Create(CreateOptions{ID: "ctr", Parent: "base", Names: []string{"c1"}})
	if err != nil {
		t.Fatal(err)
	}
	ro, err := s.Create(CreateOptions{Parent: "c1", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if rw.ReadOnly || rw.Parent != base.ID || rw.Flags != nil {
		t.Errorf("writable layer %+v", rw)
	}
	if _, err := os.Stat(filepath.Join(drv.dir("ctr"), "rw")); err != nil {
		t.Errorf("writable layer not made with CreateReadWrite: %v", err)
	}
	if !ro.ReadOnly || ro.Parent != "ctr" || len(ro.ID) != 64 {
		t.Errorf("read-only layer %+v", ro)
	}
	if _, err := os.Stat(filepath.Join(drv.dir(ro.ID), "rw")); err == nil {
		t.Errorf("read-only layer made with CreateReadWrite")
	}
}

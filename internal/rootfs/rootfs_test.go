package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestTars builds (or finds) the cached rootfs and checks each file
// against its recorded digest and size.
func TestTars(t *testing.T) {
	set := Require(t)
	for _, f := range []struct {
		path, sum string
		size      int64
	}{
		{set.Plain, set.PlainSHA, set.PlainSize},
		{set.Gzip, set.GzipSHA, set.GzipSize},
		{set.Zstd, set.ZstdSHA, set.ZstdSize},
	} {
		sum, size := fileSHA(t, f.path)
		if sum != f.sum || size != f.size {
			t.Errorf("%s: sha %s size %d, recorded %s %d", f.path, sum, size, f.sum, f.size)
		}
	}
	if set.PlainSize < 50<<20 {
		t.Errorf("plain tar is %d bytes; a minbase rootfs is well over 50 MiB", set.PlainSize)
	}
}

// TestIncompleteEntryNotReused checks that an entry without its sums file
// (what a build interrupted before the rename would leave, had it been
// renamed) is not taken as complete.
func TestIncompleteEntryNotReused(t *testing.T) {
	entry := t.TempDir()
	for _, name := range []string{plainName, gzipName, zstdName} {
		if err := os.WriteFile(filepath.Join(entry, name), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readEntry(entry); err == nil {
		t.Fatal("an entry without SHA256SUMS was read as complete")
	}
	writeSums(filepath.Join(entry, sumsName), map[string]string{plainName: "00"})
	if _, err := readEntry(entry); err == nil {
		t.Fatal("an entry with sums missing for two files was read as complete")
	}
}

// TestUnmountBelowRefusesRoot checks the guard that keeps the mount
// cleanup away from the host's mounts.
func TestUnmountBelowRefusesRoot(t *testing.T) {
	for _, dir := range []string{"/", "", "relative/dir", "/tmp/../tmp"} {
		if err := unmountBelow(dir); err == nil {
			t.Errorf("unmountBelow(%q) accepted", dir)
		}
	}
}

func fileSHA(t *testing.T, path string) (string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n
}

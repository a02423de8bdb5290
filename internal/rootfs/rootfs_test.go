package rootfs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/testutil"
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
		sum, size := testutil.FileDigest(t, f.path)
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

// TestStaleBuildsRemoved checks that the leftovers of interrupted builds
// of the entry go, and nothing else in the cache dir.
func TestStaleBuildsRemoved(t *testing.T) {
	cache := t.TempDir()
	entry := filepath.Join(cache, cacheName)
	stale := []string{entry + ".tmp-1", entry + ".tmp-2/root/etc"}
	keep := []string{entry + "-other", filepath.Join(cache, "containers-storage-v1")}
	for _, dir := range append(stale, keep...) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeStale(entry, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{entry + ".tmp-1", entry + ".tmp-2"} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", dir, err)
		}
	}
	for _, dir := range keep {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s: removed: %v", dir, err)
		}
	}
}

// TestUnreachableMirrorUnavailable checks that a mirror that does not
// answer is ErrUnavailable (a skip outside CI), found before debootstrap
// runs. The mirror is a closed loopback port.
func TestUnreachableMirrorUnavailable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the root check comes first")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap is not installed; the tool check comes first")
	}
	t.Setenv(MirrorEnv, "http://127.0.0.1:1/debian")
	cache := t.TempDir()
	_, err := Tars(context.Background(), cache, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "mirror unreachable") {
		t.Fatalf("Tars with a dead mirror: %v, want ErrUnavailable naming the mirror", err)
	}
	if _, err := os.Stat(filepath.Join(cache, cacheName)); !os.IsNotExist(err) {
		t.Errorf("a failed build left an entry: %v", err)
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

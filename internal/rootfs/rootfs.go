// Package rootfs builds, once per machine, a real Debian root filesystem
// as a layer tar in three forms (plain, gzip, zstd), for tests and
// benchmarks that need a layer shaped like the ones registries serve.
//
// The tree is `debootstrap --variant=minbase --include=iputils-ping,libcap2-bin
// bookworm` from the Debian mirror apt uses here, tarred by GNU tar as root
// with numeric owners, permissions and every xattr. The two extra packages
// give the tree a real file capability (ping's postinst sets cap_net_raw
// with setcap): minbase alone has no xattr on any file. A build takes minutes and needs root,
// debootstrap, GNU tar, unshare(1) and the mirror; later calls reuse the
// cached files. The cache is per machine, not reproducible across
// machines: the mirror moves with Debian point releases.
package rootfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Suite, Variant, Include and Mirror say what is built. Mirror is the URI
// the machine's apt sources use (/etc/apt/sources.list.d/debian.sources);
// $STRATA_DEBIAN_MIRROR replaces it (a local mirror or apt cache).
const (
	Suite   = "bookworm"
	Variant = "minbase"
	Include = "iputils-ping,libcap2-bin"
	Mirror  = "http://deb.debian.org/debian"
)

// cacheName names the cache entry; bump its version when the way the tars
// are made changes, so an older entry is not reused.
const cacheName = "debian-" + Suite + "-" + Variant + "-v2"

// File names inside a cache entry.
const (
	plainName = "rootfs.tar"
	gzipName  = "rootfs.tar.gz"
	zstdName  = "rootfs.tar.zst"
	sumsName  = "SHA256SUMS"
)

// ErrUnavailable is returned (wrapped, with the reason) when the rootfs
// cannot be built on this machine: not root, debootstrap or another tool
// missing, or the mirror unreachable. Callers that may skip do so on it;
// any other error is a real failure.
var ErrUnavailable = errors.New("debian rootfs unavailable")

// MirrorEnv names the environment variable that overrides Mirror.
const MirrorEnv = "STRATA_DEBIAN_MIRROR"

// mirror is the Debian mirror a build uses.
func mirror() string {
	if m := os.Getenv(MirrorEnv); m != "" {
		return strings.TrimSuffix(m, "/")
	}
	return Mirror
}

// CacheEnv names the environment variable that overrides the cache root.
const CacheEnv = "STRATA_TEST_CACHE"

// Set is one built rootfs: the paths of the same tar in three forms, and
// the sha256 digests ("sha256:<hex>") of each file as written.
type Set struct {
	Dir                           string // the cache entry holding the files
	Plain, Gzip, Zstd             string // absolute paths
	PlainSHA, GzipSHA, ZstdSHA    string // digests of the files' bytes
	PlainSize, GzipSize, ZstdSize int64
}

// DefaultCacheDir is $STRATA_TEST_CACHE, else os.UserCacheDir()/strata
// (the cache root scripts/build-containers-storage.sh uses too).
func DefaultCacheDir() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return dir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w (set %s)", err, CacheEnv)
	}
	return filepath.Join(base, "strata"), nil
}

// Tars returns the rootfs tars cached under cacheDir ("" = DefaultCacheDir),
// building them first when the cache has none. Progress of a build is
// logged at info level to log (nil = discarded).
//
// A build happens in a temporary dir under cacheDir and is renamed into
// place only when all three tars and their digests are written, so an
// interrupted build is never reused; its leftovers are removed by the next
// build. An exclusive flock on cacheDir/<entry>.lock serialises builds
// between processes. Cancelling ctx stops debootstrap.
func Tars(ctx context.Context, cacheDir string, log *slog.Logger) (Set, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cacheDir == "" {
		var err error
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return Set{}, err
		}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Set{}, err
	}
	// Mount checks compare against /proc/self/mountinfo, which holds
	// absolute paths without symlinks.
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return Set{}, err
	}
	if cacheDir, err = filepath.EvalSymlinks(cacheDir); err != nil {
		return Set{}, err
	}
	entry := filepath.Join(cacheDir, cacheName)

	// Fast path without the lock: a complete entry is never changed.
	if set, err := readEntry(entry); err == nil {
		return set, nil
	}

	unlock, err := lockFile(entry + ".lock")
	if err != nil {
		return Set{}, err
	}
	defer unlock()

	// Another process may have finished the build while we waited.
	if set, err := readEntry(entry); err == nil {
		return set, nil
	}
	if err := build(ctx, cacheDir, entry, log); err != nil {
		return Set{}, err
	}
	return readEntry(entry)
}

// lockFile takes an exclusive flock on path, creating it, and returns the
// function releasing it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// readEntry returns the Set of a complete cache entry. The sums file is
// written last, and the entry renamed into place after it, so its
// presence with all three tars means the entry is complete.
func readEntry(entry string) (Set, error) {
	data, err := os.ReadFile(filepath.Join(entry, sumsName))
	if err != nil {
		return Set{}, err
	}
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			return Set{}, fmt.Errorf("%s: malformed line %q", sumsName, line)
		}
		sums[name] = "sha256:" + sum
	}
	set := Set{Dir: entry}
	for _, f := range []struct {
		name      string
		path, sum *string
		size      *int64
	}{
		{plainName, &set.Plain, &set.PlainSHA, &set.PlainSize},
		{gzipName, &set.Gzip, &set.GzipSHA, &set.GzipSize},
		{zstdName, &set.Zstd, &set.ZstdSHA, &set.ZstdSize},
	} {
		path := filepath.Join(entry, f.name)
		fi, err := os.Stat(path)
		if err != nil {
			return Set{}, err
		}
		if sums[f.name] == "" {
			return Set{}, fmt.Errorf("%s: no sum for %s", sumsName, f.name)
		}
		*f.path, *f.sum, *f.size = path, sums[f.name], fi.Size()
	}
	return set, nil
}

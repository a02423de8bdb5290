package rootfs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// build makes a new cache entry at entry. The caller holds the entry lock.
func build(ctx context.Context, cacheDir, entry string, log *slog.Logger) error {
	if err := preflight(ctx); err != nil {
		return err
	}
	if err := removeStale(entry, log); err != nil {
		return err
	}

	tmp, err := os.MkdirTemp(cacheDir, cacheName+".tmp-")
	if err != nil {
		return err
	}
	defer removeTree(tmp)
	target := filepath.Join(tmp, "root")

	start := time.Now()
	log.Info("debootstrap: building the Debian rootfs (first run on this machine, takes minutes)",
		"suite", Suite, "variant", Variant, "include", Include, "mirror", mirror(), "dir", target)
	if err := debootstrap(ctx, target, log); err != nil {
		return err
	}
	log.Info("debootstrap: done", "elapsed", time.Since(start).Round(time.Second))

	// debootstrap ran in its own mount namespace, so its proc, sys and dev
	// mounts died with it; unmount anything still below target anyway so
	// that the tar holds files only.
	if err := unmountBelow(target); err != nil {
		return err
	}
	plain := filepath.Join(tmp, plainName)
	if err := tarTree(ctx, target, plain); err != nil {
		return err
	}
	if err := removeTree(target); err != nil {
		return err
	}
	log.Info("tar: done", "file", plain)

	sums, err := compress(tmp)
	if err != nil {
		return err
	}
	if err := writeSums(filepath.Join(tmp, sumsName), sums); err != nil {
		return err
	}
	// MkdirTemp made tmp 0700; the entry is readable like any cache.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, entry); err != nil {
		return err
	}
	log.Info("rootfs: cached", "dir", entry, "elapsed", time.Since(start).Round(time.Second))
	return nil
}

// preflight checks what a build needs, returning ErrUnavailable with the
// reason when something is missing.
func preflight(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: building it needs root (debootstrap, numeric owners, devices)", ErrUnavailable)
	}
	for _, tool := range []string{"debootstrap", "tar", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s is not installed (make deps)", ErrUnavailable, tool)
		}
	}
	out, err := exec.CommandContext(ctx, "tar", "--version").Output()
	if err != nil || !strings.Contains(string(out), "GNU tar") {
		return fmt.Errorf("%w: tar is not GNU tar", ErrUnavailable)
	}

	// The Release file of the suite is small and proves the mirror answers.
	url := mirror() + "/dists/" + Suite + "/Release"
	reqCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodHead, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: mirror unreachable: %v", ErrUnavailable, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: mirror answers %s for %s", ErrUnavailable, resp.Status, url)
	}
	return nil
}

// removeStale removes the leftovers of interrupted builds of entry.
func removeStale(entry string, log *slog.Logger) error {
	stale, err := filepath.Glob(entry + ".tmp-*")
	if err != nil {
		return err
	}
	for _, dir := range stale {
		log.Info("rootfs: removing an interrupted build", "dir", dir)
		if err := removeTree(dir); err != nil {
			return err
		}
	}
	return nil
}

// debootstrap runs debootstrap into target inside a private mount
// namespace, logging its output line by line.
func debootstrap(ctx context.Context, target string, log *slog.Logger) error {
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private",
		"debootstrap", "--variant="+Variant, "--include="+Include, Suite, target, mirror())
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	// Its own process group, so that cancelling stops debootstrap's
	// children (dpkg, wget) and not only unshare.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }

	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			log.Info("debootstrap: " + line)
			tail = append(tail, line)
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("debootstrap %s into %s: %w; last output:\n%s",
			Suite, target, err, strings.Join(tail, "\n"))
	}
	return nil
}

// tarTree writes the tree at dir to file as GNU tar does as root: numeric
// owners, exact permissions, every xattr namespace.
func tarTree(ctx context.Context, dir, file string) error {
	cmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"-cpf", file, "-C", dir, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tar %s: %w\n%s", dir, err, out)
	}
	return nil
}

// compress writes the gzip and zstd copies of the plain tar in dir in one
// read, and returns the sha256 of each file by name.
func compress(dir string) (map[string]string, error) {
	in, err := os.Open(filepath.Join(dir, plainName))
	if err != nil {
		return nil, err
	}
	defer in.Close()

	gzFile, gzHash, err := createHashed(filepath.Join(dir, gzipName))
	if err != nil {
		return nil, err
	}
	defer gzFile.Close()
	zstFile, zstHash, err := createHashed(filepath.Join(dir, zstdName))
	if err != nil {
		return nil, err
	}
	defer zstFile.Close()

	gz := gzip.NewWriter(io.MultiWriter(gzFile, gzHash))
	zst, err := zstd.NewWriter(io.MultiWriter(zstFile, zstHash))
	if err != nil {
		return nil, err
	}
	plainHash := sha256.New()
	if _, err := io.Copy(io.MultiWriter(plainHash, gz, zst), in); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	if err := zst.Close(); err != nil {
		return nil, err
	}
	for _, f := range []*os.File{gzFile, zstFile} {
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	return map[string]string{
		plainName: hex.EncodeToString(plainHash.Sum(nil)),
		gzipName:  hex.EncodeToString(gzHash.Sum(nil)),
		zstdName:  hex.EncodeToString(zstHash.Sum(nil)),
	}, nil
}

func createHashed(path string) (*os.File, hash.Hash, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, sha256.New(), nil
}

// writeSums writes sums in sha256sum(1) format, so `sha256sum -c` checks
// the entry by hand.
func writeSums(path string, sums map[string]string) error {
	names := make([]string, 0, len(sums))
	for name := range sums {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[name], name)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// unmountBelow unmounts every mount at or below dir, deepest first, and
// fails if any is left. It never touches a mount outside dir.
func unmountBelow(dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
		return fmt.Errorf("unmountBelow %q: want a clean absolute path other than /", dir)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			return fmt.Errorf("unmount %s: %w", m.Mountpoint, err)
		}
	}
	left, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("mounts left below %s: %s", dir, left[0].Mountpoint)
	}
	return nil
}

// removeTree removes dir after making sure nothing is mounted below it,
// so a removal never reaches into a mounted filesystem.
func removeTree(dir string) error {
	if err := unmountBelow(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

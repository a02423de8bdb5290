package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Node is what Snapshot records about one path.
type Node struct {
	Type   string // "dir", "file", "symlink", "char", "block", "fifo", "socket"
	Mode   uint32 // permission bits with setuid 04000, setgid 02000, sticky 01000
	UID    uint32
	GID    uint32
	Size   int64  // files only
	SHA256 string // files only; see contentDigest
	Link   string // symlink target
	Rdev   string // "MAJOR:MINOR" for devices
	Xattrs map[string]string
	// Hardlink names the first path (in sorted order) of the tree sharing
	// this node's inode, for non-directories with more than one name in
	// the tree; "" otherwise.
	Hardlink string
	// MTime is recorded for dirs and regular files only.
	MTime time.Time
	// Allocated is the space the file takes on disk (st_blocks*512). Diff
	// does not compare it: it depends on the filesystem.
	Allocated int64
}

// Tree maps slash-separated paths relative to the snapshot root ("." is
// the root itself) to their nodes.
type Tree map[string]Node

// largeFile is the apparent size above which a file's digest covers its
// non-zero blocks only (see contentDigest).
const largeFile = 1 << 30

// Snapshot records every path below dir, dir included, without following
// symlinks. It fails the test on any read error.
func Snapshot(t testing.TB, dir string) Tree {
	t.Helper()
	tree, err := SnapshotDir(dir)
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return tree
}

// SnapshotDir is Snapshot without a testing.TB.
func SnapshotDir(dir string) (Tree, error) {
	tree := Tree{}
	inodes := map[[2]uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		node, key, err := snapNode(p)
		if err != nil {
			return err
		}
		if node.Type != "dir" {
			inodes[key] = append(inodes[key], rel)
		}
		tree[rel] = node
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, names := range inodes {
		if len(names) < 2 {
			continue
		}
		sort.Strings(names)
		for _, name := range names {
			n := tree[name]
			n.Hardlink = names[0]
			tree[name] = n
		}
	}
	return tree, nil
}

func snapNode(p string) (Node, [2]uint64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return Node{}, [2]uint64{}, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	n := Node{
		Mode:      st.Mode & 0o7777,
		UID:       st.Uid,
		GID:       st.Gid,
		Allocated: st.Blocks * 512,
	}
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC()
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.Type, n.MTime = "dir", mtime
	case unix.S_IFREG:
		n.Type, n.MTime, n.Size = "file", mtime, st.Size
		n.SHA256, err = contentDigest(p, st.Size)
	case unix.S_IFLNK:
		n.Type = "symlink"
		n.Link, err = os.Readlink(p)
	case unix.S_IFCHR:
		n.Type, n.Rdev = "char", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		n.Type, n.Rdev = "block", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		n.Type = "fifo"
	case unix.S_IFSOCK:
		n.Type = "socket"
	}
	if err != nil {
		return n, [2]uint64{}, err
	}
	n.Xattrs, err = xattrs(p)
	return n, [2]uint64{st.Dev, st.Ino}, err
}

// contentDigest is the hex sha256 of the file's bytes. Files larger than
// 1 GiB get "blocks:" and a sha256 over (offset, block) for every 64 KiB
// block that is not all zeros, reading only the file's data regions
// (SEEK_DATA), so a sparse 1 TiB file costs what its data costs and the
// same bytes give the same digest however they are stored.
func contentDigest(p string, size int64) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if size <= largeFile {
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}

	const block = 64 << 10
	buf := make([]byte, block)
	zero := make([]byte, block)
	fmt.Fprintf(h, "size %d\n", size)
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return "", err
		}
		off = data / block * block
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return "", err
		}
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			fmt.Fprintf(h, "%d\n", off)
			h.Write(buf[:n])
		}
		off += block
	}
	return "blocks:" + hex.EncodeToString(h.Sum(nil)), nil
}

func xattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, err
	}
	list := make([]byte, size)
	size, err = unix.Llistxattr(p, list)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(list[:size]), "\x00"), "\x00") {
		vsize, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		val := make([]byte, vsize)
		vsize, err = unix.Lgetxattr(p, name, val)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		out[name] = string(val[:vsize])
	}
	return out, nil
}

// Paths returns the tree's paths in sorted order.
func (a Tree) Paths() []string {
	paths := make([]string, 0, len(a))
	for p := range a {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

// Without returns a copy of the tree without the given paths and anything
// below them (e.g. to ignore the root or a work dir).
func (a Tree) Without(paths ...string) Tree {
	out := Tree{}
	for p, n := range a {
		drop := false
		for _, q := range paths {
			if p == q || strings.HasPrefix(p, q+"/") {
				drop = true
			}
		}
		if !drop {
			out[p] = n
		}
	}
	return out
}

// Diff lists the differences between a and b, one line per path and field,
// in path order; it is empty when the trees are equal.
func (a Tree) Diff(b Tree) []string {
	union := map[string]bool{}
	for p := range a {
		union[p] = true
	}
	for p := range b {
		union[p] = true
	}
	paths := make([]string, 0, len(union))
	for p := range union {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var out []string
	for _, p := range paths {
		x, inA := a[p]
		y, inB := b[p]
		switch {
		case !inB:
			out = append(out, fmt.Sprintf("%s: only in first (%s)", p, x.Type))
		case !inA:
			out = append(out, fmt.Sprintf("%s: only in second (%s)", p, y.Type))
		default:
			out = append(out, x.diff(p, y)...)
		}
	}
	return out
}

func (x Node) diff(p string, y Node) []string {
	var out []string
	field := func(name string, a, b any) {
		if a != b {
			out = append(out, fmt.Sprintf("%s: %s %v != %v", p, name, a, b))
		}
	}
	field("type", x.Type, y.Type)
	field("mode", fmt.Sprintf("%04o", x.Mode), fmt.Sprintf("%04o", y.Mode))
	field("owner", fmt.Sprintf("%d:%d", x.UID, x.GID), fmt.Sprintf("%d:%d", y.UID, y.GID))
	field("size", x.Size, y.Size)
	field("sha256", x.SHA256, y.SHA256)
	field("link", x.Link, y.Link)
	field("rdev", x.Rdev, y.Rdev)
	field("hardlink", x.Hardlink, y.Hardlink)
	field("mtime", x.MTime.Format(time.RFC3339Nano), y.MTime.Format(time.RFC3339Nano))
	field("xattrs", fmtXattrs(x.Xattrs), fmtXattrs(y.Xattrs))
	return out
}

func fmtXattrs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

package als

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/testutil"
)

// Counts are what the FUSE store saw for one layer.
type Counts struct {
	// Uses counts `use` creations (each answered ENOENT).
	Uses int
	// Releases counts layer-dir rmdirs that dropped a reference.
	Releases int
	// Untracked counts rmdirs for a layer holding no reference (EIO).
	Untracked int
	// Refs is Uses minus Releases.
	Refs int
}

// FUSE is a test Additional Layer Store served over FUSE, imitating
// stargz-store: PATH/base64(ref)/<digest>/{diff/,info,blob} appear when
// looked up, nothing can be listed, `use` creation and layer-dir rmdir are
// answered with ENOENT and counted. Layers are kept in a backing directory.
type FUSE struct {
	// Mountpoint is the store's path, the PATH of an ALS location.
	Mountpoint string

	backing string

	mu       sync.Mutex
	server   *fuse.Server
	counts   map[string]*Counts
	resolved map[string]bool
	inos     map[string]uint64
}

// StartFUSE mounts an empty FUSE store below t.TempDir() and unmounts it in
// t.Cleanup. It skips the test when not run as root. Start the store before
// anything that mounts on top of it, so that their cleanups (which run
// first) unmount those mounts before this one.
func StartFUSE(t testing.TB) *FUSE {
	t.Helper()
	testutil.RequireRoot(t)
	base := t.TempDir()
	f := &FUSE{
		Mountpoint: filepath.Join(base, "mnt"),
		backing:    filepath.Join(base, "backing"),
		counts:     map[string]*Counts{},
		resolved:   map[string]bool{},
		inos:       map[string]uint64{},
	}
	for _, d := range []string{f.Mountpoint, f.backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.Start(t)
	t.Cleanup(func() { f.Stop(t) })
	return f
}

// AddLayer puts l in the backing directory, so the store offers it, and
// returns the backing layer dir (tests may remove files there).
func (f *FUSE) AddLayer(t testing.TB, l Layer) string {
	t.Helper()
	return l.write(t, f.backing)
}

// AddInfoOnly makes the store answer `info` (short form) for a layer it
// does not have: like stargz-store, which may give an info for any digest,
// the diff and blob lookups fail.
func (f *FUSE) AddInfoOnly(t testing.TB, ref string, tocDigest digest.Digest) {
	t.Helper()
	dir := LayerDir(f.backing, ref, tocDigest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "info"), ShortInfo(tocDigest), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Start mounts the store (again) at Mountpoint; counts are kept.
func (f *FUSE) Start(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.server != nil {
		return
	}
	second := time.Second
	var zero time.Duration
	opts := &fs.Options{
		EntryTimeout:    &second,
		AttrTimeout:     &second,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName:            "strata-test-als",
			Name:              "strata-test-als",
			DirectMountStrict: true,
			AllowOther:        true,
			DisableXAttrs:     false,
		},
	}
	server, err := fs.Mount(f.Mountpoint, &rootNode{store: f}, opts)
	if err != nil {
		t.Fatalf("mount FUSE store at %s: %v", f.Mountpoint, err)
	}
	f.server = server
}

// Stop unmounts the store and waits for its server to end; the store can
// be started again. Stopping a stopped store does nothing.
func (f *FUSE) Stop(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	server := f.server
	f.server = nil
	f.mu.Unlock()
	if server == nil {
		return
	}
	if err := server.Unmount(); err != nil {
		// Something still uses the mount (an overlay on top of it): detach
		// it so the test's temp dir can go; the server ends when the last
		// user lets go.
		t.Logf("unmount FUSE store %s: %v; detaching", f.Mountpoint, err)
		if err := syscall.Unmount(f.Mountpoint, syscall.MNT_DETACH); err != nil {
			t.Errorf("detach FUSE store %s: %v", f.Mountpoint, err)
		}
		return
	}
	server.Wait()
}

// Counts returns what the store saw for layer tocDigest of ref.
func (f *FUSE) Counts(ref string, tocDigest digest.Digest) Counts {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.counts[layerKey(RefDir(ref), tocDigest.String())]; c != nil {
		return *c
	}
	return Counts{}
}

func layerKey(refDir, dgst string) string { return refDir + "/" + dgst }

// ino returns a stable inode number for a synthetic node; loopback nodes
// below diff/ take the backing file system's numbers, which are small.
func (f *FUSE) ino(key string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.inos[key]
	if !ok {
		n = 1<<62 + uint64(len(f.inos))
		f.inos[key] = n
	}
	return n
}

func (f *FUSE) countsLocked(key string) *Counts {
	c := f.counts[key]
	if c == nil {
		c = &Counts{}
		f.counts[key] = c
	}
	return c
}

// isDir reports whether backing path p is a directory.
func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// dirAttr fills out for a synthetic read-only directory.
func dirAttr(out *fuse.Attr) {
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = 2
}

// rootNode is PATH: base64(ref) directories can be looked up, not listed.
type rootNode struct {
	fs.Inode
	store *FUSE
}

var (
	_ fs.NodeLookuper  = (*rootNode)(nil)
	_ fs.NodeReaddirer = (*rootNode)(nil)
)

func (n *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !isDir(filepath.Join(n.store.backing, name)) {
		return nil, syscall.ENOENT
	}
	dirAttr(&out.Attr)
	node := &refNode{store: n.store, refDir: name}
	return n.NewInode(ctx, node, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: n.store.ino(name)}), 0
}

func (n *rootNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream(nil), 0
}

// refNode is PATH/base64(ref): layer dirs are looked up by digest, and an
// rmdir of one is the release notification.
type refNode struct {
	fs.Inode
	store  *FUSE
	refDir string
}

var (
	_ fs.NodeLookuper  = (*refNode)(nil)
	_ fs.NodeReaddirer = (*refNode)(nil)
	_ fs.NodeRmdirer   = (*refNode)(nil)
)

func (n *refNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !isDir(filepath.Join(n.store.backing, n.refDir, name)) {
		return nil, syscall.ENOENT
	}
	dirAttr(&out.Attr)
	key := layerKey(n.refDir, name)
	node := &layerNode{store: n.store, key: key, dir: filepath.Join(n.store.backing, n.refDir, name), digest: name}
	return n.NewInode(ctx, node, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: n.store.ino(key)}), 0
}

func (n *refNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream(nil), 0
}

// Rmdir drops one reference and answers ENOENT, or EIO when the layer
// holds none; the directory itself never goes away.
func (n *refNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	f := n.store
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.countsLocked(layerKey(n.refDir, name))
	if c.Refs == 0 {
		c.Untracked++
		return syscall.EIO
	}
	c.Refs--
	c.Releases++
	return syscall.ENOENT
}

// layerNode is PATH/base64(ref)/<digest>.
type layerNode struct {
	fs.Inode
	store  *FUSE
	key    string
	dir    string // backing layer dir
	digest string
}

var (
	_ fs.NodeLookuper  = (*layerNode)(nil)
	_ fs.NodeReaddirer = (*layerNode)(nil)
	_ fs.NodeCreater   = (*layerNode)(nil)
)

func (n *layerNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	f := n.store
	switch name {
	case "diff":
		diff := filepath.Join(n.dir, "diff")
		var st syscall.Stat_t
		if err := syscall.Stat(diff, &st); err != nil {
			return nil, fs.ToErrno(err)
		}
		f.mu.Lock()
		f.resolved[n.key] = true
		f.mu.Unlock()
		out.Attr.FromStat(&st)
		root := &fs.LoopbackRoot{Path: diff, Dev: uint64(st.Dev)}
		node := &fs.LoopbackNode{RootData: root}
		root.RootNode = node
		return n.NewInode(ctx, node, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: f.ino(n.key + "/diff")}), 0
	case "info":
		if _, err := os.Stat(filepath.Join(n.dir, "info")); err != nil {
			return nil, fs.ToErrno(err)
		}
		node := &infoNode{layer: n}
		out.Attr.Mode = syscall.S_IFREG | 0o444
		out.Attr.Size = uint64(len(node.content()))
		out.SetAttrTimeout(0)
		return n.NewInode(ctx, node, fs.StableAttr{Mode: syscall.S_IFREG, Ino: f.ino(n.key + "/info")}), 0
	case "blob":
		p := filepath.Join(n.dir, "blob")
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return nil, fs.ToErrno(err)
		}
		out.Attr.FromStat(&st)
		out.Attr.Mode = syscall.S_IFREG | 0o444
		return n.NewInode(ctx, &blobNode{path: p}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: f.ino(n.key + "/blob")}), 0
	}
	return nil, syscall.ENOENT
}

func (n *layerNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream(nil), 0
}

// Create of `use` counts a reference and answers ENOENT; nothing else can
// be created.
func (n *layerNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if name != "use" {
		return nil, nil, 0, syscall.EROFS
	}
	f := n.store
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.countsLocked(n.key)
	c.Uses++
	c.Refs++
	return nil, nil, 0, syscall.ENOENT
}

// infoNode answers the short info until diff has been looked up, then the
// backing info file.
type infoNode struct {
	fs.Inode
	layer *layerNode
}

var (
	_ fs.NodeOpener    = (*infoNode)(nil)
	_ fs.NodeGetattrer = (*infoNode)(nil)
)

func (n *infoNode) content() []byte {
	f := n.layer.store
	f.mu.Lock()
	resolved := f.resolved[n.layer.key]
	f.mu.Unlock()
	if !resolved {
		return ShortInfo(digest.Digest(n.layer.digest))
	}
	b, err := os.ReadFile(filepath.Join(n.layer.dir, "info"))
	if err != nil {
		return nil
	}
	return b
}

func (n *infoNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(len(n.content()))
	out.SetTimeout(0)
	return 0
}

func (n *infoNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EROFS
	}
	return bytesHandle(n.content()), fuse.FOPEN_DIRECT_IO, 0
}

// bytesHandle serves a snapshot of a file's contents.
type bytesHandle []byte

var _ fs.FileReader = bytesHandle(nil)

func (b bytesHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(b)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(b)))
	return fuse.ReadResultData(b[off:end]), 0
}

// blobNode serves the backing blob file.
type blobNode struct {
	fs.Inode
	path string
}

var (
	_ fs.NodeOpener    = (*blobNode)(nil)
	_ fs.NodeGetattrer = (*blobNode)(nil)
)

func (n *blobNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Stat(n.path, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	out.Mode = syscall.S_IFREG | 0o444
	return 0
}

func (n *blobNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EROFS
	}
	fd, err := syscall.Open(n.path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	return fs.NewLoopbackFile(fd), 0, 0
}

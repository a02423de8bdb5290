package archive

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// kind is what this layer put at a path, as far as its entry names tell.
type kind uint8

const (
	kindImplicitDir kind = iota + 1 // made as a parent of another entry
	kindDir                         // a directory entry
	kindNonDir                      // file, hardlink, device, fifo
	kindSymlink
	kindWhiteout // char device 0:0 made from a .wh. entry
	kindMarker   // the .wh. entry name itself
)

// dirInfo is an open directory inside the layer and what a new child
// inherits from it.
type dirInfo struct {
	fd   int
	sgid bool   // children get gid and, for dirs, the setgid bit
	gid  uint32 // the directory's group
}

type dirTime struct {
	name         string
	atime, mtime unix.Timespec
}

// applier holds the state of one Apply. Names are clean entry names.
type applier struct {
	log        *slog.Logger
	root       dirInfo
	rootSet    bool // a "./" entry was applied
	umask      uint32
	euid, egid uint32

	paths     map[string]kind
	opaque    map[string]bool
	whiteouts map[string][]string // dir -> bases of whiteout devices made there
	dirs      map[string]dirInfo  // open parents, bounded by trimCache
	times     []dirTime           // directories' times, set by finish
	timeIndex map[string]int      // name -> index in times
	uids      map[uint32]struct{}
	gids      map[uint32]struct{}
	buf       []byte
	stream    *streamReader
}

// maxOpenDirs bounds the parent cache so that a layer with many
// directories cannot exhaust file descriptors.
const maxOpenDirs = 256

func newApplier(root string, opts Options) (*applier, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open layer root", Path: root, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat layer root", Path: root, Err: err}
	}
	a := &applier{
		log:       log,
		root:      dirInfo{fd: fd, sgid: st.Mode&unix.S_ISGID != 0, gid: st.Gid},
		umask:     processUmask(),
		euid:      uint32(os.Geteuid()),
		egid:      uint32(os.Getegid()),
		paths:     map[string]kind{},
		opaque:    map[string]bool{},
		whiteouts: map[string][]string{},
		dirs:      map[string]dirInfo{},
		timeIndex: map[string]int{},
		uids:      map[uint32]struct{}{},
		gids:      map[uint32]struct{}{},
	}
	a.dirs[""] = a.root
	return a, nil
}

// processUmask reads the umask from /proc/self/status (setting it to read
// it would race with other goroutines). When it cannot be read every mode
// is set explicitly.
func processUmask() uint32 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0o777
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
}

func (a *applier) close() {
	for name, d := range a.dirs {
		if name != "" {
			unix.Close(d.fd)
		}
	}
	unix.Close(a.root.fd)
}

// trimCache closes the cached parents when there are too many. It is
// called only between entries, so no fd in use is closed.
func (a *applier) trimCache() {
	if len(a.dirs) < maxOpenDirs {
		return
	}
	for name, d := range a.dirs {
		if name != "" {
			unix.Close(d.fd)
		}
	}
	clear(a.dirs)
	a.dirs[""] = a.root
}

// cacheDir records an open directory fd for name, closing one it replaces.
func (a *applier) cacheDir(name string, d dirInfo) {
	if old, ok := a.dirs[name]; ok && old.fd != d.fd && name != "" {
		unix.Close(old.fd)
	}
	a.dirs[name] = d
}

// resolve opens name inside the layer root, the kernel resolving every
// component (symlinks included) as if the root were "/".
func (a *applier) resolve(name string, flags uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 16 {
		fd, err := unix.Openat2(a.root.fd, name, &how)
		if err != unix.EAGAIN && err != unix.EINTR {
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

// parent returns the open directory name, making missing directories
// (0755 0:0) on the way.
func (a *applier) parent(name string) (dirInfo, error) {
	if d, ok := a.dirs[name]; ok {
		return d, nil
	}
	fd, err := a.resolve(name, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return dirInfo{}, sysErr("stat", name, err)
		}
		d := dirInfo{fd: fd, sgid: st.Mode&unix.S_ISGID != 0, gid: st.Gid}
		a.dirs[name] = d
		return d, nil
	}
	if err != unix.ENOENT {
		return dirInfo{}, sysErr("resolve", name, err)
	}
	if err := a.implicitDir(name); err != nil {
		return dirInfo{}, err
	}
	return a.parent(name)
}

// implicitDir makes directory name, whose entry the tar lacks, 0755 0:0.
func (a *applier) implicitDir(name string) error {
	dir, base := splitName(name)
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	if err := unix.Mkdirat(pd.fd, base, 0o755); err != nil {
		if err == unix.EEXIST {
			return invalid("parent %q exists but is not a directory (a dangling link?)", name)
		}
		return sysErr("mkdir", name, err)
	}
	uid, gid := a.createdOwner(pd)
	if uid != 0 || gid != 0 {
		if err := unix.Fchownat(pd.fd, base, 0, 0, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("chown", name, err)
		}
	}
	if a.umask&0o755 != 0 || pd.sgid {
		if err := unix.Fchmodat(pd.fd, base, 0o755, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("chmod", name, err)
		}
	}
	if a.paths[name] == 0 {
		a.paths[name] = kindImplicitDir
	}
	a.addOwner(0, 0)
	return nil
}

// createdOwner is the owner the kernel gives a new child of pd.
func (a *applier) createdOwner(pd dirInfo) (uid, gid uint32) {
	if pd.sgid {
		return a.euid, pd.gid
	}
	return a.euid, a.egid
}

func (a *applier) addOwner(uid, gid uint32) {
	a.uids[uid] = struct{}{}
	a.gids[gid] = struct{}{}
}

// sysErr describes a failed system call on an entry path. Errors that the
// tar's content causes (loops, a path that exists or is not a directory)
// wrap driver.ErrInvalidLayerData; others (ENOSPC, EIO) do not.
func sysErr(op, name string, err error) error {
	if name == "" {
		name = "."
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.ELOOP, unix.EEXIST, unix.ENOTDIR, unix.EISDIR, unix.ENAMETOOLONG,
			unix.EXDEV, unix.ENOENT, unix.EINVAL, unix.ERANGE, unix.E2BIG, unix.EMLINK:
			return fmt.Errorf("%w: %s %s: %w", driver.ErrInvalidLayerData, op, name, err)
		}
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

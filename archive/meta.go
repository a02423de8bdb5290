package archive

import (
	"archive/tar"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

const xattrPrefix = "SCHILY.xattr."

// entryXattrs returns the entry's xattrs, without the overlay ones: only
// whiteout entries make whiteouts and opaque dirs.
func entryXattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out
}

func (a *applier) setXattrsFd(fd int, name string, hdr *tar.Header) error {
	for k, v := range entryXattrs(hdr) {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			if err := a.xattrErr(name, k, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// setXattrsAt sets xattrs on a node that cannot be opened (symlink, device,
// fifo): the parent's fd in /proc names the parent and lsetxattr does not
// follow the last component.
func (a *applier) setXattrsAt(pd dirInfo, name, base string, hdr *tar.Header) error {
	xattrs := entryXattrs(hdr)
	if len(xattrs) == 0 {
		return nil
	}
	p := "/proc/self/fd/" + strconv.Itoa(pd.fd) + "/" + base
	for k, v := range xattrs {
		if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
			if err := a.xattrErr(name, k, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// xattrErr decides about a failed setxattr: a filesystem without xattr
// support, or a namespace the kernel refuses on this kind of node
// (user.* on a symlink), is logged and skipped.
func (a *applier) xattrErr(name, key string, err error) error {
	if err == unix.ENOTSUP || err == unix.EPERM && strings.HasPrefix(key, "user.") {
		a.log.Debug("xattr not kept", "entry", name, "xattr", key, "error", err)
		return nil
	}
	return sysErr("setxattr "+key, name, err)
}

// entryTimes is {atime, mtime}; atime is mtime when the tar has none.
func entryTimes(hdr *tar.Header) [2]unix.Timespec {
	m := unix.Timespec{Sec: hdr.ModTime.Unix(), Nsec: int64(hdr.ModTime.Nanosecond())}
	at := m
	if !hdr.AccessTime.IsZero() {
		at = unix.Timespec{Sec: hdr.AccessTime.Unix(), Nsec: int64(hdr.AccessTime.Nanosecond())}
	}
	return [2]unix.Timespec{at, m}
}

// futimens sets the times of an open file (utimensat with a NULL path).
func futimens(fd int, ts [2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0,
		uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// deferTimes records a directory's times for finish; a repeated directory
// entry replaces them.
func (a *applier) deferTimes(name string, hdr *tar.Header) {
	ts := entryTimes(hdr)
	t := dirTime{name: name, atime: ts[0], mtime: ts[1]}
	if i, ok := a.timeIndex[name]; ok {
		a.times[i] = t
		return
	}
	a.timeIndex[name] = len(a.times)
	a.times = append(a.times, t)
}

// finish sets directories' times, after every entry and whiteout has
// changed them.
func (a *applier) finish() error {
	for _, t := range a.times {
		ts := []unix.Timespec{t.atime, t.mtime}
		if t.name == "" {
			if err := futimens(a.root.fd, [2]unix.Timespec{t.atime, t.mtime}); err != nil {
				return &EntryError{Name: "./", Err: sysErr("set times", "", err)}
			}
			continue
		}
		a.trimCache()
		dir, base := splitName(t.name)
		pd, err := a.parent(dir)
		if err == nil {
			err = unix.UtimesNanoAt(pd.fd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
			if err != nil {
				err = sysErr("set times", t.name, err)
			}
		}
		if err != nil {
			return &EntryError{Name: t.name, Err: err}
		}
	}
	return nil
}

// fdWriter writes to and seeks in a file descriptor, without the
// bookkeeping of *os.File.
type fdWriter struct{ fd int }

func (w *fdWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n, err := unix.Write(w.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		total += n
		p = p[n:]
	}
	return total, nil
}

func (w *fdWriter) Seek(offset int64, whence int) (int64, error) {
	return unix.Seek(w.fd, offset, whence)
}

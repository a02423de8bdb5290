package archive

import (
	"archive/tar"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

// perm is the header's permission bits, setuid, setgid and sticky included.
func perm(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

// rootDir applies a "./" entry to the layer root. The root's current mode
// and owner come from the driver, so both are set unconditionally.
func (a *applier) rootDir(hdr *tar.Header) error {
	fd := a.root.fd
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return sysErr("chown", "", err)
	}
	if err := unix.Fchmod(fd, perm(hdr)); err != nil {
		return sysErr("chmod", "", err)
	}
	if err := a.setXattrsFd(fd, "", hdr); err != nil {
		return err
	}
	a.root.sgid, a.root.gid = perm(hdr)&unix.S_ISGID != 0, uint32(hdr.Gid)
	a.rootSet = true
	a.dirs[""] = a.root
	a.addOwner(uint32(hdr.Uid), uint32(hdr.Gid))
	a.deferTimes("", hdr)
	return nil
}

// dir makes a directory or, when this layer already has one there,
// updates its metadata. Its times are set by finish.
func (a *applier) dir(hdr *tar.Header, name, dir, base string) error {
	prev := a.paths[name]
	switch prev {
	case 0, kindDir, kindImplicitDir:
	case kindWhiteout:
		if err := a.removeWhiteout(name); err != nil {
			return err
		}
	default:
		return invalid("repeated path %q", name)
	}
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}

	mode := perm(hdr)
	exists := prev == kindDir || prev == kindImplicitDir
	if !exists {
		if err := unix.Mkdirat(pd.fd, base, mode&0o1777); err != nil {
			return sysErr("mkdir", name, err)
		}
	}
	fd, err := unix.Openat(pd.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return sysErr("open", name, err)
	}
	a.cacheDir(name, dirInfo{fd: fd, sgid: mode&unix.S_ISGID != 0, gid: uint32(hdr.Gid)})

	uid, gid := a.createdOwner(pd)
	if exists || uid != uint32(hdr.Uid) || gid != uint32(hdr.Gid) {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return sysErr("chown", name, err)
		}
	}
	if exists || mode&a.umask != 0 || mode&0o6000 != 0 || pd.sgid {
		if err := unix.Fchmod(fd, mode); err != nil {
			return sysErr("chmod", name, err)
		}
	}
	if err := a.setXattrsFd(fd, name, hdr); err != nil {
		return err
	}

	a.paths[name] = kindDir
	a.addOwner(uint32(hdr.Uid), uint32(hdr.Gid))
	a.deferTimes(name, hdr)
	if prev == kindWhiteout {
		// ".wh.a" with "a/" in one layer: "a" holds only this layer's files.
		return a.makeOpaque(name)
	}
	return nil
}

// file writes a regular file. Sparse entries stay sparse (writeSparse).
func (a *applier) file(tr *tarReader, hdr *tar.Header, name, dir, base string) error {
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	mode := perm(hdr)
	fd, err := unix.Openat(pd.fd, base,
		unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return sysErr("create", name, err)
	}
	defer unix.Close(fd)
	a.paths[name] = kindNonDir

	if hdr.Size > 0 {
		if err := a.writeData(fd, tr, hdr); err != nil {
			return err
		}
	}
	uid, gid := a.createdOwner(pd)
	chowned := uid != uint32(hdr.Uid) || gid != uint32(hdr.Gid)
	if chowned {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return sysErr("chown", name, err)
		}
	}
	if mode&a.umask != 0 || mode&0o7000 != 0 {
		if err := unix.Fchmod(fd, mode); err != nil {
			return sysErr("chmod", name, err)
		}
	}
	if err := a.setXattrsFd(fd, name, hdr); err != nil {
		return err
	}
	if err := futimens(fd, entryTimes(hdr)); err != nil {
		return sysErr("set times", name, err)
	}
	a.addOwner(uint32(hdr.Uid), uint32(hdr.Gid))
	return nil
}

// copyBufSize is the read size for file data; large reads keep the
// decompressor and the write path busy with few calls.
const copyBufSize = 1 << 20

func (a *applier) writeData(fd int, tr *tarReader, hdr *tar.Header) error {
	if isSparse(hdr) {
		if frags, stored, ok := a.stream.sparseLayout(hdr); ok {
			return a.writeSparse(fd, hdr, frags, stored)
		}
		// Old GNU sparse headers: holes arrive as zeros and are written.
		if _, err := io.Copy(&fdWriter{fd: fd}, tr); err != nil {
			return dataErr(err)
		}
		return nil
	}
	if a.buf == nil {
		a.buf = make([]byte, copyBufSize)
	}
	w := fdWriter{fd: fd}
	for remaining := hdr.Size; remaining > 0; {
		chunk := a.buf
		if remaining < int64(len(chunk)) {
			chunk = chunk[:remaining]
		}
		if _, err := io.ReadFull(tr, chunk); err != nil {
			return dataErr(err)
		}
		if _, err := w.Write(chunk); err != nil {
			return sysErr("write", hdr.Name, err)
		}
		remaining -= int64(len(chunk))
	}
	return nil
}

func dataErr(err error) error {
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return invalid("stream ends inside the entry's data")
	}
	return invalid("reading data: %w", err)
}

// isSparse reports whether the entry is a GNU sparse file (old GNU or PAX
// 0.x/1.0 form).
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (a *applier) symlink(hdr *tar.Header, name, dir, base string) error {
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(hdr.Linkname, pd.fd, base); err != nil {
		return sysErr("symlink", name, err)
	}
	a.paths[name] = kindSymlink
	return a.nodeMeta(hdr, pd, name, base, false)
}

// hardlink links name to an earlier non-directory entry of this layer. Its
// own header metadata is not applied: it names the target's inode.
func (a *applier) hardlink(hdr *tar.Header, name, dir, base string) error {
	target := cleanName(hdr.Linkname)
	k := a.paths[target]
	if k != kindNonDir && k != kindSymlink {
		return invalid("hardlink target %q is not an earlier file of this layer", hdr.Linkname)
	}
	tdir, tbase := splitName(target)
	tpd, err := a.parent(tdir)
	if err != nil {
		return err
	}
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	if err := unix.Linkat(tpd.fd, tbase, pd.fd, base, 0); err != nil {
		return sysErr("link", name, err)
	}
	a.paths[name] = k
	return nil
}

// node makes a fifo or a device.
func (a *applier) node(hdr *tar.Header, name, dir, base string) error {
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	mode := perm(hdr)
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(pd.fd, base, typ|mode&0o777, int(dev)); err != nil {
		return sysErr("mknod", name, err)
	}
	a.paths[name] = kindNonDir
	return a.nodeMeta(hdr, pd, name, base, true)
}

// nodeMeta sets owner, mode (not for symlinks), xattrs and times of a
// node that has no fd of its own, relative to its parent and never
// following a link.
func (a *applier) nodeMeta(hdr *tar.Header, pd dirInfo, name, base string, chmod bool) error {
	uid, gid := a.createdOwner(pd)
	chowned := uid != uint32(hdr.Uid) || gid != uint32(hdr.Gid)
	if chowned {
		if err := unix.Fchownat(pd.fd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("chown", name, err)
		}
	}
	mode := perm(hdr)
	if chmod && (mode&a.umask != 0 || mode&0o7000 != 0) {
		if err := unix.Fchmodat(pd.fd, base, mode, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("chmod", name, err)
		}
	}
	if err := a.setXattrsAt(pd, name, base, hdr); err != nil {
		return err
	}
	ts := entryTimes(hdr)
	if err := unix.UtimesNanoAt(pd.fd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return sysErr("set times", name, err)
	}
	a.addOwner(uint32(hdr.Uid), uint32(hdr.Gid))
	return nil
}

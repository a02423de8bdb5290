package archive

import (
	"strings"

	"golang.org/x/sys/unix"
)

// opaqueXattr marks an overlayfs directory that hides the lower layers.
const opaqueXattr = "trusted.overlay.opaque"

// whiteout handles an OCI whiteout entry DIR/.wh.BASE or the opaque marker
// DIR/.wh..wh..opq. Both act on lower layers only: what this layer itself
// put in DIR stays.
func (a *applier) whiteout(name, dir, base string) error {
	if a.paths[name] != 0 {
		return invalid("repeated path %q", name)
	}
	a.paths[name] = kindMarker
	skip, err := a.checkParents(dir, true)
	if err != nil || skip {
		return err
	}

	if base == opaqueMarker {
		if _, err := a.parent(dir); err != nil {
			return err
		}
		return a.makeOpaque(dir)
	}
	if strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix) {
		a.log.Debug("aufs metadata entry skipped", "entry", name)
		return nil
	}
	target := base[len(whiteoutPrefix):]
	if target == "" || target == "." || target == ".." {
		return invalid("whiteout names no file")
	}
	full := target
	if dir != "" {
		full = dir + "/" + target
	}
	if a.opaque[dir] {
		return nil
	}
	switch a.paths[full] {
	case 0:
	case kindDir, kindImplicitDir:
		// ".wh.a" with "a/" or "a/x" in one layer: "a" holds only this
		// layer's files.
		return a.makeOpaque(full)
	default:
		return nil
	}

	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	if err := unix.Mknodat(pd.fd, target, unix.S_IFCHR, 0); err != nil {
		return sysErr("mknod whiteout", full, err)
	}
	if uid, gid := a.createdOwner(pd); uid != 0 || gid != 0 {
		if err := unix.Fchownat(pd.fd, target, 0, 0, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("chown whiteout", full, err)
		}
	}
	a.paths[full] = kindWhiteout
	a.whiteouts[dir] = append(a.whiteouts[dir], target)
	a.addOwner(0, 0)
	return nil
}

// makeOpaque marks directory name opaque and removes the whiteout devices
// this layer made in it, which the opaque dir makes redundant.
func (a *applier) makeOpaque(name string) error {
	if a.opaque[name] {
		return nil
	}
	fd := a.root.fd
	if name != "" {
		var err error
		fd, err = a.resolve(name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return sysErr("open", name, err)
		}
		defer unix.Close(fd)
	}
	if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
		return sysErr("set opaque", name, err)
	}
	a.opaque[name] = true

	for _, base := range a.whiteouts[name] {
		full := base
		if name != "" {
			full = name + "/" + base
		}
		if a.paths[full] != kindWhiteout {
			continue
		}
		if err := unix.Unlinkat(fd, base, 0); err != nil {
			return sysErr("remove whiteout", full, err)
		}
		delete(a.paths, full)
	}
	delete(a.whiteouts, name)
	return nil
}

// removeWhiteout deletes a whiteout device this layer made, before a new
// entry takes its place.
func (a *applier) removeWhiteout(name string) error {
	dir, base := splitName(name)
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(pd.fd, base, 0); err != nil {
		return sysErr("remove whiteout", name, err)
	}
	delete(a.paths, name)
	return nil
}

package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// features are what New found out about the kernel and the backing
// filesystem; they do not change while the driver is open.
type features struct {
	newAPI   bool // fsopen + fsconfig "lowerdir+" (Linux 6.8+)
	metacopy bool // the overlay takes metacopy=on
	// metacopyDefault and redirectDefault: the overlay module's
	// parameters turn metacopy and redirect_dir on for mounts that do
	// not say otherwise.
	metacopyDefault bool
	redirectDefault bool
	dType           bool   // the backing filesystem fills in d_type
	selinux         bool   // SELinux is enabled, so mount labels apply
	backingFS       string // name of the filesystem holding the home
}

func (f features) mountAPIName() string {
	if f.newAPI {
		return "fsopen/fsconfig lowerdir+"
	}
	return "mount(2)"
}

// selinuxEnforce exists when SELinux is enabled (selinuxfs is mounted).
const selinuxEnforce = "/sys/fs/selinux/enforce"

// metacopyParam exists when the overlay module knows the metacopy option;
// it and redirectDirParam read "Y" when the module turns the feature on
// by default.
const (
	metacopyParam    = "/sys/module/overlay/parameters/metacopy"
	redirectDirParam = "/sys/module/overlay/parameters/redirect_dir"
)

// moduleParamOn reports whether the overlay module parameter at path
// reads "Y".
func moduleParamOn(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// probe tries an overlay on a scratch directory in home, first with the new
// mount API (unless classic is set), then with mount(2), each with
// metacopy=on first when the module knows it. The scratch directory's
// name starts with '.', which no layer id can.
//
// A read-only home cannot hold the scratch directory: then d_type is read
// off the home's own entries, the new mount API is tried without creating
// a superblock, and metacopy support is taken from the module parameter.
func probe(home string, classic, readOnly bool) (features, error) {
	var f features
	var st unix.Statfs_t
	if err := unix.Statfs(home, &st); err != nil {
		return f, fmt.Errorf("statfs %s: %w", home, err)
	}
	f.backingFS = fsName(st.Type)
	if _, err := os.Stat(selinuxEnforce); err == nil {
		f.selinux = true
	}
	f.metacopyDefault = moduleParamOn(metacopyParam)
	f.redirectDefault = moduleParamOn(redirectDirParam)
	if readOnly {
		return probeReadOnly(home, classic, f)
	}

	dir, err := os.MkdirTemp(home, ".probe-")
	if err != nil {
		return f, fmt.Errorf("overlay probe dir: %w", err)
	}
	defer os.RemoveAll(dir)
	rel := filepath.Base(dir)
	for _, sub := range []string{"l1", "l2", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return f, fmt.Errorf("overlay probe dir: %w", err)
		}
	}
	if f.dType, err = fillsDType(filepath.Join(dir, "l1")); err != nil {
		return f, err
	}

	spec := mountSpec{
		lowers: []string{rel + "/l1", rel + "/l2"},
		upper:  rel + "/upper",
		work:   rel + "/work",
		target: filepath.Join(dir, "merged"),
	}
	tryMetacopy := true
	if _, err := os.Stat(metacopyParam); err != nil {
		tryMetacopy = false
	}

	var errs []error
	for _, newAPI := range []bool{true, false} {
		if newAPI && classic {
			continue
		}
		for _, metacopy := range []bool{true, false} {
			if metacopy && !tryMetacopy {
				continue
			}
			s := spec
			if metacopy {
				s.options = []string{"metacopy=on"}
			}
			err := inHome(home, func() error {
				if newAPI {
					return createNewAPI(s)
				}
				return probeClassic(s)
			})
			if err == nil {
				f.newAPI, f.metacopy = newAPI, metacopy
				return f, nil
			}
			errs = append(errs, err)
			if errors.Is(err, errNoNewMountAPI) {
				break
			}
		}
	}
	return f, fmt.Errorf("overlay cannot be mounted on %s (%s): %w: %w",
		home, f.backingFS, errors.Join(errs...), driver.ErrNotSupported)
}

// probeReadOnly is probe for a home it cannot write to.
func probeReadOnly(home string, classic bool, f features) (features, error) {
	var err error
	if f.dType, err = dirFillsDType(home); err != nil {
		return f, err
	}
	if _, err := os.Stat(metacopyParam); err == nil {
		f.metacopy = true
	}
	if classic {
		return f, nil
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return f, nil
	}
	defer unix.Close(fd)
	// "lowerdir+" looks its path up when it is set, which needs no write.
	f.newAPI = unix.FsconfigSetString(fd, "lowerdir+", home) == nil
	return f, nil
}

// createNewAPI builds (but does not mount) an overlay superblock for
// spec, which checks everything the kernel checks at mount time.
func createNewAPI(spec mountSpec) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w: %w", err, errNoNewMountAPI)
	}
	defer unix.Close(fd)
	for _, l := range spec.lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			return fmt.Errorf("lowerdir+: %w%s: %w", err, fsLog(fd), errNoNewMountAPI)
		}
	}
	for _, kv := range [][2]string{{"upperdir", spec.upper}, {"workdir", spec.work}} {
		if err := unix.FsconfigSetString(fd, kv[0], kv[1]); err != nil {
			return fmt.Errorf("%s: %w%s", kv[0], err, fsLog(fd))
		}
	}
	for _, o := range spec.options {
		k, v, _ := strings.Cut(o, "=")
		if err := unix.FsconfigSetString(fd, k, v); err != nil {
			return fmt.Errorf("%s: %w%s", o, err, fsLog(fd))
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("create: %w%s", err, fsLog(fd))
	}
	return nil
}

// probeClassic mounts spec with mount(2) and unmounts it again.
func probeClassic(spec mountSpec) error {
	if err := mountClassic(spec); err != nil {
		return err
	}
	return unix.Unmount(spec.target, unix.MNT_DETACH)
}

// fillsDType creates a file in dir and reads the directory with getdents64
// to see whether the filesystem reports entry types (overlayfs needs it).
func fillsDType(dir string) (bool, error) {
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		return false, fmt.Errorf("d_type probe: %w", err)
	}
	return readsDType(dir, func(name []byte) bool {
		return len(name) > 0 && name[0] == 'f' && (len(name) == 1 || name[1] == 0)
	})
}

// dirFillsDType reads dir's existing entries ("." included) with
// getdents64 and reports whether the filesystem gives their types.
func dirFillsDType(dir string) (bool, error) {
	return readsDType(dir, func([]byte) bool { return true })
}

// readsDType reports the d_type verdict of the first entry of dir that
// match accepts (name is NUL padded).
func readsDType(dir string, match func(name []byte) bool) (bool, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("d_type probe: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return false, fmt.Errorf("d_type probe: getdents %s: %w", dir, err)
		}
		if n <= 0 {
			return false, nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for off := 0; off+19 < n; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen == 0 {
				break
			}
			typ := buf[off+18]
			name := buf[off+19 : off+reclen]
			if match(name) {
				return typ != unix.DT_UNKNOWN, nil
			}
			off += reclen
		}
	}
}

// fsName names a filesystem by its statfs magic number.
func fsName(magic int64) string {
	names := map[int64]string{
		0xEF53:     "extfs",
		0x58465342: "xfs",
		0x9123683E: "btrfs",
		0x01021994: "tmpfs",
		0x794C7630: "overlayfs",
		0x2FC12FC1: "zfs",
		0x6969:     "nfs",
		0xF2F52010: "f2fs",
		0x65735546: "fuse",
		0x73717368: "squashfs",
	}
	if n, ok := names[magic]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", magic)
}

package overlay

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// mountSpec is one overlay mount, independent of the call that makes it.
// Layer paths are relative to the driver home (the mount runs with the home
// as working directory) unless they are absolute.
type mountSpec struct {
	lowers  []string // nearest first
	upper   string   // "" for a read-only stack
	work    string
	options []string // overlay (superblock) options: "key" or "key=value"
	flags   mountFlags
	label   string // SELinux context, "" for none
	target  string // absolute mount point
}

// mountFlags are the per-mount options, kept apart from the overlay's own
// options because the new mount API takes them as attributes of fsmount.
type mountFlags struct {
	attr uint64  // MOUNT_ATTR_* for fsmount
	ms   uintptr // MS_* for mount(2)
}

// perMountOptions are the generic options that are mount flags, not
// overlay options; the positive forms ("dev", "rw", ...) are the defaults
// and set nothing.
var perMountOptions = map[string]mountFlags{
	"ro":          {unix.MOUNT_ATTR_RDONLY, unix.MS_RDONLY},
	"nosuid":      {unix.MOUNT_ATTR_NOSUID, unix.MS_NOSUID},
	"nodev":       {unix.MOUNT_ATTR_NODEV, unix.MS_NODEV},
	"noexec":      {unix.MOUNT_ATTR_NOEXEC, unix.MS_NOEXEC},
	"noatime":     {unix.MOUNT_ATTR_NOATIME, unix.MS_NOATIME},
	"strictatime": {unix.MOUNT_ATTR_STRICTATIME, unix.MS_STRICTATIME},
	"nodiratime":  {unix.MOUNT_ATTR_NODIRATIME, unix.MS_NODIRATIME},
	"nosymfollow": {unix.MOUNT_ATTR_NOSYMFOLLOW, unix.MS_NOSYMFOLLOW},
	"relatime":    {},
	"rw":          {},
	"dev":         {},
	"suid":        {},
	"exec":        {},
}

// layerOptions name the overlay options the driver sets itself; a caller
// giving them would break the stack.
var layerOptions = map[string]bool{
	"lowerdir": true, "lowerdir+": true, "datadir+": true, "upperdir": true, "workdir": true,
}

// splitOptions splits mount option strings on ',' outside double quotes
// and removes the quotes, so `context="a:b,c"` stays one option.
func splitOptions(list []string) []string {
	var out []string
	for _, s := range list {
		var cur strings.Builder
		quoted := false
		for _, c := range s {
			switch {
			case c == '"':
				quoted = !quoted
			case c == ',' && !quoted:
				if cur.Len() > 0 {
					out = append(out, cur.String())
				}
				cur.Reset()
			default:
				cur.WriteRune(c)
			}
		}
		if cur.Len() > 0 {
			out = append(out, cur.String())
		}
	}
	return out
}

// classifyOptions sorts options into per-mount flags and overlay options,
// dropping repeats (the first wins).
func classifyOptions(opts []string) ([]string, mountFlags, error) {
	var flags mountFlags
	var overlay []string
	seen := map[string]bool{}
	for _, o := range splitOptions(opts) {
		if seen[o] {
			continue
		}
		seen[o] = true
		if f, ok := perMountOptions[o]; ok {
			flags.attr |= f.attr
			flags.ms |= f.ms
			continue
		}
		key, _, _ := strings.Cut(o, "=")
		if layerOptions[key] {
			return nil, flags, fmt.Errorf("mount option %q is set by the driver: %w",
				o, driver.ErrInvalidArgument)
		}
		overlay = append(overlay, o)
	}
	return overlay, flags, nil
}

// inHome runs fn on a thread of its own whose working directory is home,
// so that relative layer paths resolve there. The thread unshares its
// filesystem context first and is never handed back to the Go scheduler
// (the goroutine ends locked, so the runtime retires the thread); the rest
// of the process keeps its working directory.
func inHome(home string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unshare filesystem context: %w", err)
			return
		}
		if err := unix.Chdir(home); err != nil {
			done <- fmt.Errorf("chdir %s: %w", home, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// mountNewAPI mounts spec with fsopen, one fsconfig "lowerdir+" per layer,
// fsmount and move_mount (Linux 6.8+). No option string is built, so paths
// need no escaping and the stack depth is not limited by a page of mount
// data. Must run inside inHome.
func mountNewAPI(spec mountSpec) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)

	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fd, key, value); err != nil {
			return fmt.Errorf("overlay option %s=%s: %w%s", key, value, err, fsLog(fd))
		}
		return nil
	}
	if err := set("source", "overlay"); err != nil {
		return err
	}
	for _, l := range spec.lowers {
		if err := set("lowerdir+", l); err != nil {
			return err
		}
	}
	if spec.upper != "" {
		if err := set("upperdir", spec.upper); err != nil {
			return err
		}
		if err := set("workdir", spec.work); err != nil {
			return err
		}
	}
	for _, o := range spec.options {
		key, value, hasValue := strings.Cut(o, "=")
		if hasValue {
			err = set(key, value)
		} else if err = unix.FsconfigSetFlag(fd, key); err != nil {
			err = fmt.Errorf("overlay option %s: %w%s", key, err, fsLog(fd))
		}
		if err != nil {
			return err
		}
	}
	if spec.label != "" {
		if err := set("context", spec.label); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, fsLog(fd))
	}

	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, int(spec.flags.attr))
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w%s", err, fsLog(fd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, spec.target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount overlay to %s: %w", spec.target, err)
	}
	return nil
}

// fsLog reads the messages the kernel left on a filesystem context, for
// error text; it returns "" when there are none.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 4096)
	for range 16 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		if msg := fsLogMessage(string(buf[:n])); msg != "" {
			msgs = append(msgs, msg)
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (kernel: " + strings.Join(msgs, "; ") + ")"
}

// fsLogMessage turns one record of a filesystem context's log into error
// text. The kernel starts each record with its level and a space ("e " for
// an error, "w " a warning, "i " information); the level is dropped for
// errors, spelled out for the others, so the text reads
// "overlay: Unknown parameter 'x'" rather than "e overlay: ...".
func fsLogMessage(record string) string {
	record = strings.TrimSpace(record)
	level, msg, ok := strings.Cut(record, " ")
	if !ok || len(level) != 1 {
		return record
	}
	switch level {
	case "e":
		return msg
	case "w":
		return "warning: " + msg
	case "i":
		return "info: " + msg
	}
	return record
}

// mountClassic mounts spec with mount(2): the options are one string,
// which the kernel takes only up to a page and splits on ',' and ':'.
// Layer paths are relative to the home (the reason for the short links),
// so the home's own path never appears in it. Must run inside inHome.
func mountClassic(spec mountSpec) error {
	var b strings.Builder
	b.WriteString("lowerdir=")
	for i, l := range spec.lowers {
		if strings.ContainsAny(l, ":,\\") {
			return fmt.Errorf("layer path %s cannot be given to mount(2): it holds ':', ',' or '\\': %w",
				l, driver.ErrNotSupported)
		}
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(l)
	}
	if spec.upper != "" {
		fmt.Fprintf(&b, ",upperdir=%s,workdir=%s", spec.upper, spec.work)
	}
	for _, o := range spec.options {
		b.WriteByte(',')
		b.WriteString(o)
	}
	if spec.label != "" {
		fmt.Fprintf(&b, ",context=%q", spec.label)
	}

	data := b.String()
	if limit := unix.Getpagesize() - 1; len(data) > limit {
		return fmt.Errorf("%d layers need %d bytes of mount data, more than the %d mount(2) takes: %w",
			len(spec.lowers), len(data), limit, driver.ErrTooManyLayers)
	}
	if err := unix.Mount("overlay", spec.target, "overlay", spec.flags.ms, data); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", spec.target, err)
	}
	return nil
}

// errNoNewMountAPI tells the probe that the kernel lacks fsopen or
// "lowerdir+".
var errNoNewMountAPI = errors.New("new mount API with lowerdir+ is not available")

package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// Mount mounts layer id on top of its parents at home/<id>/merged and
// returns that path. A layer this process has mounted is not mounted
// again: its count goes up. A layer mounted by another process is taken
// over with a count of one. A count left over from a mount that is gone
// (another process unmounted it) is reset and the layer mounted again.
//
// A layer that is already mounted must be asked for with the same
// read-only-ness: asking for a read-only mount of a layer mounted
// read-write (with an upper dir), or the other way round, fails with an
// error wrapping driver.ErrLayerMounted that says how it is mounted. Other
// options (mount label, "nodev", ...) of a second request are not
// compared: the existing mount is returned as it is.
func (d *Driver) Mount(id string, opts driver.MountOpts) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	if _, err := os.Lstat(d.diffDir(id)); err != nil {
		return "", fmt.Errorf("layer %s: %w", id, layerErr(err))
	}
	target := d.mergedDir(id)
	mounted, err := isMounted(target)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", id, err)
	}
	if mounted {
		if err := sameReadOnlyness(id, target, opts.ReadOnly); err != nil {
			return "", err
		}
		d.counts[id]++
		return target, nil
	}

	spec, err := d.mountSpec(id, opts)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return "", fmt.Errorf("layer %s: %w", id, err)
	}
	mountFn := mountClassic
	if d.feat.newAPI {
		mountFn = mountNewAPI
	}
	if err := inHome(d.home, func() error { return mountFn(spec) }); err != nil {
		return "", fmt.Errorf("layer %s: %w", id, err)
	}
	d.counts[id] = 1
	d.logger.Debug("mounted layer", "layer", id, "path", target, "layers", len(spec.lowers),
		"readOnly", opts.ReadOnly)
	return target, nil
}

// mountSpec works out the stack and options of layer id. It fails with
// ErrTooManyLayers before anything is mounted when the stack is deeper
// than overlayfs allows.
func (d *Driver) mountSpec(id string, opts driver.MountOpts) (mountSpec, error) {
	parents, err := d.lowerIDs(id)
	if err != nil {
		return mountSpec{}, err
	}
	if n := 1 + len(parents); n > maxStack {
		return mountSpec{}, fmt.Errorf("layer %s: stack of %d layers, overlayfs mounts at most %d: %w",
			id, n, maxStack, driver.ErrTooManyLayers)
	}

	var lowers []string
	for _, p := range parents {
		path, err := d.mountPath(p)
		if err != nil {
			return mountSpec{}, fmt.Errorf("layer %s: parent %s: %w", id, p, err)
		}
		lowers = append(lowers, path)
	}
	lowers = uniqueLowers(lowers)

	spec := mountSpec{target: d.mergedDir(id)}
	if d.feat.selinux {
		// Without SELinux a context= option is an unknown option to the
		// overlay; the label has nothing to do then.
		spec.label = opts.MountLabel
	}
	if opts.ReadOnly {
		own, err := d.mountPath(id)
		if err != nil {
			return mountSpec{}, fmt.Errorf("layer %s: %w", id, err)
		}
		lowers = uniqueLowers(append([]string{own}, lowers...))
		if len(lowers) == 1 {
			// overlayfs wants two lowers when there is no upper.
			lowers = append(lowers, relEmpty(id))
		}
	} else {
		if err := d.checkWritable(id, "read-write mount"); err != nil {
			return mountSpec{}, err
		}
		if _, err := os.Stat(d.additionalLayerFile(id)); err == nil {
			return mountSpec{}, fmt.Errorf("layer %s comes from an additional layer store and cannot be mounted read-write: %w",
				id, driver.ErrNotSupported)
		}
		if err := d.clearVolatileWork(id); err != nil {
			return mountSpec{}, err
		}
		if len(lowers) == 0 {
			lowers = []string{relEmpty(id)}
		}
		spec.upper, spec.work = relDiff(id), relWork(id)
	}
	spec.lowers = lowers

	all := append(slices.Clone(d.opts.MountOptions), opts.Options...)
	overlayOpts, flags, err := classifyOptions(all)
	if err != nil {
		return mountSpec{}, fmt.Errorf("layer %s: %w", id, err)
	}
	if opts.ReadOnly {
		// volatile only concerns an upper dir; the kernel ignores it
		// without one.
		overlayOpts = slices.DeleteFunc(overlayOpts, func(o string) bool { return o == "volatile" })
		flags.attr |= unix.MOUNT_ATTR_RDONLY
		flags.ms |= unix.MS_RDONLY
	}
	if overlayOpts, err = d.copyUpOptions(id, overlayOpts, opts.ReadOnly); err != nil {
		return mountSpec{}, err
	}
	spec.options, spec.flags = overlayOpts, flags
	return spec, nil
}

// copyUpOptions settles metacopy and redirect_dir for a mount of layer id.
//
// The driver never turns metacopy on by itself, and it turns off the
// kernel's redirect_dir and metacopy defaults (module parameters) on a
// read-write mount: with either, a change made through the mount leaves
// the layer's diff dir without the data it stands for (a chmod leaves a
// metadata-only copy of a lower file, a rename of a lower directory a
// redirect to it), and exporting the layer or listing its changes from
// the diff dir alone would then be wrong. Without them the kernel copies
// the whole file up and a directory rename falls back to copying
// (EXDEV), so the diff dir holds every byte it changes. A caller that
// sets metacopy= or redirect_dir= itself gets what it asked for;
// metacopy=on on a kernel without it fails here, before mounting.
func (d *Driver) copyUpOptions(id string, overlayOpts []string, readOnly bool) ([]string, error) {
	callerSets := false
	for _, o := range overlayOpts {
		key, value, _ := strings.Cut(o, "=")
		switch key {
		case "metacopy":
			if value == "on" && !d.feat.metacopy {
				return nil, fmt.Errorf("layer %s: mount option metacopy=on: this kernel's overlayfs has no metacopy support: %w",
					id, driver.ErrNotSupported)
			}
			callerSets = true
		case "redirect_dir":
			callerSets = true
		}
	}
	if readOnly || callerSets {
		return overlayOpts, nil
	}
	if d.feat.metacopyDefault {
		overlayOpts = append(overlayOpts, "metacopy=off")
	}
	if d.feat.metacopyDefault || d.feat.redirectDefault {
		overlayOpts = append(overlayOpts, "redirect_dir=off")
	}
	return overlayOpts, nil
}

// uniqueLowers drops every lower after the first with the same path,
// keeping the topmost. Two layers of one chain can share files when both
// come from the same Additional Layer Store layer (an image may repeat a
// layer); overlayfs refuses a lower dir given twice, and the lower copy
// could not change the view the upper one already decides.
func uniqueLowers(lowers []string) []string {
	seen := make(map[string]bool, len(lowers))
	kept := lowers[:0]
	for _, l := range lowers {
		if !seen[l] {
			seen[l] = true
			kept = append(kept, l)
		}
	}
	return kept
}

// mountPath is where the files of layer id are found for mounting: its
// short link relative to the home, or, for a layer from an Additional
// Layer Store, the store's directory, which must still be there.
func (d *Driver) mountPath(id string) (string, error) {
	if b, err := os.ReadFile(d.additionalLayerFile(id)); err == nil {
		alsDir := strings.TrimSpace(string(b))
		if d.resolveAdditional != nil {
			return d.resolveAdditional(id, alsDir)
		}
		dir := filepath.Join(alsDir, diffName)
		if _, err := os.Stat(dir); err != nil {
			return "", fmt.Errorf("layer %s: files at %s: %w: %w", id, dir, err,
				driver.ErrAdditionalLayerStoreGone)
		}
		return dir, nil
	}

	if _, err := os.Stat(d.diffDir(id)); err != nil {
		return "", fmt.Errorf("layer %s: %w", id, layerErr(err))
	}
	short, err := d.readShort(id)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", id, layerErr(err))
	}
	return shortLinkRel(short), nil
}

// clearVolatileWork empties the work dir of layer id when a mount with
// "volatile" left its mark there: overlayfs refuses to reuse such a work
// dir, and what it held is scratch space only.
func (d *Driver) clearVolatileWork(id string) error {
	work := d.workDir(id)
	found := false
	for _, mark := range []string{"work/incompat/volatile", "incompat/volatile"} {
		if _, err := os.Lstat(filepath.Join(work, mark)); err == nil {
			found = true
		}
	}
	if !found {
		return nil
	}
	d.logger.Debug("clearing work dir left by a volatile mount", "layer", id, "dir", work)
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("layer %s: clear volatile work dir: %w", id, err)
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	return nil
}

// Unmount drops one user of layer id's mount and unmounts it when none is
// left. A mount this process did not count (another process made it) is
// unmounted at once. Unmounting a layer that is not mounted does nothing.
func (d *Driver) Unmount(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	if d.counts[id] > 1 {
		d.counts[id]--
		return nil
	}
	if _, err := os.Lstat(d.layerDir(id)); err != nil && d.counts[id] == 0 {
		return fmt.Errorf("layer %s: %w", id, layerErr(err))
	}
	if err := d.unmountLocked(id); err != nil {
		return err
	}
	delete(d.counts, id)
	return nil
}

// unmountLocked unmounts home/<id>/merged if it is a mount point, lazily
// when it is busy. The caller holds d.mu.
func (d *Driver) unmountLocked(id string) error {
	target := d.mergedDir(id)
	mounted, err := isMounted(target)
	if err != nil || !mounted {
		return err
	}
	err = unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		d.logger.Debug("mount busy, detaching it", "layer", id, "path", target)
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("layer %s: unmount %s: %w", id, target, err)
	}
	d.logger.Debug("unmounted layer", "layer", id, "path", target)
	return nil
}

// Mounted reports whether layer id's mount point is a mount point now.
func (d *Driver) Mounted(id string) (bool, error) {
	if err := checkID(id); err != nil {
		return false, err
	}
	if _, err := os.Lstat(d.layerDir(id)); err != nil {
		return false, fmt.Errorf("layer %s: %w", id, layerErr(err))
	}
	mounted, err := isMounted(d.mergedDir(id))
	if err != nil {
		return false, fmt.Errorf("layer %s: %w", id, err)
	}
	return mounted, nil
}

// CheckMountMode fails with the error Mount gives, wrapping
// driver.ErrLayerMounted, when layer id is mounted with the other
// read-only-ness than readOnly asks for. A layer that is not mounted, or
// is mounted that way, passes. The layer store asks it before it counts
// one more user of a mount without calling Mount.
func (d *Driver) CheckMountMode(id string, readOnly bool) error {
	if err := checkID(id); err != nil {
		return err
	}
	target := d.mergedDir(id)
	mounted, err := isMounted(target)
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	if !mounted {
		return nil
	}
	return sameReadOnlyness(id, target, readOnly)
}

// sameReadOnlyness checks that the overlay mounted at target is read-only
// (no upper dir) when readOnly is asked for, and read-write otherwise.
func sameReadOnlyness(id, target string, readOnly bool) error {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(target))
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	if len(infos) == 0 {
		return nil
	}
	// The newest mount on target is the visible one.
	hasUpper := slices.ContainsFunc(strings.Split(infos[len(infos)-1].VFSOptions, ","),
		func(o string) bool { return strings.HasPrefix(o, "upperdir=") })
	switch {
	case readOnly && hasUpper:
		return fmt.Errorf("layer %s is already mounted read-write at %s, a read-only mount was asked for: %w",
			id, target, driver.ErrLayerMounted)
	case !readOnly && !hasUpper:
		return fmt.Errorf("layer %s is already mounted read-only at %s, a read-write mount was asked for: %w",
			id, target, driver.ErrLayerMounted)
	}
	return nil
}

// isMounted asks the mount table about path; a missing path is not
// mounted.
func isMounted(path string) (bool, error) {
	mounted, err := mountinfo.Mounted(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return mounted, err
}

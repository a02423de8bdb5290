package overlay

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// viewPrefix starts the names of the private mount points ReadOnlyView
// makes in the home; no layer id starts with '.'.
const viewPrefix = ".view-"

// ReadOnlyView mounts layer id with its parents read-only at a private,
// fresh directory and returns it with a function that unmounts and removes
// it. It is meant for reading a layer's merged files, e.g. the data of a
// metadata-only copy-up (metacopy) or the contents of a redirected
// directory, which its diff dir alone does not hold.
//
// The view is apart from home/<id>/merged: it neither sees nor changes the
// mount counts of Mount, and a read-write mount of the layer may exist at
// the same time. metacopy=on is passed when the kernel has it, so that
// metacopy files in the stack are followed to their data. The mount point
// is made in the home, or in the system's temp dir when the home is
// read-only.
func (d *Driver) ReadOnlyView(id string) (string, func() error, error) {
	if err := checkID(id); err != nil {
		return "", nil, err
	}
	if _, err := os.Lstat(d.diffDir(id)); err != nil {
		return "", nil, fmt.Errorf("layer %s: %w", id, layerErr(err))
	}
	spec, err := d.mountSpec(id, driver.MountOpts{ReadOnly: true})
	if err != nil {
		return "", nil, err
	}
	if d.feat.metacopy && !slices.ContainsFunc(spec.options, func(o string) bool {
		return strings.HasPrefix(o, "metacopy=")
	}) {
		spec.options = append(spec.options, "metacopy=on")
	}
	spec.label = ""

	dir, err := os.MkdirTemp(d.home, viewPrefix)
	if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) {
		dir, err = os.MkdirTemp("", "strata"+viewPrefix)
	}
	if err != nil {
		return "", nil, fmt.Errorf("layer %s: view mount point: %w", id, err)
	}
	spec.target = dir

	mountFn := mountClassic
	if d.feat.newAPI {
		mountFn = mountNewAPI
	}
	if err := inHome(d.home, func() error { return mountFn(spec) }); err != nil {
		_ = os.Remove(dir)
		return "", nil, fmt.Errorf("layer %s: read-only view: %w", id, err)
	}
	d.logger.Debug("mounted read-only view of layer", "layer", id, "path", dir)

	released := false
	release := func() error {
		if released {
			return nil
		}
		released = true
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("layer %s: unmount view %s: %w", id, dir, err)
		}
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("layer %s: remove view mount point: %w", id, err)
		}
		return nil
	}
	return dir, release, nil
}

// Package overlay is strata's graph driver: layer directories stacked with
// overlayfs, laid out on disk as containers/storage lays out its overlay
// driver (DESIGN.md, "Driver home").
package overlay

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// Options configure a Driver. The zero value works.
type Options struct {
	// MountOptions are added to every mount, e.g. "nodev". Each element is
	// one option; an element may also hold several joined by ',' (a value
	// in double quotes may contain ',').
	MountOptions []string
	// Logger receives debug detail and warnings; nil discards them.
	Logger *slog.Logger
	// AdditionalLayerStores are "PATH" or "PATH:ref" entries (see
	// DESIGN.md, "Additional Layer Store").
	AdditionalLayerStores []string
	// ReadOnly opens the home without writing to it: layers can be
	// listed, looked up and mounted read-only where their mount point
	// exists, while Create, Remove, ApplyDiff and read-write mounts fail
	// with driver.ErrReadOnlyStore. A home on a read-only mount is opened
	// this way whatever ReadOnly says.
	ReadOnly bool

	// classicMount makes the driver use mount(2) even when the new mount
	// API is available, so tests cover the fallback.
	classicMount bool
}

// Driver is the overlay graph driver. It is safe for concurrent use; the
// layer store serialises processes with its own lock files.
type Driver struct {
	home   string
	opts   Options
	logger *slog.Logger
	feat   features
	// readOnly: the home is not written (Options.ReadOnly or a read-only
	// filesystem).
	readOnly bool
	// recovered describes the repairs New made (see Recovered); written
	// only by New.
	recovered []string

	// mu guards counts and serialises mount and unmount calls.
	mu     sync.Mutex
	counts map[string]int

	// resolveAdditional maps an Additional Layer Store layer to the
	// directory that holds its files; nil until the ALS code sets it.
	resolveAdditional func(id, alsDir string) (string, error)
	// releaseAdditional is told when an ALS layer is removed; may be nil.
	releaseAdditional func(id, alsDir string)
}

// initHooks run at the end of New; other files of the package (the
// Additional Layer Store support) register here to set up their part.
var initHooks []func(*Driver) error

var _ driver.Driver = (*Driver)(nil)

// New opens (creating if needed) the driver home, normally GRAPHROOT/overlay.
// It probes the kernel once for the mount method and metacopy support and
// recreates short links missing from home/l.
func New(home string, opts Options) (*Driver, error) {
	if home == "" {
		return nil, fmt.Errorf("overlay home is empty: %w", driver.ErrInvalidArgument)
	}
	// Mounts run with the home as working directory, so every path the
	// driver builds must be absolute.
	home, err := filepath.Abs(home)
	if err != nil {
		return nil, fmt.Errorf("overlay home: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{home: home, opts: opts, logger: logger, counts: map[string]int{}}

	d.readOnly = opts.ReadOnly || onReadOnlyMount(home)
	if d.readOnly {
		if _, err := os.Stat(home); err != nil {
			return nil, fmt.Errorf("overlay home (read-only): %w", err)
		}
	} else {
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, fmt.Errorf("overlay home: %w", err)
		}
		if err := os.Mkdir(d.linkDir(), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("overlay short link dir: %w", err)
		}
	}

	feat, err := probe(home, opts.classicMount, d.readOnly)
	if err != nil {
		return nil, err
	}
	if !feat.dType {
		return nil, fmt.Errorf("overlay home %s: the backing filesystem (%s) does not report d_type, which overlayfs needs (xfs must be made with ftype=1): %w",
			home, feat.backingFS, driver.ErrNotSupported)
	}
	d.feat = feat
	logger.Debug("overlay driver opened", "home", home, "mountAPI", feat.mountAPIName(),
		"metacopy", feat.metacopy, "backingFS", feat.backingFS)

	if d.readOnly {
		d.logger.Debug("overlay home is read-only; short links are not rebuilt", "home", home)
	} else if err := d.rebuildShortLinks(); err != nil {
		return nil, err
	}
	for _, hook := range initHooks {
		if err := hook(d); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// onReadOnlyMount reports whether path, or its nearest existing ancestor,
// is on a read-only mount.
func onReadOnlyMount(path string) bool {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		if err == nil {
			return st.Flags&unix.ST_RDONLY != 0
		}
		parent := filepath.Dir(path)
		if !errors.Is(err, unix.ENOENT) || parent == path {
			return false
		}
		path = parent
	}
}

// checkWritable fails with driver.ErrReadOnlyStore when the driver does
// not write to its home; what names the change that was asked for.
func (d *Driver) checkWritable(id, what string) error {
	if d.readOnly {
		return fmt.Errorf("layer %s: %s: overlay home %s is read-only: %w",
			id, what, d.home, driver.ErrReadOnlyStore)
	}
	return nil
}

// Name returns "overlay".
func (d *Driver) Name() string { return "overlay" }

// Home returns the driver's home directory.
func (d *Driver) Home() string { return d.home }

// Status reports the backing filesystem, the mount method and the
// features found when the driver was opened.
func (d *Driver) Status() []driver.StatusPair {
	return []driver.StatusPair{
		{Key: "Backing Filesystem", Value: d.feat.backingFS},
		{Key: "Mount API", Value: d.feat.mountAPIName()},
		{Key: "Supports d_type", Value: strconv.FormatBool(d.feat.dType)},
		{Key: "Read-only", Value: strconv.FormatBool(d.readOnly)},
		// metacopy is used only by mounts that ask for it (copyUpOptions).
		{Key: "Using metacopy", Value: "false"},
		{Key: "Supports metacopy", Value: strconv.FormatBool(d.feat.metacopy)},
	}
}

// Cleanup unmounts every layer this driver mounted, whatever its count.
func (d *Driver) Cleanup() error {
	d.mu.Lock()
	defer d.mu.Unlock()

	ids := make([]string, 0, len(d.counts))
	for id := range d.counts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		if err := d.unmountLocked(id); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(d.counts, id)
	}
	return errors.Join(errs...)
}

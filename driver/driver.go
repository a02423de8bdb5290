// Package driver defines the contract every strata graph driver meets: the
// Driver interface, its option structs and the sentinel errors that callers
// match with errors.Is.
package driver

import (
	"io"
	"log/slog"

	digest "github.com/opencontainers/go-digest"
)

// Driver stores layer directories and mounts stacks of them.
//
// A Driver is safe for use by several goroutines. It keeps no cross-process
// state of its own beyond its directories: the layer store serialises
// processes with its lock files and keeps persistent mount counts.
type Driver interface {
	// Name is the driver's name, which is also the name of its home
	// directory below the graph root ("overlay").
	Name() string

	// Create makes the directories of read-only layer id on top of parent
	// ("" for a layer without parent).
	Create(id, parent string, opts *CreateOpts) error

	// CreateReadWrite makes the directories of a layer that is meant to be
	// mounted read-write, such as a container's layer.
	CreateReadWrite(id, parent string, opts *CreateOpts) error

	// Remove deletes the layer's directories; it unmounts the layer first
	// when it is still mounted. Removing a layer that does not exist is not
	// an error.
	Remove(id string) error

	// Mount mounts the layer with all its parents and returns the mount
	// point. Mounting a layer this process already mounted returns the same
	// path and counts one more user.
	Mount(id string, opts MountOpts) (string, error)

	// Unmount drops one user of the layer's mount and unmounts it when
	// none is left. A mount made by another process is unmounted at once.
	Unmount(id string) error

	// Mounted reports whether the layer's mount point is mounted now.
	Mounted(id string) (bool, error)

	// Exists reports whether the layer's directories exist.
	Exists(id string) bool

	// ApplyDiff applies an uncompressed layer tar to the layer's own
	// directory, converting whiteouts to the driver's form.
	ApplyDiff(id string, opts ApplyDiffOpts) (ApplyResult, error)

	// DiffPath returns the directory that holds the layer's own files.
	DiffPath(id string) (string, error)

	// Status reports facts about the driver (backing filesystem, mount
	// method, metacopy, ...) for display.
	Status() []StatusPair

	// Cleanup unmounts what this driver mounted and releases its resources.
	Cleanup() error
}

// StagingDriver is met by drivers that can apply a layer tar before the
// layer exists: into a staging area, with no lock of the layer store held,
// so that several layers apply at once; the store later commits the staged
// files as a layer under its lock. Each layer is applied on its own (a
// symlink only in a lower layer is not followed), so staging needs no
// parent.
type StagingDriver interface {
	Driver

	// Stage makes an empty staging area. It stays, locked against the
	// cleanup of other processes, until Commit or Discard.
	Stage() (Staged, error)
}

// Staged is one staging area of a StagingDriver. It is used by one
// goroutine at a time.
type Staged interface {
	// ScratchDir is a directory of the staging area where the caller may
	// keep files of its own while it applies; they go with the area.
	ScratchDir() string

	// ApplyDiff applies an uncompressed layer tar to the staged files,
	// as Driver.ApplyDiff does for a layer. It is called once.
	ApplyDiff(opts ApplyDiffOpts) (ApplyResult, error)

	// Commit makes the staged files layer id on top of parent, as Create
	// followed by ApplyDiff would have: a layer root the tar gave no entry
	// takes the parent's root mode and owner. The staging area is gone
	// afterwards; on failure no layer directory is left.
	Commit(id, parent string, opts *CreateOpts) error

	// Discard removes what is left of the staging area. It may be called
	// more than once, and after Commit.
	Discard() error
}

// AdditionalLayerStoreDriver is met by drivers that can take layers from an
// Additional Layer Store (see DESIGN.md, "Additional Layer Store").
type AdditionalLayerStoreDriver interface {
	Driver

	// LookupAdditionalLayer finds the layer with TOC digest tocDigest for
	// image reference ref in the configured stores. It returns an error
	// matching ErrLayerUnknown when no store offers it.
	LookupAdditionalLayer(tocDigest digest.Digest, ref string) (AdditionalLayer, error)

	// LookupAdditionalLayerByID finds the store layer that layer id was
	// created from.
	LookupAdditionalLayerByID(id string) (AdditionalLayer, error)
}

// AdditionalLayer is a layer offered by an Additional Layer Store.
type AdditionalLayer interface {
	// Info returns the store's layer record (JSON).
	Info() (io.ReadCloser, error)

	// Blob returns the layer's compressed bytes.
	Blob() (io.ReadCloser, error)

	// CreateAs makes layer id (on top of parent) whose files are this
	// store layer's.
	CreateAs(id, parent string) error

	// Release tells the store this handle is no longer used. Calling it
	// more than once has no further effect.
	Release()
}

// CreateOpts are the options of Create and CreateReadWrite.
type CreateOpts struct {
	// MountLabel is the SELinux label used when the layer is mounted.
	MountLabel string
	// StorageOpt holds driver-specific options; drivers reject keys they
	// do not know with ErrNotSupported.
	StorageOpt map[string]string
}

// MountOpts are the options of Mount.
type MountOpts struct {
	// ReadOnly mounts the stack without an upper directory, so the layer's
	// own files are a lower layer too.
	ReadOnly bool
	// MountLabel is the SELinux label for the mount ("" for none).
	MountLabel string
	// Options are extra mount options such as "nodev" or "volatile".
	Options []string
}

// ApplyDiffOpts are the options of ApplyDiff.
type ApplyDiffOpts struct {
	// Diff is the uncompressed layer tar.
	Diff io.Reader
	// Logger receives debug detail; nil discards it.
	Logger *slog.Logger
}

// ApplyResult tells what ApplyDiff wrote.
type ApplyResult struct {
	// UIDs and GIDs are the distinct owners of the entries, sorted.
	UIDs []uint32
	GIDs []uint32
}

// StatusPair is one fact reported by Status.
type StatusPair struct {
	Key   string
	Value string
}

// Package archive applies OCI layer tars to directories in overlayfs form.
package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/stratafs/strata/driver"
)

// Options tunes Apply. The zero value works.
type Options struct {
	// Logger receives debug detail (skipped xattrs, aufs metadata). Nil
	// discards it.
	Logger *slog.Logger
}

// Result describes what Apply wrote.
type Result struct {
	// UIDs and GIDs are the distinct owners of the paths Apply created,
	// sorted.
	UIDs, GIDs []uint32
	// RootSet tells that the tar had an entry for the layer root ("./"),
	// which set the root's mode and owner; without one the root keeps what
	// the caller gave it.
	RootSet bool
}

// EntryError is an error while applying one tar entry. Err wraps
// driver.ErrInvalidLayerData when the entry itself is malformed or unsafe.
type EntryError struct {
	Name string // the entry's name as the tar gives it
	// BeforeFirst tells that the stream failed before any entry was read
	// (Name is then ""): junk or a cut where the first header should be.
	BeforeFirst bool
	Err         error
}

func (e *EntryError) Error() string {
	if e.BeforeFirst {
		return fmt.Sprintf("before the first entry: %v", e.Err)
	}
	return fmt.Sprintf("entry %q: %v", e.Name, e.Err)
}

// Unwrap returns the underlying error.
func (e *EntryError) Unwrap() error { return e.Err }

// maxID is the largest owner id kept; 2^32-1 means "no change" to chown.
const maxID = 1<<32 - 2

// Apply applies the uncompressed layer tar read from r to the existing
// directory root, following the apply rules of DESIGN.md: whiteouts become
// overlayfs whiteouts (char device 0:0, trusted.overlay.opaque=y), every
// path is resolved by the kernel inside root (openat2 RESOLVE_IN_ROOT) and
// metadata is never set through a symlink. Apply stops at the tar's
// end-of-archive marker (or at a clean EOF between entries) and reads
// nothing after it; the caller drains the stream.
//
// On error the directory holds whatever was applied so far; the caller
// removes it.
func Apply(root string, r io.Reader, opts Options) (Result, error) {
	a, err := newApplier(root, opts)
	if err != nil {
		return Result{}, err
	}
	defer a.close()

	a.stream = &streamReader{r: r}
	tr := newTarReader(a.stream)
	last, read := "", false
	for {
		a.stream.startRecording()
		hdr, err := tr.Next()
		a.stream.stopRecording()
		if err == io.EOF {
			break
		}
		// tar.ErrInsecurePath comes with a usable header; names are made
		// safe below.
		if err != nil && (hdr == nil || !errors.Is(err, tar.ErrInsecurePath)) {
			return Result{}, headerError(a.stream.recordedBlocks(), last, read, err)
		}
		last, read = hdr.Name, true
		if err := a.entry(tr, hdr); err != nil {
			return Result{}, &EntryError{Name: hdr.Name, Err: err}
		}
	}
	if err := a.finish(); err != nil {
		return Result{}, err
	}
	return a.result(), nil
}

// invalid wraps driver.ErrInvalidLayerData with a description.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %w", driver.ErrInvalidLayerData, fmt.Errorf(format, args...))
}

// cleanName resolves "." and ".." in an entry name as if the layer root
// were "/": the result is relative, without leading or trailing slash, and
// "" names the root itself.
func cleanName(name string) string {
	// Most names are clean already, maybe with a "./" prefix or a trailing
	// slash: those are cut without building a new string.
	n := strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	if isCleanRel(n) {
		return n
	}
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

// isCleanRel tells whether name is non-empty, relative and unchanged by
// path.Clean: no empty, "." or ".." component.
func isCleanRel(name string) bool {
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		switch name[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

// splitName splits a clean name into its parent ("" for the root) and base.
func splitName(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

func (a *applier) entry(tr *tarReader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	if strings.ContainsRune(hdr.Name, 0) || strings.ContainsRune(hdr.Linkname, 0) {
		return invalid("NUL byte in name")
	}
	name := cleanName(hdr.Name)
	dir, base := splitName(name)
	a.trimCache()
	if strings.HasPrefix(dir, whiteoutPrefix) || strings.Contains(dir, "/"+whiteoutPrefix) {
		return invalid("whiteout name used as a directory")
	}

	// Whiteouts are recognised by name whatever their type.
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(name, dir, base)
	}

	if hdr.Uid < 0 || hdr.Uid > maxID || hdr.Gid < 0 || hdr.Gid > maxID {
		return invalid("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return invalid("layer root %q is not a directory", hdr.Name)
		}
		return a.rootDir(hdr)
	}

	skip, err := a.checkParents(dir, false)
	if err != nil || skip {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		return a.dir(hdr, name, dir, base)
	}
	switch a.paths[name] {
	case 0:
	case kindWhiteout:
		// A whiteout of this layer is replaced: the new entry hides the
		// lower path just as well.
		if err := a.removeWhiteout(name); err != nil {
			return err
		}
	default:
		return invalid("repeated path %q", name)
	}

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return a.file(tr, hdr, name, dir, base)
	case tar.TypeSymlink:
		return a.symlink(hdr, name, dir, base)
	case tar.TypeLink:
		return a.hardlink(hdr, name, dir, base)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return a.node(hdr, name, dir, base)
	default:
		return invalid("unsupported entry type %q", string([]byte{hdr.Typeflag}))
	}
}

// checkParents looks at the parents of an entry among this layer's
// entries: beneath a non-directory is an error; beneath a whiteout of this
// layer a whiteout entry is a no-op (skip) and any other entry turns the
// whiteout into an opaque directory. Past a symlink of this layer the
// names no longer tell where things are, and the kernel decides.
func (a *applier) checkParents(dir string, isWhiteout bool) (skip bool, err error) {
	if dir == "" {
		return false, nil
	}
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		prefix := dir[:i]
		switch a.paths[prefix] {
		case kindNonDir:
			return false, invalid("%q is not a directory in this layer", prefix)
		case kindSymlink:
			return false, nil
		case kindWhiteout:
			if isWhiteout {
				return true, nil
			}
			if err := a.removeWhiteout(prefix); err != nil {
				return false, err
			}
			if err := a.implicitDir(prefix); err != nil {
				return false, err
			}
			if err := a.makeOpaque(prefix); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

func (a *applier) result() Result {
	collect := func(set map[uint32]struct{}) []uint32 {
		ids := make([]uint32, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids
	}
	return Result{UIDs: collect(a.uids), GIDs: collect(a.gids), RootSet: a.rootSet}
}

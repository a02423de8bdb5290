package archive

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ChangeKind says what happened to a path in a layer.
type ChangeKind int

// The kinds of change; the numbers are the ones containers/storage uses.
const (
	ChangeModify ChangeKind = 0
	ChangeAdd    ChangeKind = 1
	ChangeDelete ChangeKind = 2
)

// String returns the one-letter form used by `strata changes`: C, A or D.
func (k ChangeKind) String() string {
	switch k {
	case ChangeModify:
		return "C"
	case ChangeAdd:
		return "A"
	case ChangeDelete:
		return "D"
	}
	return "?"
}

// Change is one path a layer adds, modifies or deletes.
type Change struct {
	// Path is absolute within the layer's view, e.g. "/etc/passwd".
	Path string
	Kind ChangeKind
}

// Changes lists what overlay diff directory diffDir changes on top of the
// lower diff directories lowers (nearest parent first), sorted by path.
//
// A path present in the diff dir is modified when the lowers show it and
// added otherwise; a whiteout deletes the path; an opaque directory deletes
// every lower child it does not hold itself. A directory that only exists
// in the diff dir because something below it changed is still reported as
// modified, as overlay copies it up with its metadata.
func Changes(diffDir string, lowers []string) ([]Change, error) {
	return ChangesWith(diffDir, lowers, ChangesOptions{})
}

// ChangesOptions are the options of ChangesWith. The zero value works.
type ChangesOptions struct {
	// MergedView returns the root of a read-only mount of the layer with
	// its parents. ChangesWith calls it at most once, and only for a
	// redirect dir in the diff dir (a directory renamed through a mount
	// with redirect_dir): everything the view shows below it is added.
	// When it is nil, such a dir is an error wrapping
	// driver.ErrNotSupported that names the path.
	MergedView func() (string, error)
}

// ChangesWith is Changes for a diff dir that may hold redirect dirs
// (see ChangesOptions). A metacopy file needs nothing more: it is there,
// and reported modified as any copied-up file.
func ChangesWith(diffDir string, lowers []string, opts ChangesOptions) ([]Change, error) {
	view := lowerView(lowers)
	merged := &mergedView{open: opts.MergedView}
	var changes []Change

	err := filepath.WalkDir(diffDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(diffDir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)

		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if isOverlayWhiteout(&st) {
			if view.exists(rel) {
				changes = append(changes, Change{Path: "/" + rel, Kind: ChangeDelete})
			}
			return nil
		}

		kind := ChangeAdd
		if view.exists(rel) {
			kind = ChangeModify
		}
		changes = append(changes, Change{Path: "/" + rel, Kind: kind})

		if d.IsDir() && isRedirectDir(p) {
			added, err := mergedSubtree(merged, rel)
			if err != nil {
				return err
			}
			changes = append(changes, added...)
			return fs.SkipDir
		}
		if d.IsDir() && kind == ChangeModify {
			opaque, err := getXattr(p, overlayOpaqueXattr)
			if err == nil && opaque == "y" {
				hidden, err := view.children(rel)
				if err != nil {
					return err
				}
				for _, name := range hidden {
					if _, err := os.Lstat(filepath.Join(p, name)); errors.Is(err, fs.ErrNotExist) {
						changes = append(changes, Change{Path: "/" + path.Join(rel, name), Kind: ChangeDelete})
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, nil
}

// isRedirectDir reports whether dir carries overlay's redirect mark.
func isRedirectDir(dir string) bool {
	for _, name := range overlayRedirectXattrs {
		if _, err := getXattr(dir, name); err == nil {
			return true
		}
	}
	return false
}

// mergedSubtree lists every path below rel in the merged view as added:
// rel is a redirect dir, so nothing below it is where the lowers have it.
func mergedSubtree(merged *mergedView, rel string) ([]Change, error) {
	root, err := merged.get("redirect dir", rel)
	if err != nil {
		return nil, err
	}
	top := filepath.Join(root, rel)
	var added []Change
	err = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == top {
			return nil
		}
		sub, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		added = append(added, Change{Path: "/" + filepath.ToSlash(sub), Kind: ChangeAdd})
		return nil
	})
	return added, err
}

// DirSize returns the bytes used by the regular files in dir, counting each
// inode once however many hardlinks it has.
func DirSize(dir string) (int64, error) {
	seen := map[fileKey]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if st.Nlink > 1 {
			key := fileKey{dev: uint64(st.Dev), ino: st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		total += st.Size
		return nil
	})
	return total, err
}

// lowerView answers questions about the merged view of a stack of overlay
// diff dirs (nearest first) without mounting it.
type lowerView []string

// lookup states of a path in one lower layer.
const (
	pathAbsent  = iota // the layer says nothing; look further down
	pathPresent        // the layer holds the path
	pathHidden         // the layer hides the path (whiteout, opaque or non-dir ancestor)
)

// exists reports whether path rel is visible in the merged view.
func (v lowerView) exists(rel string) bool {
	for _, layer := range v {
		switch state, _ := lookupInLayer(layer, rel); state {
		case pathPresent:
			return true
		case pathHidden:
			return false
		}
	}
	return false
}

// lookupInLayer tells what one diff dir says about path rel. sealed reports
// that a directory on the way (rel itself included) is opaque, so layers
// further down cannot add anything below it.
func lookupInLayer(layer, rel string) (state int, sealed bool) {
	parts := strings.Split(rel, "/")
	cur := layer
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		var st unix.Stat_t
		if err := unix.Lstat(cur, &st); err != nil {
			if sealed {
				return pathHidden, true
			}
			return pathAbsent, false
		}
		if isOverlayWhiteout(&st) {
			return pathHidden, sealed
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if isDir && isOpaqueDir(cur) {
			sealed = true
		}
		if i == len(parts)-1 {
			return pathPresent, sealed
		}
		if !isDir {
			return pathHidden, sealed
		}
	}
	return pathAbsent, sealed
}

// isOpaqueDir reports whether dir carries overlay's opaque mark.
func isOpaqueDir(dir string) bool {
	v, err := getXattr(dir, overlayOpaqueXattr)
	return err == nil && v == "y"
}

// children lists the names directory rel holds in the merged view.
func (v lowerView) children(rel string) ([]string, error) {
	seen := map[string]bool{} // name -> visible (false: whited out above)
	for _, layer := range v {
		state, sealed := lookupInLayer(layer, rel)
		if state == pathHidden {
			break
		}
		if state == pathAbsent {
			continue
		}
		dir := filepath.Join(layer, rel)
		names, err := readDirNames(dir)
		if errors.Is(err, unix.ENOTDIR) {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if _, ok := seen[name]; ok {
				continue
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
				return nil, &os.PathError{Op: "lstat", Path: filepath.Join(dir, name), Err: err}
			}
			seen[name] = !isOverlayWhiteout(&st)
		}
		if sealed {
			break
		}
	}

	var visible []string
	for name, ok := range seen {
		if ok {
			visible = append(visible, name)
		}
	}
	sort.Strings(visible)
	return visible, nil
}

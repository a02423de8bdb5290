package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// Names of the OCI whiteout markers in a layer tar.
const (
	tarWhiteoutPrefix = ".wh."
	tarOpaqueMarker   = ".wh..wh..opq"
)

// overlayOpaqueXattr marks an opaque directory in an overlay diff dir.
const overlayOpaqueXattr = "trusted.overlay.opaque"

// Marks overlayfs leaves in a diff dir when a mount uses metacopy or
// redirect_dir (trusted.* for a normal mount, user.* with userxattr): a
// metacopy file holds metadata only, its data stays in a lower layer; a
// redirect dir takes its lower contents from another path.
var (
	overlayMetacopyXattrs = []string{"trusted.overlay.metacopy", "user.overlay.metacopy"}
	overlayRedirectXattrs = []string{"trusted.overlay.redirect", "user.overlay.redirect"}
)

// hasAnyXattr reports whether xattrs holds one of names.
func hasAnyXattr(xattrs map[string]string, names []string) bool {
	for _, n := range names {
		if _, ok := xattrs[n]; ok {
			return true
		}
	}
	return false
}

// paxXattrPrefix is the PAX record prefix that carries an extended attribute.
const paxXattrPrefix = "SCHILY.xattr."

// ExportOptions are the options of Export. The zero value works.
type ExportOptions struct {
	// Logger receives debug detail (skipped sockets); nil discards it.
	Logger *slog.Logger
	// MergedView returns the root of a read-only mount of the layer with
	// its parents. Export calls it at most once, and only when the diff
	// dir holds a metacopy file (its data is taken from the view) or a
	// redirect dir (its whole merged subtree is taken from the view).
	// When it is nil, such a diff dir makes Export fail with an error
	// wrapping driver.ErrNotSupported that names the path.
	MergedView func() (string, error)
}

// Export writes the files of overlay diff directory dir to w as an
// uncompressed OCI layer tar.
//
// Entries come in a stable order: a directory before its children, the
// children of a directory sorted by their name in the tar. Overlay whiteouts
// (character devices 0:0) become `.wh.<name>` entries; a directory carrying
// trusted.overlay.opaque=y is followed by a `.wh..wh..opq` entry. Files
// sharing an inode are written once and then as hardlinks to the first path.
// Extended attributes travel as PAX SCHILY.xattr records, except overlay's
// own (trusted.overlay.*, user.overlay.*). Owners are numeric only, and
// times are whole seconds. The root directory itself gets no entry.
//
// Sparse files are written with their holes filled (Go's tar writer cannot
// write sparse entries), and sockets are skipped since tar cannot hold them.
func Export(dir string, w io.Writer, opts ExportOptions) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &exporter{
		root:   dir,
		tw:     tar.NewWriter(w),
		links:  map[fileKey]string{},
		logger: logger,
		views:  &mergedView{open: opts.MergedView},
	}
	if err := e.exportDir(""); err != nil {
		return err
	}
	return e.tw.Close()
}

// fileKey identifies an inode within the diff dir.
type fileKey struct {
	dev, ino uint64
}

// exporter holds the state of one Export call.
type exporter struct {
	root   string
	tw     *tar.Writer
	links  map[fileKey]string // inode -> tar name of its first entry
	logger *slog.Logger
	views  *mergedView
	// inView: root is the merged view, whose files are complete (overlay
	// hides its own xattrs there), so no metacopy or redirect handling.
	inView bool
}

// mergedView opens the layer's merged view once, on first need.
type mergedView struct {
	open func() (string, error)
	root string
	err  error
}

// get returns the view's root; what names the diff dir path that needs it.
func (v *mergedView) get(what, rel string) (string, error) {
	if v.root != "" || v.err != nil {
		return v.root, v.err
	}
	if v.open == nil {
		v.err = fmt.Errorf("%s %q: the diff dir alone does not hold its contents and no merged view was given: %w",
			what, rel, driver.ErrNotSupported)
		return "", v.err
	}
	root, err := v.open()
	if err != nil {
		v.err = fmt.Errorf("%s %q: merged view: %w", what, rel, err)
		return "", v.err
	}
	v.root = root
	return root, nil
}

// dirEntry is one child of a directory as it will appear in the tar.
type dirEntry struct {
	name       string // base name in the tar (".wh.x" for a whiteout of x)
	rel        string // path of the file below the root
	st         unix.Stat_t
	isWhiteout bool
}

// exportDir writes the children of directory rel (relative to the root),
// recursing into subdirectories.
func (e *exporter) exportDir(rel string) error {
	names, err := readDirNames(filepath.Join(e.root, rel))
	if err != nil {
		return err
	}

	entries := make([]dirEntry, 0, len(names))
	for _, name := range names {
		childRel := path.Join(rel, name)
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(e.root, childRel), &st); err != nil {
			return &os.PathError{Op: "lstat", Path: filepath.Join(e.root, childRel), Err: err}
		}
		entry := dirEntry{name: name, rel: childRel, st: st}
		if isOverlayWhiteout(&st) {
			entry.name = tarWhiteoutPrefix + name
			entry.isWhiteout = true
		}
		entries = append(entries, entry)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	for _, entry := range entries {
		if err := e.exportEntry(rel, entry); err != nil {
			return err
		}
	}
	return nil
}

// exportEntry writes one child of directory parentRel and, for a
// directory, everything below it.
func (e *exporter) exportEntry(parentRel string, entry dirEntry) error {
	full := filepath.Join(e.root, entry.rel)
	hdr := headerFromStat(path.Join(parentRel, entry.name), &entry.st)

	if entry.isWhiteout {
		hdr.Typeflag = tar.TypeReg
		hdr.Mode = 0
		hdr.Devmajor, hdr.Devminor = 0, 0
		return e.writeHeader(hdr, entry.rel)
	}

	xattrs, err := readXattrs(full)
	if err != nil {
		return err
	}
	opaque := false
	if v, ok := xattrs[overlayOpaqueXattr]; ok {
		opaque = v == "y"
	}
	for name, value := range xattrs {
		if isOverlayXattr(name) {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattrPrefix+name] = value
	}

	redirect := !e.inView && hasAnyXattr(xattrs, overlayRedirectXattrs)
	switch entry.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := e.writeHeader(hdr, entry.rel); err != nil {
			return err
		}
		if redirect {
			return e.exportRedirectDir(hdr, entry.rel)
		}
		if opaque {
			marker := &tar.Header{
				Typeflag: tar.TypeReg,
				Name:     path.Join(entry.rel, tarOpaqueMarker),
				Uid:      hdr.Uid,
				Gid:      hdr.Gid,
				ModTime:  hdr.ModTime,
			}
			if err := e.writeHeader(marker, entry.rel); err != nil {
				return err
			}
		}
		return e.exportDir(entry.rel)
	case unix.S_IFSOCK:
		e.logger.Debug("export: skipping socket, tar cannot hold it", "path", entry.rel)
		return nil
	}

	if entry.st.Nlink > 1 {
		key := fileKey{dev: uint64(entry.st.Dev), ino: entry.st.Ino}
		if first, ok := e.links[key]; ok {
			link := &tar.Header{
				Typeflag:   tar.TypeLink,
				Name:       hdr.Name,
				Linkname:   first,
				Mode:       hdr.Mode,
				Uid:        hdr.Uid,
				Gid:        hdr.Gid,
				ModTime:    hdr.ModTime,
				PAXRecords: hdr.PAXRecords,
			}
			return e.writeHeader(link, entry.rel)
		}
		e.links[key] = hdr.Name
	}

	switch entry.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = entry.st.Size
		if !e.inView && hasAnyXattr(xattrs, overlayMetacopyXattrs) {
			// A metadata-only copy-up: the metadata is here, the data in
			// the file the merged view shows at the same path.
			return e.exportMetacopy(hdr, entry.rel)
		}
		if err := e.writeHeader(hdr, entry.rel); err != nil {
			return err
		}
		return e.copyFile(full, hdr.Size)
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR:
		hdr.Typeflag = tar.TypeChar
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("export %s: unknown file type %#o", full, entry.st.Mode&unix.S_IFMT)
	}
	return e.writeHeader(hdr, entry.rel)
}

// exportMetacopy writes metacopy file rel with the metadata in hdr (taken
// from the diff dir) and the data of the merged view's file.
func (e *exporter) exportMetacopy(hdr *tar.Header, rel string) error {
	root, err := e.views.get("metacopy file", rel)
	if err != nil {
		return err
	}
	full := filepath.Join(root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return fmt.Errorf("metacopy file %q: %w", rel, &os.PathError{Op: "lstat", Path: full, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("metacopy file %q is not a regular file in the merged view: %w",
			rel, driver.ErrNotSupported)
	}
	hdr.Size = st.Size
	if err := e.writeHeader(hdr, rel); err != nil {
		return err
	}
	return e.copyFile(full, hdr.Size)
}

// exportRedirectDir writes, after the header of redirect dir rel, an
// opaque marker and the whole subtree the merged view shows there: the
// directory's lower contents come from another path, which a tar cannot
// express, so the entry replaces whatever the lowers hold at rel.
func (e *exporter) exportRedirectDir(hdr *tar.Header, rel string) error {
	root, err := e.views.get("redirect dir", rel)
	if err != nil {
		return err
	}
	marker := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     path.Join(rel, tarOpaqueMarker),
		Uid:      hdr.Uid,
		Gid:      hdr.Gid,
		ModTime:  hdr.ModTime,
	}
	if err := e.writeHeader(marker, rel); err != nil {
		return err
	}
	sub := &exporter{root: root, tw: e.tw, links: e.links, logger: e.logger, views: e.views, inView: true}
	return sub.exportDir(rel)
}

// writeHeader writes hdr, naming the file in the error.
func (e *exporter) writeHeader(hdr *tar.Header, rel string) error {
	if err := e.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("export %q: %w", rel, err)
	}
	return nil
}

// copyFile writes exactly size bytes of file full into the tar; a file that
// changes size meanwhile is an error rather than a corrupt archive.
func (e *exporter) copyFile(full string, size int64) error {
	f, err := os.OpenFile(full, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(e.tw, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("export %s: %w", full, err)
	}
	if n != size {
		return fmt.Errorf("export %s: file shrank from %d to %d bytes while being read", full, size, n)
	}
	return nil
}

// headerFromStat fills the fields every entry type shares.
func headerFromStat(name string, st *unix.Stat_t) *tar.Header {
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Devmajor = int64(unix.Major(uint64(st.Rdev)))
		hdr.Devminor = int64(unix.Minor(uint64(st.Rdev)))
	}
	return hdr
}

// isOverlayWhiteout reports whether st is overlay's mark for a deleted path.
func isOverlayWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOverlayXattr reports whether an xattr belongs to overlayfs itself and so
// must not travel in a layer tar.
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// readDirNames returns the names in directory dir (unsorted).
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// readXattrs returns the extended attributes of path without following a
// final symlink. A filesystem without xattr support yields none.
func readXattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
	}

	xattrs := map[string]string{}
	for _, name := range strings.Split(string(buf[:size]), "\x00") {
		if name == "" {
			continue
		}
		value, err := getXattr(p, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, err
		}
		xattrs[name] = value
	}
	return xattrs, nil
}

// getXattr reads one extended attribute of p, growing the buffer as needed.
func getXattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
		}
		return string(buf[:n]), nil
	}
}

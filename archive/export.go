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
)

// Names of the OCI whiteout markers in a layer tar.
const (
	tarWhiteoutPrefix = ".wh."
	tarOpaqueMarker   = ".wh..wh..opq"
)

// overlayOpaqueXattr marks an opaque directory in an overlay diff dir.
const overlayOpaqueXattr = "trusted.overlay.opaque"

// paxXattrPrefix is the PAX record prefix that carries an extended attribute.
const paxXattrPrefix = "SCHILY.xattr."

// ExportOptions are the options of Export. The zero value works.
type ExportOptions struct {
	// Logger receives debug detail (skipped sockets); nil discards it.
	Logger *slog.Logger
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

	switch entry.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := e.writeHeader(hdr, entry.rel); err != nil {
			return err
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

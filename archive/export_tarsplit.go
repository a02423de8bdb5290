package archive

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vbatts/tar-split/tar/storage"
	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/internal/crc64iso"
	"github.com/stratafs/strata/internal/tarsplit"
)

// ExportTarSplit writes to w the exact bytes of the layer tar that was
// applied into diff directory dir, reassembled from tarSplit (the layer's
// gzip-compressed tar-split JSON record: headers, padding and the size and
// checksum of each file's content) and the file contents in dir.
//
// Only regular files are read, and only as many bytes as the record gives
// the entry: a name that leads to a device, a FIFO or a directory (a
// record that does not match the dir, or one another program wrote with a
// size for a header-only entry) fails, naming the entry, instead of
// blocking or copying a device. A file whose content no longer matches the
// checksum recorded for it (the diff dir was changed after the import)
// fails too; the caller should then export with Export instead.
func ExportTarSplit(dir string, tarSplit io.Reader, w io.Writer) error {
	zr, err := gzip.NewReader(tarSplit)
	if err != nil {
		return fmt.Errorf("reading tar-split record: %w", err)
	}
	defer zr.Close()

	root, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	u := tarsplit.NewUnpacker(zr)
	buf := make([]byte, copyBufSize)
	for {
		e, err := u.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar-split record: %w", err)
		}
		switch e.Type {
		case storage.SegmentType:
			if _, err := w.Write(e.Payload); err != nil {
				return err
			}
		case storage.FileType:
			if e.Size == 0 {
				continue
			}
			if err := copyRecordedFile(root, e, w, buf); err != nil {
				return fmt.Errorf("reassembling layer tar from %s: entry %q: %w", dir, e.GetName(), err)
			}
		default:
			return fmt.Errorf("reading tar-split record: entry %d of unknown type %d", e.Position, e.Type)
		}
	}
}

// copyRecordedFile writes the content of the file entry e names, checked
// against the record's size and CRC-64.
func copyRecordedFile(root *os.File, e *storage.Entry, w io.Writer, buf []byte) error {
	f, err := openRecordedFile(root, e.GetName())
	if err != nil {
		return err
	}
	defer f.Close()
	crc := crc64iso.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, crc), io.LimitReader(f, e.Size), buf)
	if err != nil {
		return err
	}
	if n < e.Size {
		return fmt.Errorf("the file has %d bytes, the tar-split record %d", n, e.Size)
	}
	if !bytes.Equal(crc.Sum(nil), e.Payload) {
		return errors.New("the file's content does not match its tar-split checksum (changed after the import?)")
	}
	return nil
}

// openRecordedFile opens the regular file that tar entry name was applied
// to, resolving the name inside the diff dir the way Apply placed it: the
// name is cleaned lexically by cleanName, as Apply cleans it ("a/../b" is
// "b" whether or not "a" exists), and symlinks met on the way stay inside
// the root. O_NONBLOCK keeps a FIFO from blocking the open; anything but a
// regular file is refused.
func openRecordedFile(root *os.File, name string) (*os.File, error) {
	rel := cleanName(name)
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("the layer has a %s there, not a regular file: the tar-split record does not match the diff dir", typeName(st.Mode))
	}
	return os.NewFile(uintptr(fd), name), nil
}

// typeName names the file type in a stat mode.
func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

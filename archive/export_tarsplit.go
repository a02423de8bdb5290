package archive

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/vbatts/tar-split/tar/asm"
	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/internal/tarsplit"
)

// ExportTarSplit writes to w the exact bytes of the layer tar that was
// applied into diff directory dir, reassembled from tarSplit (the layer's
// gzip-compressed tar-split JSON record: headers, padding and the checksum
// of each file's content) and the file contents in dir.
//
// A file whose content no longer matches the checksum recorded for it (the
// diff dir was changed after the import) makes ExportTarSplit fail; the
// caller should then export with Export instead.
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

	getter := diffDirGetter{root: root}
	if err := asm.WriteOutputTarStream(getter, tarsplit.NewUnpacker(zr), w); err != nil {
		return fmt.Errorf("reassembling layer tar from %s: %w", dir, err)
	}
	return nil
}

// diffDirGetter hands tar-split the content of a file named in the tar,
// resolving the name inside the diff dir the way Apply placed it: the name
// is cleaned lexically by cleanName, as Apply cleans it ("a/../b" is "b"
// whether or not "a" exists), and symlinks met on the way stay inside the
// root.
type diffDirGetter struct {
	root *os.File
}

// Get opens the file that tar entry name was applied to.
func (g diffDirGetter) Get(name string) (io.ReadCloser, error) {
	rel := cleanName(name)
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(int(g.root.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// dirSource reads an image layout from a directory.
type dirSource string

// open opens file name below the directory; names never leave it.
func (d dirSource) open(name string) (io.ReadCloser, int64, error) {
	clean, err := cleanName(name)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(filepath.Join(string(d), clean))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s is missing", ErrInvalidImage, name)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrInvalidImage, name)
	}
	return f, fi.Size(), nil
}

// has reports whether the directory holds name.
func (d dirSource) has(name string) bool {
	clean, err := cleanName(name)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(string(d), clean))
	return err == nil
}

// Close implements source; a directory holds nothing open.
func (d dirSource) Close() error { return nil }

// tarSource reads an image layout from an uncompressed tar, indexed once
// so that blobs can be read in any order.
type tarSource struct {
	f     *os.File
	files map[string]tarSpan
}

// tarSpan is where a regular file's data sits in the tar.
type tarSpan struct {
	offset, size int64
}

// openTarSource indexes the regular files (and hardlinks to them, which
// docker-archives use for shared layers) of the tar at path.
func openTarSource(p string) (*tarSource, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		f.Close()
		return nil, fmt.Errorf("%s: %w: a compressed archive; decompress it first", p, ErrInvalidImage)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}

	ts := &tarSource{f: f, files: map[string]tarSpan{}}
	links := map[string]string{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w: reading tar: %v", p, ErrInvalidImage, err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			// tar.Reader reads headers block by block and seeks over
			// data, so the file offset now is where this entry's data
			// starts.
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				f.Close()
				return nil, err
			}
			ts.files[name] = tarSpan{offset: off, size: hdr.Size}
		case tar.TypeLink:
			if target, err := cleanName(hdr.Linkname); err == nil {
				links[name] = target
			}
		}
	}
	for name, target := range links {
		if span, ok := ts.files[target]; ok {
			ts.files[name] = span
		}
	}
	return ts, nil
}

// open returns a reader over the data of file name.
func (ts *tarSource) open(name string) (io.ReadCloser, int64, error) {
	clean, err := cleanName(name)
	if err != nil {
		return nil, 0, err
	}
	span, ok := ts.files[clean]
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s is missing from the archive", ErrInvalidImage, name)
	}
	return io.NopCloser(io.NewSectionReader(ts.f, span.offset, span.size)), span.size, nil
}

// has reports whether the tar holds file name.
func (ts *tarSource) has(name string) bool {
	clean, err := cleanName(name)
	if err != nil {
		return false
	}
	_, ok := ts.files[clean]
	return ok
}

// Close closes the tar file.
func (ts *tarSource) Close() error { return ts.f.Close() }

// cleanName turns a name from a manifest or tar header into a relative
// slash path, refusing names that would leave the image.
func cleanName(name string) (string, error) {
	clean := path.Clean("/" + name)[1:]
	if clean == "" || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || name == ".." {
		return "", fmt.Errorf("%w: file name %q leaves the image", ErrInvalidImage, name)
	}
	return clean, nil
}

// Package compression detects how a layer stream is compressed and opens a
// decompressor for it.
package compression

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/stratafs/strata/driver"
)

// Algorithm is a compression format. The values are the ones a layer record
// stores in its "compression" field.
type Algorithm int

// The formats a layer may come in.
const (
	None  Algorithm = 0
	Bzip2 Algorithm = 1
	Gzip  Algorithm = 2
	Xz    Algorithm = 3
	Zstd  Algorithm = 4
)

// ErrUnsupported is wrapped when a stream uses a format strata cannot read.
// It wraps driver.ErrNotSupported, so callers need not add that sentinel
// (and its words) again.
var ErrUnsupported = fmt.Errorf("compression format %w", driver.ErrNotSupported)

// ErrCorrupt is wrapped when a compressed stream is malformed.
var ErrCorrupt = errors.New("compressed stream is corrupt")

// String names the format as tools call it.
func (a Algorithm) String() string {
	switch a {
	case None:
		return "none"
	case Bzip2:
		return "bzip2"
	case Gzip:
		return "gzip"
	case Xz:
		return "xz"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int(a))
}

var (
	gzipMagic  = []byte{0x1f, 0x8b}
	bzip2Magic = []byte("BZh")
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// MagicSize is how many leading bytes Detect needs to see.
const MagicSize = 6

// Detect tells the format from the first bytes of a stream; anything it
// does not recognise is None (a plain tar starts with a file name).
func Detect(head []byte) Algorithm {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	case bytes.HasPrefix(head, zstdMagic) || isZstdSkippable(head):
		return Zstd
	case bytes.HasPrefix(head, xzMagic):
		return Xz
	case bytes.HasPrefix(head, bzip2Magic):
		return Bzip2
	}
	return None
}

// isZstdSkippable reports a zstd skippable frame (magic 0x184D2A50 to
// 0x184D2A5F, little endian), which may open a zstd stream.
func isZstdSkippable(head []byte) bool {
	return len(head) >= 4 && head[0]&0xf0 == 0x50 && head[1] == 0x2a && head[2] == 0x4d && head[3] == 0x18
}

// NewReader detects the format of r and returns a reader of the
// decompressed bytes. The decompressor stops at the end of the compressed
// data; r may hold more bytes after that, which the caller drains. Close
// releases the decompressor, not r.
func NewReader(r *bufio.Reader) (io.ReadCloser, Algorithm, error) {
	head, err := r.Peek(MagicSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, None, err
	}
	alg := Detect(head)
	switch alg {
	case None:
		return io.NopCloser(r), alg, nil
	case Gzip:
		gr, err := newGzipReader(r)
		return gr, alg, err
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, alg, fmt.Errorf("zstd: %w: %v", ErrCorrupt, err)
		}
		return &zstdReader{d: d}, alg, nil
	case Bzip2:
		return &errWrapReader{r: bzip2.NewReader(r), name: "bzip2"}, alg, nil
	case Xz:
		return nil, alg, fmt.Errorf("xz-compressed layers: %w", ErrUnsupported)
	}
	return nil, alg, fmt.Errorf("%v: %w", alg, ErrUnsupported)
}

// errWrapReader marks decompressor errors as ErrCorrupt.
type errWrapReader struct {
	r    io.Reader
	name string
}

func (e *errWrapReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%s: %w: %v", e.name, ErrCorrupt, err)
	}
	return n, err
}

func (e *errWrapReader) Close() error { return nil }

type zstdReader struct {
	d *zstd.Decoder
}

func (z *zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("zstd: %w: %v", ErrCorrupt, err)
	}
	return n, err
}

func (z *zstdReader) Close() error {
	z.d.Close()
	return nil
}

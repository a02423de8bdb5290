package compression

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
)

// gzipReader reads every gzip member of a stream (pigz and some registries
// split layers into several) and accepts NUL padding after the last one, as
// tape-era tools leave it. Any other trailing bytes are an error: the layer
// would not be what its digest promises.
type gzipReader struct {
	src    *bufio.Reader
	member *gzip.Reader
	done   bool
}

func newGzipReader(src *bufio.Reader) (*gzipReader, error) {
	member, err := gzip.NewReader(src)
	if err != nil {
		return nil, gzipError(err)
	}
	member.Multistream(false)
	return &gzipReader{src: src, member: member}, nil
}

func (g *gzipReader) Read(p []byte) (int, error) {
	for !g.done {
		n, err := g.member.Read(p)
		if err == nil || n > 0 && err == io.EOF {
			if err == io.EOF {
				err = g.next()
			}
			return n, err
		}
		if err != io.EOF {
			return n, gzipError(err)
		}
		if err := g.next(); err != nil {
			return 0, err
		}
	}
	return 0, io.EOF
}

// next moves to the following member, or ends the stream at EOF or at NUL
// padding.
func (g *gzipReader) next() error {
	head, err := g.src.Peek(2)
	switch {
	case len(head) == 0 && errors.Is(err, io.EOF):
		g.done = true
		return nil
	case len(head) == 2 && head[0] == gzipMagic[0] && head[1] == gzipMagic[1]:
		if err := g.member.Reset(g.src); err != nil {
			return gzipError(err)
		}
		g.member.Multistream(false)
		return nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := skipNULs(g.src); err != nil {
		return err
	}
	g.done = true
	return nil
}

// skipNULs consumes src to EOF, failing on the first byte that is not NUL.
func skipNULs(src *bufio.Reader) error {
	for {
		b, err := src.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if b != 0 {
			return fmt.Errorf("gzip: %w: trailing bytes after the last member", ErrCorrupt)
		}
	}
}

func gzipError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return fmt.Errorf("gzip: %w: %v", ErrCorrupt, err)
}

func (g *gzipReader) Close() error { return g.member.Close() }

package hostile

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"

	"github.com/stratafs/strata/testutil"
)

// BombSize is the apparent size of the file inside a bomb: 1 TiB.
const BombSize = 1 << 40

// bombHeader is the tar header (PAX, for the size) of a BombSize file.
func bombHeader() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := tw.WriteHeader(&tar.Header{Name: "bomb", Typeflag: tar.TypeReg, Mode: 0o644,
		Size: BombSize, ModTime: testutil.DefaultMTime})
	if err != nil {
		panic("hostile: " + err.Error())
	}
	return buf.Bytes() // the data would follow; the writer is abandoned here
}

// GzipBombMember is one gzip member of 1 MiB of zeros (about 1 KiB).
func GzipBombMember() []byte { return testutil.Gzip(make([]byte, 1<<20)) }

// ZstdBombFrame is one zstd frame of 1 MiB of zeros (a few dozen bytes).
func ZstdBombFrame() []byte { return testutil.Zstd(make([]byte, 1<<20)) }

// GzipBomb is a multi-member gzip stream that decompresses to a tar whose
// only file claims BombSize bytes of zeros, and then to zeros for ever: a
// reader of a few KiB per GiB that never ends. Only a size limit stops it.
func GzipBomb() io.Reader {
	return io.MultiReader(bytes.NewReader(testutil.Gzip(bombHeader())), repeat(GzipBombMember()))
}

// ZstdBomb is GzipBomb with zstd frames.
func ZstdBomb() io.Reader {
	return io.MultiReader(bytes.NewReader(testutil.Zstd(bombHeader())), repeat(ZstdBombFrame()))
}

// repeat reads p again and again, for ever.
func repeat(p []byte) io.Reader { return &repeater{p: p} }

type repeater struct {
	p   []byte
	off int
}

func (r *repeater) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c := copy(b[n:], r.p[r.off:])
		n += c
		r.off = (r.off + c) % len(r.p)
	}
	return n, nil
}

// ManyEntries streams an uncompressed tar of n empty files spread over
// dirs directories (n/dirs each), generated as it is read, never held in
// memory. The reader must be read to EOF or closed with CloseWithError.
func ManyEntries(n, dirs int) *io.PipeReader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for d := range dirs {
			err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/", d), Typeflag: tar.TypeDir,
				Mode: 0o755, ModTime: testutil.DefaultMTime})
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		for i := range n {
			err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d", i%dirs, i),
				Typeflag: tar.TypeReg, Mode: 0o644, ModTime: testutil.DefaultMTime})
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

// RepeatedDir streams an uncompressed tar holding the directory entry
// "d/" n times (each a metadata update of the same dir), generated on the
// fly: millions of entries, constant work per entry.
func RepeatedDir(n int) *io.PipeReader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for i := range n {
			err := tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir,
				Mode: 0o700 | int64(i%2)*0o55, ModTime: testutil.DefaultMTime})
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

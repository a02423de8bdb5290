package testutil

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// DefaultMTime is the modification time of entries built without MTime.
var DefaultMTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// EntryOpt changes the header of one entry before it is written.
type EntryOpt func(*tar.Header)

// Mode sets the permission bits, including setuid (04000), setgid (02000)
// and sticky (01000).
func Mode(mode int64) EntryOpt { return func(h *tar.Header) { h.Mode = mode } }

// Owner sets the numeric owner.
func Owner(uid, gid int) EntryOpt { return func(h *tar.Header) { h.Uid, h.Gid = uid, gid } }

// MTime sets the modification time.
func MTime(t time.Time) EntryOpt { return func(h *tar.Header) { h.ModTime = t } }

// Xattr adds the PAX record SCHILY.xattr.NAME=VALUE.
func Xattr(name, value string) EntryOpt {
	return PAX("SCHILY.xattr."+name, value)
}

// PAX adds one PAX record; the entry is then written in PAX format.
func PAX(key, value string) EntryOpt {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[key] = value
		h.Format = tar.FormatPAX
	}
}

// Typeflag overrides the entry type, e.g. a whiteout stored as a hardlink.
func Typeflag(flag byte) EntryOpt { return func(h *tar.Header) { h.Typeflag = flag } }

// Linkname overrides the link target.
func Linkname(target string) EntryOpt { return func(h *tar.Header) { h.Linkname = target } }

// Format forces a tar format (USTAR, PAX or GNU).
func Format(f tar.Format) EntryOpt { return func(h *tar.Header) { h.Format = f } }

// Tar builds a layer tar in memory. Methods append entries in call order
// and return the builder so calls chain. The bytes are produced by Bytes;
// a header archive/tar refuses to write makes Bytes panic, since that is a
// mistake in the test's input, not in the code under test.
type Tar struct {
	ops      []func(*tarState) error
	noEnd    bool
	trailing []byte
}

type tarState struct {
	buf   bytes.Buffer
	tw    *tar.Writer
	spans map[string][2]int // entry name -> data start, data length
}

// NewTar returns an empty builder.
func NewTar() *Tar { return &Tar{} }

func (b *Tar) entry(hdr tar.Header, data []byte, opts []EntryOpt) *Tar {
	if hdr.ModTime.IsZero() {
		hdr.ModTime = DefaultMTime
	}
	for _, opt := range opts {
		opt(&hdr)
	}
	return b.Raw(&hdr, data)
}

// Raw writes hdr and data through archive/tar as given (hdr.Size is set
// to len(data) when it is zero and data is not empty).
func (b *Tar) Raw(hdr *tar.Header, data []byte) *Tar {
	h := *hdr
	if h.Size == 0 && len(data) > 0 {
		h.Size = int64(len(data))
	}
	b.ops = append(b.ops, func(s *tarState) error {
		if err := s.tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		s.spans[h.Name] = [2]int{s.buf.Len(), int(h.Size)}
		if _, err := s.tw.Write(data); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		return nil
	})
	return b
}

// RawBytes appends p to the archive as it is, after flushing the padding
// of the entry before. Keep p a multiple of 512 bytes for a valid tar.
func (b *Tar) RawBytes(p []byte) *Tar {
	b.ops = append(b.ops, func(s *tarState) error {
		if err := s.tw.Flush(); err != nil {
			return err
		}
		s.buf.Write(p)
		return nil
	})
	return b
}

// Dir adds a directory (mode 0755 unless Mode says otherwise); a slash is
// appended to name when it has none.
func (b *Tar) Dir(name string, opts ...EntryOpt) *Tar {
	if !strings.HasSuffix(name, "/") {
		name += "/"
	}
	return b.entry(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}, nil, opts)
}

// File adds a regular file (mode 0644 unless Mode says otherwise).
func (b *Tar) File(name, content string, opts ...EntryOpt) *Tar {
	return b.entry(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, []byte(content), opts)
}

// Symlink adds a symbolic link name -> target.
func (b *Tar) Symlink(name, target string, opts ...EntryOpt) *Tar {
	return b.entry(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil, opts)
}

// Hardlink adds a hard link name to the earlier entry target.
func (b *Tar) Hardlink(name, target string, opts ...EntryOpt) *Tar {
	return b.entry(tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}, nil, opts)
}

// Fifo adds a named pipe.
func (b *Tar) Fifo(name string, opts ...EntryOpt) *Tar {
	return b.entry(tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o644}, nil, opts)
}

// CharDev adds a character device.
func (b *Tar) CharDev(name string, major, minor int64, opts ...EntryOpt) *Tar {
	hdr := tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor}
	return b.entry(hdr, nil, opts)
}

// BlockDev adds a block device.
func (b *Tar) BlockDev(name string, major, minor int64, opts ...EntryOpt) *Tar {
	hdr := tar.Header{Typeflag: tar.TypeBlock, Name: name, Mode: 0o660, Devmajor: major, Devminor: minor}
	return b.entry(hdr, nil, opts)
}

// Whiteout adds the OCI whiteout for deleted path p: an empty file named
// DIR/.wh.BASE.
func (b *Tar) Whiteout(p string, opts ...EntryOpt) *Tar {
	dir, base := path.Split(strings.TrimSuffix(p, "/"))
	return b.File(dir+".wh."+base, "", opts...)
}

// Opaque adds the OCI opaque marker DIR/.wh..wh..opq ("" or "." for the
// layer root).
func (b *Tar) Opaque(dir string, opts ...EntryOpt) *Tar {
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" || dir == "." {
		return b.File(".wh..wh..opq", "", opts...)
	}
	return b.File(dir+"/.wh..wh..opq", "", opts...)
}

// NoEnd leaves out the two zero blocks that end an archive.
func (b *Tar) NoEnd() *Tar { b.noEnd = true; return b }

// Trailing appends p after the end of the archive (padding or junk).
func (b *Tar) Trailing(p []byte) *Tar { b.trailing = append(b.trailing, p...); return b }

func (b *Tar) build() *tarState {
	s := &tarState{spans: map[string][2]int{}}
	s.tw = tar.NewWriter(&s.buf)
	for _, op := range b.ops {
		if err := op(s); err != nil {
			panic("testutil.Tar: " + err.Error())
		}
	}
	var err error
	if b.noEnd {
		err = s.tw.Flush()
	} else {
		err = s.tw.Close()
	}
	if err != nil {
		panic("testutil.Tar: " + err.Error())
	}
	s.buf.Write(b.trailing)
	return s
}

// Bytes returns the archive.
func (b *Tar) Bytes() []byte { return b.build().buf.Bytes() }

// Reader returns the archive as a reader.
func (b *Tar) Reader() io.Reader { return bytes.NewReader(b.Bytes()) }

// CutIn returns the archive cut in the middle of entry name's data (in
// its header when it has no data), as a stream that ends too early.
func (b *Tar) CutIn(name string) []byte {
	s := b.build()
	span, ok := s.spans[name]
	if !ok {
		panic("testutil.Tar.CutIn: no entry " + name)
	}
	cut := span[0] + span[1]/2
	if span[1] == 0 {
		cut = span[0] - 256
	}
	return s.buf.Bytes()[:cut]
}

// Gzip returns the archive compressed with gzip.
func (b *Tar) Gzip() []byte { return Gzip(b.Bytes()) }

// Zstd returns the archive compressed with zstd.
func (b *Tar) Zstd() []byte { return Zstd(b.Bytes()) }

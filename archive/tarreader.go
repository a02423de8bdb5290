package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stratafs/strata/internal/tarhdr"
)

// tarReader reads a tar stream as archive/tar's Reader does, giving the
// same headers (field for field), data and errors, at a fraction of its
// per-header cost. It parses the common headers itself: a USTAR or GNU
// header block with octal numbers and a checksum that matches, of a
// regular, link, symlink, device, directory or FIFO type, maybe after one
// PAX extended header ('x') with no GNU.sparse records. Every other entry
// is handed to a tar.Reader made for it, which reads the same stream from
// the entry's first header block (the blocks already read are replayed),
// so it gets archive/tar's exact behaviour: global headers, GNU long names,
// sparse files, base-256 numbers, bad checksums, junk and truncation.
//
// tarReader never reads ahead of archive/tar: during Next it reads exactly
// the bytes a tar.Reader would, so a recording of the stream taken around
// Next (streamReader) holds the same bytes, and it never seeks.
type tarReader struct {
	r   io.Reader
	nb  int64 // data bytes left in the current entry
	pad int64 // padding after them
	err error // sticky error of the fast path

	// The entry handed to archive/tar, while tr is set.
	tr     *tar.Reader
	rp     *replayReader
	dhdr   *tar.Header // the header tr returned, or nil
	dread  int64       // data bytes read through tr
	dbroke bool        // tr failed or its entry cannot be followed

	raw     []byte // header blocks and PAX data read by this Next
	rawErr  error  // the error that cut raw short
	scratch []byte // for skipping unread data
	padBlk  [blockSize]byte

	uname, gname string // last owner names, reused while they repeat
}

func newTarReader(r io.Reader) *tarReader { return &tarReader{r: r} }

const (
	blockSize          = tarhdr.BlockSize
	maxSpecialFileSize = 1 << 20 // archive/tar's bound on PAX data
)

var errDelegate = errors.New("entry handed to archive/tar")

// Next advances to the next entry, discarding what is left of the current
// one, as tar.Reader.Next.
func (t *tarReader) Next() (*tar.Header, error) {
	if t.tr != nil {
		if !t.handBack() {
			return t.nextDelegated()
		}
	}
	if t.err != nil {
		return nil, t.err
	}
	if err := t.skip(); err != nil {
		t.err = err
		return nil, err
	}
	t.raw, t.rawErr = t.raw[:0], nil
	hdr, err := t.readFast()
	if err != nil {
		// Replay what was read to a tar.Reader for this entry.
		t.rp = &replayReader{buf: bytes.Clone(t.raw), err: t.rawErr, r: t.r}
		t.tr = tar.NewReader(t.rp)
		return t.nextDelegated()
	}
	return hdr, nil
}

// nextDelegated reads the next header with the tar.Reader and notes
// whether its entry can be followed to its end by the fast path.
func (t *tarReader) nextDelegated() (*tar.Header, error) {
	hdr, err := t.tr.Next()
	t.dhdr, t.dread = hdr, 0
	t.dbroke = hdr == nil || (err != nil && !errors.Is(err, tar.ErrInsecurePath))
	return hdr, err
}

// handBack tells whether the entry the tar.Reader returned last is one
// whose data section the fast path can skip (its size is the header's),
// and if so takes over the stream after it.
func (t *tarReader) handBack() bool {
	h := t.dhdr
	if t.dbroke || h == nil || t.rp.buffered() {
		return false
	}
	var nb int64
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont:
		nb = h.Size
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
	default:
		return false
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return false
		}
	}
	if nb < 0 || t.dread > nb {
		return false
	}
	t.nb, t.pad = nb-t.dread, blockPadding(nb)
	t.tr, t.rp, t.dhdr = nil, nil, nil
	return true
}

// Read reads the current entry's data, as tar.Reader.Read.
func (t *tarReader) Read(p []byte) (int, error) {
	if t.tr != nil {
		n, err := t.tr.Read(p)
		t.dread += int64(n)
		if err != nil && err != io.EOF {
			t.dbroke = true
		}
		return n, err
	}
	if t.err != nil {
		return 0, t.err
	}
	if int64(len(p)) > t.nb {
		p = p[:t.nb]
	}
	var n int
	var err error
	if len(p) > 0 {
		n, err = t.r.Read(p)
		t.nb -= int64(n)
	}
	switch {
	case err == io.EOF && t.nb > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && t.nb == 0:
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// skip discards the rest of the current entry's data and its padding.
func (t *tarReader) skip() error {
	for t.nb > 0 {
		if t.scratch == nil {
			t.scratch = make([]byte, 8<<10)
		}
		n, err := t.r.Read(t.scratch[:min(int64(len(t.scratch)), t.nb)])
		t.nb -= int64(n)
		if t.nb == 0 {
			break
		}
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
	if t.pad > 0 {
		if _, err := tryReadFull(t.r, t.padBlk[:t.pad]); err != nil {
			return err
		}
		t.pad = 0
	}
	return nil
}

// tryReadFull reads len(b) bytes; a stream that ends before gives io.EOF
// (archive/tar reads padding so).
func tryReadFull(r io.Reader, b []byte) (n int, err error) {
	for n < len(b) && err == nil {
		var nn int
		nn, err = r.Read(b[n:])
		n += nn
	}
	if n == len(b) && err == io.EOF {
		err = nil
	}
	return n, err
}

// readRaw appends n bytes of the stream to t.raw, or reports
// errDelegate when the stream gives fewer (the error is kept for the
// replay).
func (t *tarReader) readRaw(n int) ([]byte, error) {
	start := len(t.raw)
	t.raw = append(t.raw, make([]byte, n)...)[:start]
	buf := t.raw[start : start+n]
	got := 0
	var err error
	for got < n && err == nil {
		var nn int
		nn, err = t.r.Read(buf[got:])
		got += nn
	}
	t.raw = t.raw[:start+got]
	if got < n {
		t.rawErr = err
		return nil, errDelegate
	}
	return buf, nil
}

// readFast reads an entry's header blocks and, for the forms it knows,
// builds the header archive/tar would. errDelegate means the entry is
// left to archive/tar.
func (t *tarReader) readFast() (*tar.Header, error) {
	format := tar.FormatUSTAR | tar.FormatPAX | tar.FormatGNU
	blk, err := t.readRaw(blockSize)
	if err != nil {
		return nil, err
	}
	var pax map[string]string
	if blk[156] == tar.TypeXHeader {
		var x blockFields
		f, ok := parseBlock((*[blockSize]byte)(blk), &x)
		if !ok {
			return nil, errDelegate
		}
		format &= f & tar.FormatPAX
		if x.size > maxSpecialFileSize {
			return nil, errDelegate
		}
		data, err := t.readRaw(int(x.size))
		if err != nil {
			return nil, err
		}
		if pax, ok = parsePAXRecords(data); !ok {
			return nil, errDelegate
		}
		// The padding, then the entry's own header block.
		padded, err := t.readRaw(int(blockPadding(x.size)) + blockSize)
		if err != nil {
			return nil, err
		}
		blk = padded[len(padded)-blockSize:]
	}

	var h blockFields
	f, ok := parseBlock((*[blockSize]byte)(blk), &h)
	if !ok {
		return nil, errDelegate
	}
	switch h.typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeLink, tar.TypeSymlink, tar.TypeChar,
		tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
	default:
		return nil, errDelegate
	}
	format &= f
	hdr := &tar.Header{
		Typeflag: h.typeflag,
		Name:     string(h.name),
		Linkname: string(h.linkname),
		Size:     h.size,
		Mode:     h.mode,
		Uid:      int(h.uid),
		Gid:      int(h.gid),
		Uname:    t.owner(&t.uname, h.uname),
		Gname:    t.owner(&t.gname, h.gname),
		ModTime:  time.Unix(h.mtime, 0),
		Devmajor: h.devmajor,
		Devminor: h.devminor,
	}
	if h.hasATime {
		hdr.AccessTime = time.Unix(h.atime, 0)
	}
	if h.hasCTime {
		hdr.ChangeTime = time.Unix(h.ctime, 0)
	}
	if len(h.prefix) > 0 {
		hdr.Name = string(h.prefix) + "/" + hdr.Name
	}
	if pax != nil && !mergePAX(hdr, pax) {
		return nil, errDelegate
	}
	if hdr.Typeflag == tar.TypeRegA {
		if strings.HasSuffix(hdr.Name, "/") {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
		}
	}
	var nb int64
	if hdr.Typeflag == tar.TypeReg {
		nb = hdr.Size
	}
	if nb < 0 || !filepath.IsLocal(hdr.Name) {
		// Negative sizes fail, non-local names may fail (GODEBUG
		// tarinsecurepath): archive/tar decides.
		return nil, errDelegate
	}
	if format&tar.FormatUSTAR != 0 && format&tar.FormatPAX != 0 {
		format &= tar.FormatUSTAR
	}
	hdr.Format = format
	t.nb, t.pad = nb, blockPadding(nb)
	return hdr, nil
}

// owner returns b as a string, reusing *last when it is the same.
func (t *tarReader) owner(last *string, b []byte) string {
	if string(b) != *last {
		*last = string(b)
	}
	return *last
}

// blockPadding is the number of bytes that pad n to a whole block.
func blockPadding(n int64) int64 { return -n & (blockSize - 1) }

// replayReader gives buf, then err if set, then reads r.
type replayReader struct {
	buf []byte
	err error
	r   io.Reader
}

func (r *replayReader) buffered() bool { return len(r.buf) > 0 || r.err != nil }

func (r *replayReader) Read(p []byte) (int, error) {
	if len(r.buf) > 0 {
		n := copy(p, r.buf)
		r.buf = r.buf[n:]
		return n, nil
	}
	if r.err != nil {
		err := r.err
		r.err = nil
		return 0, err
	}
	return r.r.Read(p)
}

// blockFields are the fields of a header block, as archive/tar reads them.
type blockFields struct {
	typeflag                    byte
	name, linkname, prefix      []byte
	uname, gname                []byte
	size, mode, uid, gid, mtime int64
	devmajor, devminor          int64
	atime, ctime                int64
	hasATime, hasCTime          bool
}

// parseBlock parses a USTAR or GNU header block whose checksum matches
// and whose numbers are octal, and returns the format archive/tar gives
// it. ok is false for anything else (end-of-archive zeros, V7 and star
// blocks, base-256 numbers, bad fields, the pre-Go-1.8 GNU prefix form).
func parseBlock(b *[blockSize]byte, f *blockFields) (format tar.Format, ok bool) {
	kind, highBit, ok := tarhdr.Check(b)
	if !ok {
		return 0, false
	}
	switch kind {
	case tarhdr.USTAR:
		format = tar.FormatUSTAR | tar.FormatPAX
	case tarhdr.GNU:
		format = tar.FormatGNU
	default:
		return 0, false // V7 and star
	}

	f.typeflag = b[tarhdr.OffTypeflag]
	f.name = tarhdr.CString(b[tarhdr.OffName:tarhdr.OffMode])
	f.linkname = tarhdr.CString(b[tarhdr.OffLinkname:tarhdr.OffMagic])
	f.uname = tarhdr.CString(b[tarhdr.OffUname:tarhdr.OffGname])
	f.gname = tarhdr.CString(b[tarhdr.OffGname:tarhdr.OffDevmajor])
	nums := [...]struct {
		dst   *int64
		field []byte
	}{
		{&f.size, b[tarhdr.OffSize:tarhdr.OffMtime]}, {&f.mode, b[tarhdr.OffMode:tarhdr.OffUID]},
		{&f.uid, b[tarhdr.OffUID:tarhdr.OffGID]}, {&f.gid, b[tarhdr.OffGID:tarhdr.OffSize]},
		{&f.mtime, b[tarhdr.OffMtime:tarhdr.OffChksum]},
		{&f.devmajor, b[tarhdr.OffDevmajor:tarhdr.OffDevminor]},
		{&f.devminor, b[tarhdr.OffDevminor:tarhdr.OffPrefix]},
	}
	for _, n := range nums {
		if *n.dst, ok = tarhdr.Octal(n.field); !ok {
			return 0, false
		}
	}
	if format == tar.FormatGNU {
		f.prefix = nil
		if f.hasATime = b[tarhdr.OffGNUATime] != 0; f.hasATime {
			if f.atime, ok = tarhdr.Octal(b[tarhdr.OffGNUATime:tarhdr.OffGNUCTime]); !ok {
				return 0, false
			}
		}
		if f.hasCTime = b[tarhdr.OffGNUCTime] != 0; f.hasCTime {
			if f.ctime, ok = tarhdr.Octal(b[tarhdr.OffGNUCTime : tarhdr.OffGNUCTime+12]); !ok {
				return 0, false
			}
		}
		return format, true
	}
	f.hasATime, f.hasCTime = false, false
	f.prefix = tarhdr.CString(b[tarhdr.OffPrefix : tarhdr.OffPrefix+155])
	if highBit {
		format = tar.FormatUnknown
	}
	// archive/tar also calls the format unknown when a numeric field's
	// last byte is not a NUL.
	for _, end := range [...]int{135, 107, 115, 123, 147, 336, 344} {
		if b[end] != 0 {
			format = tar.FormatUnknown
		}
	}
	return format, true
}

// parsePAXRecords parses PAX extended header data into a map, as
// archive/tar does. ok is false for a malformed record and for any
// GNU.sparse record, which only archive/tar handles.
func parsePAXRecords(data []byte) (map[string]string, bool) {
	recs := make(map[string]string, 8)
	for s := string(data); len(s) > 0; {
		k, v, rest, ok := tarhdr.NextPAXRecord(s)
		if !ok || strings.HasPrefix(k, "GNU.sparse.") {
			return nil, false
		}
		recs[k] = v
		s = rest
	}
	return recs, true
}

// mergePAX applies PAX records to hdr as archive/tar does; false for a
// value archive/tar rejects.
func mergePAX(hdr *tar.Header, recs map[string]string) bool {
	var err error
	for k, v := range recs {
		if v == "" {
			continue
		}
		var id int64
		switch k {
		case "path":
			hdr.Name = v
		case "linkpath":
			hdr.Linkname = v
		case "uname":
			hdr.Uname = v
		case "gname":
			hdr.Gname = v
		case "uid":
			id, err = strconv.ParseInt(v, 10, 64)
			hdr.Uid = int(id)
		case "gid":
			id, err = strconv.ParseInt(v, 10, 64)
			hdr.Gid = int(id)
		case "atime":
			hdr.AccessTime, err = parsePAXTime(v)
		case "mtime":
			hdr.ModTime, err = parsePAXTime(v)
		case "ctime":
			hdr.ChangeTime, err = parsePAXTime(v)
		case "size":
			hdr.Size, err = strconv.ParseInt(v, 10, 64)
		default:
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if hdr.Xattrs == nil {
					hdr.Xattrs = make(map[string]string)
				}
				hdr.Xattrs[name] = v
			}
		}
		if err != nil {
			return false
		}
	}
	hdr.PAXRecords = recs
	return true
}

// parsePAXTime parses a PAX time ("secs[.frac]", frac cut to
// nanoseconds) as archive/tar does.
func parsePAXTime(s string) (time.Time, error) {
	ss, sn, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(ss, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	if sn == "" {
		return time.Unix(secs, 0), nil
	}
	var nsecs int64
	for i := 0; i < len(sn); i++ {
		c := sn[i]
		if c < '0' || c > '9' {
			return time.Time{}, tar.ErrHeader
		}
		if i < 9 {
			nsecs = nsecs*10 + int64(c-'0')
		}
	}
	for i := len(sn); i < 9; i++ {
		nsecs *= 10
	}
	if ss[0] == '-' {
		nsecs = -nsecs
	}
	return time.Unix(secs, nsecs), nil
}

package tarsplit

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"github.com/vbatts/tar-split/tar/storage"

	"github.com/stratafs/strata/internal/crc64iso"
	"github.com/stratafs/strata/internal/tarhdr"
)

// Recorder writes the tar-split record of a tar stream fed to it with
// Write, in one pass and without a tar reader of its own: it walks the
// stream block by block and emits what tar-split's input stream would:
// a segment with the raw bytes before each entry's data (the previous
// entry's padding, extension headers, the header), then a file entry with
// the entry's name, size and the CRC-64 (ISO) of its data; after the end
// of the archive, every remaining byte in segments.
//
// A sparse entry (GNU sparse 0.0, 0.1 or 1.0 in PAX records, or an old GNU
// 'S' header) is recorded as it is stored: its data area (map and data
// regions) goes into the segment and its file entry has size 0, so the
// tar is rebuilt byte for byte and no hole is ever read. tar-split's own
// recorder reads such an entry expanded, holes and all.
//
// Where a header is malformed, the rules of Go's archive/tar decide, as
// they do for the applier.
type Recorder struct {
	packer   *Packer
	err      error
	offset   int64 // bytes consumed so far: places errors
	blkStart int64 // offset of the block being gathered

	state state
	need  int64 // bytes left in the data, special or padding state

	blk  [blockSize]byte
	blkN int
	kind blockKind

	seg     []byte // raw bytes of the segment being gathered
	special []byte // data of a PAX or GNU long name header
	crc     hash.Hash64

	// The entry being read.
	entry    pendingEntry
	pax      map[string]string // records of the last 'x' header
	longName string
	hasLong  bool
	extBlks  int
}

type state int

const (
	stBlock   state = iota // gathering a 512-byte block (see kind)
	stSpecial              // the data of an extension header
	stData                 // a file's data: hashed
	stKept                 // data kept in the segment: a sparse file's data area, a whiteout marker's data
	stPadding              // padding after data: kept in the segment
	stTrailer              // after the end of the archive
)

type blockKind int

const (
	kindHeader    blockKind = iota // a header or the first end block
	kindSecondEnd                  // after one zero block
	kindSparseExt                  // an old GNU sparse extension block
)

type pendingEntry struct {
	name     string
	typeflag byte
	size     int64 // data area size (physical)
	padding  int64
}

// sparseSegmentMax is the most of a sparse entry's data area kept in the
// segment of its header. Tools walking a record's headers (tar-split's
// IterateHeaders) expect one segment per header, so a data area up to
// this size shares it; a bigger one follows in segments of
// trailerSegmentSize, which rebuild the tar just as well but which such
// tools cannot walk past.
const (
	sparseSegmentMax   = 8 << 20
	trailerSegmentSize = 1 << 20
)

// NewRecorder returns a Recorder writing the record to p.
func NewRecorder(p *Packer) *Recorder {
	return &Recorder{packer: p, crc: crc64iso.New()}
}

// Write records the next bytes of the tar stream. After an error every
// call returns it.
func (r *Recorder) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 && r.err == nil {
		var n int
		switch r.state {
		case stBlock:
			if r.blkN == 0 {
				r.blkStart = r.offset
			}
			n = copy(r.blk[r.blkN:], p)
			r.blkN += n
			if r.blkN == blockSize {
				r.blkN = 0
				r.err = r.block()
			}
		case stSpecial:
			n = int(min(r.need, int64(len(p))))
			r.special = append(r.special, p[:n]...)
			r.need -= int64(n)
			if r.need == 0 {
				r.err = r.endSpecial()
			}
		case stData:
			n = int(min(r.need, int64(len(p))))
			r.crc.Write(p[:n])
			r.need -= int64(n)
			if r.need == 0 {
				r.err = r.endData()
			}
		case stKept:
			n = int(min(r.need, int64(len(p))))
			if r.entry.size > sparseSegmentMax {
				if len(r.seg) >= trailerSegmentSize {
					r.err = r.flushSegment()
					continue
				}
				n = min(n, trailerSegmentSize-len(r.seg))
			}
			r.seg = append(r.seg, p[:n]...)
			r.need -= int64(n)
			if r.need == 0 {
				r.err = r.endKept()
			}
		case stPadding:
			n = int(min(r.need, int64(len(p))))
			r.seg = append(r.seg, p[:n]...)
			r.need -= int64(n)
			if r.need == 0 {
				r.state = stBlock
			}
		case stTrailer:
			n = min(trailerSegmentSize-len(r.seg), len(p))
			r.seg = append(r.seg, p[:n]...)
			if len(r.seg) == trailerSegmentSize {
				r.err = r.flushSegment()
			}
		}
		p = p[n:]
		r.offset += int64(n)
	}
	if r.err != nil {
		return total - len(p), r.err
	}
	return total, nil
}

// Close ends the stream: the tar may stop at an entry boundary, without
// end blocks or inside the last padding, as archive/tar allows; a stream
// cut inside a header or data fails with io.ErrUnexpectedEOF. The last
// segment is written out.
func (r *Recorder) Close() error {
	if r.err != nil {
		return r.err
	}
	switch {
	case r.state == stBlock && r.blkN == 0 && r.kind != kindSparseExt,
		r.state == stPadding, r.state == stTrailer:
	default:
		r.err = fmt.Errorf("tar cut at byte %d: %w", r.offset, io.ErrUnexpectedEOF)
		if r.entry.name != "" {
			r.err = fmt.Errorf("entry %q: %w", r.entry.name, r.err)
		}
		return r.err
	}
	r.err = r.flushSegment()
	return r.err
}

// block handles a complete 512-byte block, appending it to the segment.
func (r *Recorder) block() error {
	r.seg = append(r.seg, r.blk[:]...)
	switch r.kind {
	case kindSecondEnd:
		if r.blk != [blockSize]byte{} {
			return r.headerError("a zero block followed by a header")
		}
		r.state = stTrailer
		return r.flushSegment()
	case kindSparseExt:
		return r.sparseExtension()
	}
	if r.blk == [blockSize]byte{} {
		r.kind = kindSecondEnd
		return nil
	}
	return r.header()
}

// header parses a header block: an extension header starts its data, a
// file's header completes the segment before the file's data.
func (r *Recorder) header() error {
	f, _, ok := tarhdr.Check(&r.blk)
	if !ok {
		return r.headerError("bad checksum or unknown format")
	}
	size, ok := tarhdr.Numeric(r.blk[offSize : offSize+12])
	if !ok {
		return r.headerError("bad size field")
	}
	typeflag := r.blk[offTypeflag]
	name := headerName(&r.blk, f)
	if size < 0 && !isHeaderOnly(typeflag) {
		return r.headerError("negative size")
	}

	switch typeflag {
	case 'x', 'g', 'L', 'K':
		if size > maxSpecialSize {
			return r.headerError(fmt.Sprintf("extension header of %d bytes", size))
		}
		r.entry = pendingEntry{name: name, typeflag: typeflag, size: size, padding: padding(size)}
		r.special = r.special[:0]
		return r.startData(stSpecial, size)
	}

	if r.pax != nil {
		if v := r.pax["path"]; v != "" {
			name = v
		}
		if v := r.pax["size"]; v != "" {
			if size, ok = parsePAXInt(v); !ok {
				return r.headerError("bad PAX size")
			}
		}
	}
	if r.hasLong {
		name = r.longName
	}
	if typeflag == 0 && len(name) > 0 && name[len(name)-1] == '/' {
		typeflag = '5' // a directory in pre-POSIX archives
	}
	if isHeaderOnly(typeflag) {
		size = 0
	}
	if size < 0 {
		return r.headerError("negative size")
	}
	r.entry = pendingEntry{name: name, typeflag: typeflag, size: size, padding: padding(size)}

	sparse := false
	if typeflag == 'S' {
		if f != tarhdr.GNU {
			return r.headerError("old GNU sparse header not in GNU format")
		}
		sparse = true
	} else if r.pax != nil && paxSparse(r.pax) {
		if isHeaderOnly(typeflag) {
			return r.headerError("sparse map on a " + strconv.QuoteRune(rune(typeflag)) + " entry")
		}
		if v := r.pax["GNU.sparse.name"]; v != "" {
			r.entry.name = v
		}
		sparse = true
	}
	r.pax, r.hasLong, r.longName = nil, false, ""

	if typeflag == 'S' && r.blk[offGNUExt] != 0 {
		r.kind, r.extBlks = kindSparseExt, 0
		return nil
	}
	if sparse || (size > 0 && isWhiteoutName(r.entry.name)) {
		// A whiteout marker's data is not in the diff dir (the marker
		// became a 0:0 device there): the record keeps it, so the layer
		// can still be exported byte for byte.
		return r.startData(stKept, size)
	}
	if err := r.flushSegment(); err != nil {
		return err
	}
	r.crc.Reset()
	return r.startData(stData, size)
}

// sparseExtension handles an old GNU sparse extension block: another one
// follows while its isextended byte is set, then the data area.
func (r *Recorder) sparseExtension() error {
	r.extBlks++
	if 96+r.extBlks*504 >= maxSpecialSize {
		return fmt.Errorf("entry %q: old GNU sparse map too long: %w", r.entry.name, ErrHeader)
	}
	if r.blk[offExtExt] != 0 {
		return nil
	}
	r.kind = kindHeader
	return r.startData(stKept, r.entry.size)
}

// startData enters state st for n bytes of data, or ends the data at once
// when there is none.
func (r *Recorder) startData(st state, n int64) error {
	r.state, r.need, r.kind = st, n, kindHeader
	if n > 0 {
		return nil
	}
	switch st {
	case stSpecial:
		return r.endSpecial()
	case stKept:
		return r.endKept()
	}
	return r.endData()
}

// endSpecial applies a complete extension header to the entry it
// precedes. A global PAX header is an entry of its own, as in tar-split.
func (r *Recorder) endSpecial() error {
	r.seg = append(r.seg, r.special...)
	switch r.entry.typeflag {
	case 'x', 'g':
		records, err := paxRecords(r.special)
		if err != nil {
			return fmt.Errorf("PAX header %q: %w", r.entry.name, err)
		}
		if r.entry.typeflag == 'g' {
			name := r.entry.name
			if v := records["path"]; v != "" {
				name = v
			}
			r.pax, r.hasLong, r.longName = nil, false, ""
			if err := r.flushSegment(); err != nil {
				return err
			}
			if err := r.addFile(name, 0, nil); err != nil {
				return err
			}
		} else {
			r.pax = records
		}
	case 'L':
		// archive/tar ignores an empty long name.
		r.longName = cString(r.special)
		r.hasLong = r.longName != ""
	case 'K':
		// The link target is not part of the record.
	}
	return r.startPadding()
}

// endData writes the file entry of a complete regular entry.
func (r *Recorder) endData() error {
	var sum []byte
	if r.entry.size > 0 {
		sum = binary.BigEndian.AppendUint64(make([]byte, 0, 8), r.crc.Sum64())
	}
	if err := r.addFile(r.entry.name, r.entry.size, sum); err != nil {
		return err
	}
	return r.startPadding()
}

// endKept writes the segment holding the data kept in the record (a
// sparse entry's data area, a whiteout marker's data) and the entry's
// empty file entry.
func (r *Recorder) endKept() error {
	if err := r.flushSegment(); err != nil {
		return err
	}
	if err := r.addFile(r.entry.name, 0, nil); err != nil {
		return err
	}
	return r.startPadding()
}

func (r *Recorder) startPadding() error {
	r.state, r.need = stPadding, r.entry.padding
	if r.need == 0 {
		r.state = stBlock
	}
	return nil
}

func (r *Recorder) addFile(name string, size int64, sum []byte) error {
	_, err := r.packer.AddEntry(storage.Entry{Type: storage.FileType, Name: name, Size: size, Payload: sum})
	return err
}

// flushSegment writes the gathered raw bytes, if any, as a segment.
func (r *Recorder) flushSegment() error {
	if len(r.seg) == 0 {
		return nil
	}
	_, err := r.packer.AddEntry(storage.Entry{Type: storage.SegmentType, Payload: r.seg})
	r.seg = r.seg[:0]
	if cap(r.seg) > 2*sparseSegmentMax {
		r.seg = nil
	}
	return err
}

func (r *Recorder) headerError(why string) error {
	return fmt.Errorf("tar header at byte %d: %s: %w", r.blkStart, why, ErrHeader)
}

func padding(n int64) int64 { return -n & (blockSize - 1) }

func parsePAXInt(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// isWhiteoutName tells whether the last element of a tar entry name starts
// with ".wh.", as the applier's whiteout and opaque markers do.
func isWhiteoutName(name string) bool {
	name = strings.TrimRight(name, "/")
	return strings.HasPrefix(name[strings.LastIndexByte(name, '/')+1:], ".wh.")
}

package archive

import (
	"archive/tar"
	"bytes"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// archive/tar reads sparse entries but keeps the map to itself (its
// seeking WriteTo is unexported), so Read would hand over every zero of a
// hole: hours for a 1 TiB file. streamReader sits under the tar.Reader,
// records what Next reads (the PAX 1.0 sparse map is at the start of the
// entry's data, read by Next) and, after Apply has read a sparse entry's
// data fragments itself, feeds the tar.Reader as many placeholder bytes as
// it will skip for them.
type streamReader struct {
	r         io.Reader
	recording bool
	rec       []byte
	recOff    int64 // stream offset of rec[0]
	off       int64 // bytes handed to the tar reader, placeholders included
	phantom   int64
}

// maxRecord bounds the recording; archive/tar caps special headers and
// sparse maps at 1 MiB.
const maxRecord = 2<<20 + 64<<10

func (s *streamReader) Read(p []byte) (int, error) {
	if s.phantom > 0 {
		n := int(min(int64(len(p)), s.phantom))
		clear(p[:n])
		s.phantom -= int64(n)
		s.off += int64(n)
		return n, nil
	}
	n, err := s.r.Read(p)
	if s.recording && n > 0 {
		if len(s.rec) == 0 {
			s.recOff = s.off
		}
		s.rec = append(s.rec, p[:n]...)
		if len(s.rec) > maxRecord {
			drop := len(s.rec) - maxRecord/2
			s.rec = append(s.rec[:0], s.rec[drop:]...)
			s.recOff += int64(drop)
		}
	}
	s.off += int64(n)
	return n, err
}

// recordedBlocks is the recording from its first block boundary on: the
// header blocks Next read, without the previous entry's padding before
// them.
func (s *streamReader) recordedBlocks() []byte {
	skip := -s.recOff & 511
	if skip >= int64(len(s.rec)) {
		return nil
	}
	return s.rec[skip:]
}

func (s *streamReader) startRecording() { s.recording, s.rec = true, s.rec[:0] }
func (s *streamReader) stopRecording()  { s.recording = false }

// fragment is a data region of a sparse file.
type fragment struct{ offset, length int64 }

// sparseLayout returns the data fragments of the sparse entry Next just
// returned and the number of data bytes stored after the map, or ok=false
// for forms it does not parse (old GNU 'S' headers).
func (s *streamReader) sparseLayout(hdr *tar.Header) (frags []fragment, stored int64, ok bool) {
	if hdr.PAXRecords["GNU.sparse.major"] == "1" && hdr.PAXRecords["GNU.sparse.minor"] == "0" {
		// The recording ends with the entry's header block and the map.
		for k := 1; (k+1)*512 <= len(s.rec); k++ {
			j := len(s.rec) - k*512
			size, valid := headerSize(s.rec[j-512 : j])
			if !valid {
				continue
			}
			frags, used, ok := parseSparseNumbers(s.rec[j:])
			if ok && (used+511)/512 == k {
				return frags, size - int64(k*512), true
			}
		}
		return nil, 0, false
	}
	if m, found := hdr.PAXRecords["GNU.sparse.map"]; found && len(s.rec) >= 512 {
		size, valid := headerSize(s.rec[len(s.rec)-512:])
		if !valid {
			return nil, 0, false
		}
		text := strings.ReplaceAll(m, ",", "\n")
		nums := strconv.Itoa(strings.Count(text, "\n")/2+1) + "\n" + text + "\n"
		if m == "" {
			nums = "0\n"
		}
		frags, _, ok := parseSparseNumbers([]byte(nums))
		return frags, size, ok
	}
	return nil, 0, false
}

// headerSize checks a tar header block's checksum and returns its size
// field.
func headerSize(blk []byte) (int64, bool) {
	sum := 0
	for i, c := range blk {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int(c)
	}
	want, err := strconv.ParseInt(strings.Trim(string(blk[148:156]), " \x00"), 8, 64)
	if err != nil || int(want) != sum {
		return 0, false
	}
	field := blk[124:136]
	if field[0]&0x80 != 0 {
		var n int64
		for _, c := range field[1:] {
			n = n<<8 | int64(c)
		}
		return n, true
	}
	n, err := strconv.ParseInt(strings.Trim(string(field), " \x00"), 8, 64)
	return n, err == nil
}

// parseSparseNumbers parses "N\n" then N pairs "offset\nlength\n".
func parseSparseNumbers(p []byte) (frags []fragment, used int, ok bool) {
	next := func() (int64, bool) {
		i := bytes.IndexByte(p[used:], '\n')
		if i <= 0 {
			return 0, false
		}
		v, err := strconv.ParseInt(string(p[used:used+i]), 10, 64)
		used += i + 1
		return v, err == nil && v >= 0
	}
	n, ok := next()
	if !ok || n > int64(len(p)) {
		return nil, 0, false
	}
	for range n {
		off, ok1 := next()
		length, ok2 := next()
		if !ok1 || !ok2 {
			return nil, 0, false
		}
		frags = append(frags, fragment{off, length})
	}
	return frags, used, true
}

// writeSparse writes the data fragments of a sparse entry straight from
// the stream at their offsets and sizes the file, leaving holes unwritten.
func (a *applier) writeSparse(fd int, hdr *tar.Header, frags []fragment, stored int64) error {
	var total, end int64
	for _, f := range frags {
		if f.offset < end || f.offset+f.length > hdr.Size || f.offset+f.length < f.offset {
			return invalid("bad sparse map")
		}
		end = f.offset + f.length
		total += f.length
	}
	if total != stored {
		return invalid("sparse map describes %d bytes, entry holds %d", total, stored)
	}
	if a.buf == nil {
		a.buf = make([]byte, copyBufSize)
	}
	for _, f := range frags {
		for done := int64(0); done < f.length; {
			chunk := a.buf[:min(int64(len(a.buf)), f.length-done)]
			if _, err := io.ReadFull(a.stream, chunk); err != nil {
				return dataErr(err)
			}
			if _, err := unix.Pwrite(fd, chunk, f.offset+done); err != nil {
				return sysErr("write", hdr.Name, err)
			}
			done += int64(len(chunk))
		}
	}
	// archive/tar skips the fragments it thinks are still unread.
	a.stream.phantom = stored
	if err := unix.Ftruncate(fd, hdr.Size); err != nil {
		return sysErr("truncate", hdr.Name, err)
	}
	return nil
}

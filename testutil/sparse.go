package testutil

import (
	"archive/tar"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strconv"
)

// SparseChunk is one data region of a sparse file; the rest reads as zeros.
type SparseChunk struct {
	Offset int64
	Data   []byte
}

// Sparse adds a regular file of apparent size size holding chunks, in GNU
// sparse format 1.0 carried by PAX records (the form GNU tar writes with
// --sparse --format=posix). archive/tar reads this form but cannot write
// it, so the headers are written by hand here. Mode, Owner, MTime, Xattr
// and PAX options apply.
func (b *Tar) Sparse(name string, size int64, chunks []SparseChunk, opts ...EntryOpt) *Tar {
	hdr := tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: DefaultMTime}
	for _, opt := range opts {
		opt(&hdr)
	}

	var sparseMap bytes.Buffer
	entries := len(chunks)
	last := int64(0)
	if entries > 0 {
		last = chunks[entries-1].Offset + int64(len(chunks[entries-1].Data))
	}
	if last < size {
		entries++ // GNU tar ends the map with a zero-length region at the end
	}
	fmt.Fprintf(&sparseMap, "%d\n", entries)
	var data []byte
	for _, c := range chunks {
		fmt.Fprintf(&sparseMap, "%d\n%d\n", c.Offset, len(c.Data))
		data = append(data, c.Data...)
	}
	if last < size {
		fmt.Fprintf(&sparseMap, "%d\n0\n", size)
	}
	sparseMap.Write(make([]byte, pad(sparseMap.Len())))
	body := append(sparseMap.Bytes(), data...)

	records := map[string]string{}
	for k, v := range hdr.PAXRecords {
		records[k] = v
	}
	records["GNU.sparse.major"] = "1"
	records["GNU.sparse.minor"] = "0"
	records["GNU.sparse.name"] = name
	records["GNU.sparse.realsize"] = strconv.FormatInt(size, 10)
	paxBody := PAXRecords(records)

	dir, base := path.Split(name)
	var out bytes.Buffer
	paxHdr := USTARBlock(tar.Header{
		Typeflag: tar.TypeXHeader, Name: trim100(dir + "PaxHeaders.0/" + base),
		Size: int64(len(paxBody)), Mode: 0o644, ModTime: hdr.ModTime,
	})
	out.Write(paxHdr[:])
	out.Write(paxBody)
	out.Write(make([]byte, pad(len(paxBody))))
	fileHdr := hdr
	fileHdr.Name = trim100(dir + "GNUSparseFile.0/" + base)
	fileHdr.Size = int64(len(body))
	block := USTARBlock(fileHdr)
	out.Write(block[:])
	dataStart := out.Len()
	out.Write(body)
	out.Write(make([]byte, pad(len(body))))

	raw := out.Bytes()
	b.ops = append(b.ops, func(s *tarState) error {
		if err := s.tw.Flush(); err != nil {
			return err
		}
		s.spans[name] = [2]int{s.buf.Len() + dataStart, len(body)}
		s.buf.Write(raw)
		return nil
	})
	return b
}

// USTARBlock encodes the USTAR fields of hdr (name, mode, owner, size,
// mtime, type, link name, device numbers) into one 512-byte header block
// with a valid checksum, without any of archive/tar's checks. Names longer
// than 100 bytes are cut.
func USTARBlock(hdr tar.Header) [512]byte {
	var blk [512]byte
	copy(blk[0:100], hdr.Name)
	octal(blk[100:108], hdr.Mode)
	octal(blk[108:116], int64(hdr.Uid))
	octal(blk[116:124], int64(hdr.Gid))
	octal(blk[124:136], hdr.Size)
	octal(blk[136:148], hdr.ModTime.Unix())
	blk[156] = hdr.Typeflag
	copy(blk[157:257], hdr.Linkname)
	copy(blk[257:263], "ustar\x00")
	copy(blk[263:265], "00")
	octal(blk[329:337], hdr.Devmajor)
	octal(blk[337:345], hdr.Devminor)
	FixChecksum(&blk)
	return blk
}

// FixChecksum writes the checksum of a header block edited by a test.
func FixChecksum(blk *[512]byte) {
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

func octal(field []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	width := len(field) - 1
	for len(s) < width {
		s = "0" + s
	}
	copy(field, s[len(s)-width:])
	field[width] = 0
}

// PAXRecords encodes records as the body of a PAX extended header:
// "LEN KEY=VALUE\n" lines in key order, LEN counting the whole line
// including its own digits. Unlike archive/tar it writes any value, NUL
// bytes included, so tests can build headers a reader must refuse.
func PAXRecords(records map[string]string) []byte {
	keys := make([]string, 0, len(records))
	for k := range records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out bytes.Buffer
	for _, k := range keys {
		rest := " " + k + "=" + records[k] + "\n"
		n := len(rest)
		for n != len(strconv.Itoa(n))+len(rest) {
			n = len(strconv.Itoa(n)) + len(rest)
		}
		fmt.Fprintf(&out, "%d%s", n, rest)
	}
	return out.Bytes()
}

func pad(n int) int { return (512 - n%512) % 512 }

func trim100(s string) string {
	if len(s) > 100 {
		return s[:100]
	}
	return s
}

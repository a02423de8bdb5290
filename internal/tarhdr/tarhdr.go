// Package tarhdr reads the fields of tar header blocks and PAX records by
// the rules of Go's archive/tar reader. The layer stream is parsed twice,
// by the applier (archive) and by the tar-split recorder
// (internal/tarsplit); both parse with this package, so they agree with
// each other and with archive/tar on every header they accept.
package tarhdr

import (
	"bytes"
	"strconv"
	"strings"
)

// BlockSize is the size of a tar block.
const BlockSize = 512

// Offsets of the fields of a header block (POSIX ustar, GNU and star).
const (
	OffName        = 0
	OffMode        = 100
	OffUID         = 108
	OffGID         = 116
	OffSize        = 124
	OffMtime       = 136
	OffChksum      = 148
	OffTypeflag    = 156
	OffLinkname    = 157
	OffMagic       = 257
	OffVersion     = 263
	OffUname       = 265
	OffGname       = 297
	OffDevmajor    = 329
	OffDevminor    = 337
	OffPrefix      = 345 // ustar: 155 bytes; star: 131
	OffGNUATime    = 345
	OffGNUCTime    = 357
	OffGNUExt      = 482 // isextended of an old GNU sparse header
	OffExtExt      = 504 // isextended of a sparse extension block
	OffSTARTrailer = 508
)

// Kind is a header block's format as its magic tells it.
type Kind int

// The kinds archive/tar tells apart.
const (
	V7 Kind = iota
	USTAR
	STAR
	GNU
)

// Check verifies b's checksum, which archive/tar accepts as the unsigned
// or the signed sum of the block with the checksum field counted as
// spaces, and returns the block's kind; highBit tells whether any byte
// has its top bit set (archive/tar then calls a USTAR block's format
// unknown). ok is false when the checksum does not match.
func Check(b *[BlockSize]byte) (kind Kind, highBit, ok bool) {
	want, ok := Octal(b[OffChksum : OffChksum+8])
	if !ok {
		return 0, false, false
	}
	var unsigned, signed int64
	var any byte
	for i, c := range b {
		any |= c
		if i >= OffChksum && i < OffChksum+8 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	if want != unsigned && want != signed {
		return 0, false, false
	}
	magic := string(b[OffMagic:OffVersion])
	switch {
	case magic == "ustar\x00" && string(b[OffSTARTrailer:]) == "tar\x00":
		kind = STAR
	case magic == "ustar\x00":
		kind = USTAR
	case magic == "ustar " && string(b[OffVersion:OffVersion+2]) == " \x00":
		kind = GNU
	default:
		kind = V7
	}
	return kind, any >= 0x80, true
}

// CString is a string field: b up to its first NUL.
func CString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// Octal parses an octal numeric field: spaces and NULs are trimmed at both
// ends, the rest is cut at a NUL, and an empty field is zero. ok is false
// for any other byte and for a value that does not fit 63 bits (which
// archive/tar would read as negative).
func Octal(b []byte) (int64, bool) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == 0) {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	var x uint64
	for _, c := range CString(b) {
		if c < '0' || c > '7' || x>>60 != 0 {
			return 0, false
		}
		x = x<<3 | uint64(c-'0')
	}
	return int64(x), true
}

// Numeric parses a numeric field: GNU base-256 (big-endian two's
// complement) when the first byte's top bit is set, else octal.
func Numeric(b []byte) (int64, bool) {
	if len(b) == 0 || b[0]&0x80 == 0 {
		return Octal(b)
	}
	var flip byte
	if b[0]&0x40 != 0 {
		flip = 0xff // negative: read the inverted bytes
	}
	var x uint64
	for i, c := range b {
		c ^= flip
		if i == 0 {
			c &= 0x7f
		}
		if x>>56 != 0 {
			return 0, false
		}
		x = x<<8 | uint64(c)
	}
	if x>>63 != 0 {
		return 0, false
	}
	if flip != 0 {
		return ^int64(x), true
	}
	return int64(x), true
}

// NextPAXRecord splits the first record ("LEN KEY=VALUE\n", LEN counting
// the whole record in decimal) off the data of a PAX extended header. ok
// is false for a record archive/tar rejects: a bad length, no newline at
// its end, no "=", an empty key, a NUL in the value of path, linkpath,
// uname or gname or in any other key.
func NextPAXRecord(s string) (key, value, rest string, ok bool) {
	lenText, _, found := strings.Cut(s, " ")
	if !found {
		return "", "", s, false
	}
	n, err := strconv.ParseInt(lenText, 10, 64)
	if err != nil || n < 5 || n > int64(len(s)) || n <= int64(len(lenText))+1 {
		return "", "", s, false
	}
	record, rest := s[len(lenText)+1:n], s[n:]
	if record[len(record)-1] != '\n' {
		return "", "", s, false
	}
	key, value, found = strings.Cut(record[:len(record)-1], "=")
	if !found || key == "" {
		return "", "", s, false
	}
	switch key {
	case "path", "linkpath", "uname", "gname":
		if strings.IndexByte(value, 0) >= 0 {
			return "", "", s, false
		}
	default:
		if strings.IndexByte(key, 0) >= 0 {
			return "", "", s, false
		}
	}
	return key, value, rest, true
}

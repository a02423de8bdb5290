package tarsplit

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// ErrHeader reports a tar header the recorder cannot follow. The rules are
// those of Go's archive/tar reader (which the applier uses), so a tar the
// applier accepts is recorded, and one it rejects fails here too.
var ErrHeader = errors.New("invalid tar header")

const (
	blockSize = 512
	// maxSpecialSize bounds PAX records, GNU long names and old GNU sparse
	// maps, as archive/tar does.
	maxSpecialSize = 1 << 20
)

// Header block layout (POSIX ustar, GNU and star variants).
const (
	offName     = 0
	offSize     = 124
	offChksum   = 148
	offTypeflag = 156
	offMagic    = 257
	offPrefix   = 345
	offGNUATime = 345
	offGNUCTime = 357
	offGNUExt   = 482 // isextended of the 4 sparse slots in an old GNU header
	offExtExt   = 504 // isextended of a sparse extension block
	offTrailer  = 508
)

type format int

const (
	formatV7 format = iota
	formatUSTAR
	formatSTAR
	formatGNU
)

// blockFormat returns the format of a header block, or false when its
// checksum does not match (signed or unsigned sums are both accepted).
func blockFormat(b *[blockSize]byte) (format, bool) {
	want, ok := parseOctal(b[offChksum : offChksum+8])
	if !ok {
		return 0, false
	}
	// Both sums count the checksum field as eight spaces.
	var unsigned, signed int64
	for _, c := range b {
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	for _, c := range b[offChksum : offChksum+8] {
		unsigned += ' ' - int64(c)
		signed += ' ' - int64(int8(c))
	}
	if want != unsigned && want != signed {
		return 0, false
	}
	magic := string(b[offMagic : offMagic+8])
	switch {
	case magic == "ustar\x0000" && string(b[offTrailer:]) == "tar\x00":
		return formatSTAR, true
	case magic == "ustar\x0000":
		return formatUSTAR, true
	case magic == "ustar  \x00":
		return formatGNU, true
	}
	return formatV7, true
}

// headerName is the name a header block gives its entry before extension
// headers override it.
func headerName(b *[blockSize]byte, f format) string {
	name := cString(b[offName : offName+100])
	var prefix string
	switch f {
	case formatUSTAR:
		prefix = cString(b[offPrefix : offPrefix+155])
	case formatSTAR:
		prefix = cString(b[offPrefix : offPrefix+131])
	case formatGNU:
		// Old Go writers put a ustar prefix where GNU keeps atime and
		// ctime; archive/tar reads it as a prefix when those fields do
		// not parse as numbers, and so must we to name the entry alike.
		_, aok := parseOptionalNumeric(b[offGNUATime : offGNUATime+12])
		_, cok := parseOptionalNumeric(b[offGNUCTime : offGNUCTime+12])
		if !aok || !cok {
			if s := cString(b[offPrefix : offPrefix+155]); isASCII(s) {
				prefix = s
			}
		}
	}
	if prefix != "" {
		return prefix + "/" + name
	}
	return name
}

func parseOptionalNumeric(b []byte) (int64, bool) {
	if b[0] == 0 {
		return 0, true
	}
	return parseNumeric(b)
}

// cString is a header string field: its bytes up to the first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// parseNumeric reads a numeric header field: octal text, or GNU base-256
// (two's complement, big-endian) when the top bit of the first byte is set.
func parseNumeric(b []byte) (int64, bool) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		var flip byte
		if b[0]&0x40 != 0 {
			flip = 0xff
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
	return parseOctal(b)
}

// parseOctal reads octal text padded with spaces or NULs on either side;
// an empty field is zero.
func parseOctal(b []byte) (int64, bool) {
	b = bytes.Trim(b, " \x00")
	if len(b) == 0 {
		return 0, true
	}
	x, err := strconv.ParseUint(string(b), 8, 63)
	if err != nil {
		return 0, false
	}
	return int64(x), true
}

// isHeaderOnly tells the types whose data area archive/tar ignores
// whatever size the header claims.
func isHeaderOnly(typeflag byte) bool {
	switch typeflag {
	case '1', '2', '3', '4', '5', '6':
		return true
	}
	return false
}

// paxRecords parses the records of a PAX extended header ("LEN KEY=VALUE\n"
// each). The GNU sparse 0.0 offset/numbytes pairs, which may repeat, are
// only noted as GNU.sparse.map: the recorder needs to know the entry is
// sparse, not where its data lies.
func paxRecords(data []byte) (map[string]string, error) {
	records := map[string]string{}
	s := string(data)
	for len(s) > 0 {
		sp := strings.IndexByte(s, ' ')
		if sp <= 0 {
			return nil, ErrHeader
		}
		n, err := strconv.Atoi(s[:sp])
		if err != nil || n <= sp+1 || n > len(s) || s[n-1] != '\n' {
			return nil, ErrHeader
		}
		key, value, ok := strings.Cut(s[sp+1:n-1], "=")
		if !ok || key == "" {
			return nil, ErrHeader
		}
		s = s[n:]
		switch key {
		case "GNU.sparse.offset", "GNU.sparse.numbytes":
			records["GNU.sparse.map"] = "0.0"
		default:
			records[key] = value
		}
	}
	return records, nil
}

// paxSparse tells whether PAX records make the entry a GNU sparse file
// (versions 0.0, 0.1 and 1.0), whose data area holds only the data
// regions (and, for 1.0, the map before them).
func paxSparse(records map[string]string) bool {
	major, minor := records["GNU.sparse.major"], records["GNU.sparse.minor"]
	switch {
	case major == "0" && (minor == "0" || minor == "1"), major == "1" && minor == "0":
		return true
	case major != "" || minor != "":
		return false // a version archive/tar does not know: a plain file
	}
	return records["GNU.sparse.map"] != ""
}

package tarsplit

import (
	"errors"

	"github.com/stratafs/strata/internal/tarhdr"
)

// ErrHeader reports a tar header the recorder cannot follow. The rules are
// those of Go's archive/tar reader (internal/tarhdr, which the applier
// uses too), so a tar the applier accepts is recorded, and one it rejects
// fails here too.
var ErrHeader = errors.New("invalid tar header")

const (
	blockSize = tarhdr.BlockSize
	// maxSpecialSize bounds PAX records, GNU long names and old GNU sparse
	// maps, as archive/tar does.
	maxSpecialSize = 1 << 20

	offName     = tarhdr.OffName
	offSize     = tarhdr.OffSize
	offTypeflag = tarhdr.OffTypeflag
	offPrefix   = tarhdr.OffPrefix
	offGNUATime = tarhdr.OffGNUATime
	offGNUCTime = tarhdr.OffGNUCTime
	offGNUExt   = tarhdr.OffGNUExt
	offExtExt   = tarhdr.OffExtExt
)

// headerName is the name a header block gives its entry before extension
// headers override it.
func headerName(b *[blockSize]byte, f tarhdr.Kind) string {
	name := cString(b[offName : offName+100])
	var prefix string
	switch f {
	case tarhdr.USTAR:
		prefix = cString(b[offPrefix : offPrefix+155])
	case tarhdr.STAR:
		prefix = cString(b[offPrefix : offPrefix+131])
	case tarhdr.GNU:
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
	return tarhdr.Numeric(b)
}

// cString is a header string field: its bytes up to the first NUL.
func cString(b []byte) string { return string(tarhdr.CString(b)) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
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

// paxRecords parses the records of a PAX extended header. The GNU sparse
// 0.0 offset/numbytes pairs, which may repeat, are only noted as
// GNU.sparse.map: the recorder needs to know the entry is sparse, not
// where its data lies.
func paxRecords(data []byte) (map[string]string, error) {
	records := map[string]string{}
	for s := string(data); len(s) > 0; {
		key, value, rest, ok := tarhdr.NextPAXRecord(s)
		if !ok {
			return nil, ErrHeader
		}
		s = rest
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

package archive

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// rawPAXHeader builds a PAX extended header block ('x') carrying records
// exactly as given, with a valid checksum, so that names Go's tar writer
// refuses (a NUL) can be sent.
func rawPAXHeader(records string) []byte {
	hdr := make([]byte, 512)
	copy(hdr, "PaxHeaders/x")
	copy(hdr[100:], "0000644\x00")
	copy(hdr[108:], "0000000\x00")
	copy(hdr[116:], "0000000\x00")
	copy(hdr[124:], fmt.Sprintf("%011o\x00", len(records)))
	copy(hdr[136:], "00000000000\x00")
	hdr[156] = 'x'
	copy(hdr[257:], "ustar\x0000")
	copy(hdr[148:], "        ")
	sum := 0
	for _, b := range hdr {
		sum += int(b)
	}
	copy(hdr[148:], fmt.Sprintf("%06o\x00 ", sum))
	body := make([]byte, (len(records)+511)&^511)
	copy(body, records)
	return append(hdr, body...)
}

// TestHeaderErrorWording: a header that cannot be read is placed before
// the first entry when none was read, after the last one otherwise, and a
// PAX path the reader refuses is named, its NUL escaped.
func TestHeaderErrorWording(t *testing.T) {
	one := testutil.NewTar().File("first", "x").Bytes()
	oneEntry := one[:1024] // header and data block of "first", no end blocks
	record := "path=a\x00b"
	record = fmt.Sprintf("%d %s\n", len(record)+4, record) // 4 = len("NN ") + "\n"
	tests := []struct {
		name, want string
		blob       []byte
	}{
		{"junk at the start", "before the first entry: invalid layer data: reading tar: ", bytes.Repeat([]byte("junk"), 256)},
		{"first header cut short", "before the first entry: ", one[:100]},
		{"junk after an entry", `entry "first": invalid layer data: reading tar after this entry`,
			append(bytes.Clone(oneEntry), bytes.Repeat([]byte("junk"), 256)...)},
		{"PAX path with a NUL", `entry "a\x00b": invalid layer data: reading its header: `,
			append(rawPAXHeader(record), one...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Apply(t.TempDir(), bytes.NewReader(tc.blob), Options{})
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, driver.ErrInvalidLayerData) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Apply = %v\nwant an EntryError starting %q", err, tc.want)
			}
		})
	}
}

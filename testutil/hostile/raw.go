package hostile

import (
	"archive/tar"
	"bytes"

	"github.com/stratafs/strata/testutil"
)

// paxEntry is a PAX extended header holding records, written by hand (so
// that values archive/tar refuses to write, such as NUL bytes, get in),
// then hdr as a USTAR entry without data, then the end of the archive.
func paxEntry(records map[string]string, hdr tar.Header) []byte {
	return paxRaw(testutil.PAXRecords(records), hdr)
}

// paxRaw is paxEntry with the extended header's body given as bytes.
func paxRaw(body []byte, hdr tar.Header) []byte {
	var out bytes.Buffer
	x := testutil.USTARBlock(tar.Header{Name: "PaxHeaders/x", Typeflag: tar.TypeXHeader,
		Size: int64(len(body)), Mode: 0o644})
	out.Write(x[:])
	out.Write(body)
	out.Write(make([]byte, pad(len(body))))
	if hdr.Mode == 0 {
		hdr.Mode = 0o644
	}
	hdr.ModTime = testutil.DefaultMTime
	h := testutil.USTARBlock(hdr)
	out.Write(h[:])
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

// rawEntries writes headers as USTAR blocks without archive/tar's checks,
// each followed by its data (padded), then the end of the archive.
func rawEntries(entries ...rawEntry) []byte {
	var out bytes.Buffer
	for _, e := range entries {
		if e.hdr.Mode == 0 {
			e.hdr.Mode = 0o644
		}
		e.hdr.ModTime = testutil.DefaultMTime
		h := testutil.USTARBlock(e.hdr)
		out.Write(h[:])
		out.Write(e.data)
		out.Write(make([]byte, pad(len(e.data))))
	}
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

type rawEntry struct {
	hdr  tar.Header
	data []byte
}

func pad(n int) int { return (512 - n%512) % 512 }

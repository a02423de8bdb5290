// Package tarsplit reads and writes tar-split records: the JSON lines of
// github.com/vbatts/tar-split's storage.Entry that containers/storage keeps
// as <id>.tar-split.gz to rebuild a layer tar byte for byte.
//
// The format is tar-split's own; what differs from its packer and unpacker
// is that a repeated path is accepted. The apply rules let a later entry for
// a directory update its metadata (DESIGN.md, "Duplicate entries"), and the
// applier rejects every other repeated path itself, so the record must be
// able to hold such a tar and give it back unchanged.
package tarsplit

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/vbatts/tar-split/tar/storage"
)

// Packer writes entries as JSON lines, numbering them in order.
type Packer struct {
	w   io.Writer
	buf []byte
	pos int
}

// NewPacker returns a Packer writing to w.
func NewPacker(w io.Writer) *Packer {
	return &Packer{w: w}
}

// AddEntry writes e and returns its position. A name that is not valid
// UTF-8 is stored in name_raw, as tar-split does.
func (p *Packer) AddEntry(e storage.Entry) (int, error) {
	if e.Name != "" && !utf8.ValidString(e.Name) {
		e.NameRaw = []byte(e.Name)
		e.Name = ""
	}
	e.Position = p.pos
	p.buf = appendEntry(p.buf[:0], &e)
	if _, err := p.w.Write(p.buf); err != nil {
		return -1, err
	}
	p.pos++
	return e.Position, nil
}

// appendEntry appends e as one JSON line, byte for byte what
// encoding/json's Encoder writes for it (a recorder writes two entries
// per tar entry, and reflection was most of their cost).
func appendEntry(b []byte, e *storage.Entry) []byte {
	b = append(b, `{"type":`...)
	b = strconv.AppendInt(b, int64(e.Type), 10)
	if e.Name != "" {
		b = appendString(append(b, `,"name":`...), e.Name)
	}
	if len(e.NameRaw) > 0 {
		b = appendBase64(append(b, `,"name_raw":`...), e.NameRaw)
	}
	if e.Size != 0 {
		b = strconv.AppendInt(append(b, `,"size":`...), e.Size, 10)
	}
	b = append(b, `,"payload":`...)
	if e.Payload == nil {
		b = append(b, "null"...)
	} else {
		b = appendBase64(b, e.Payload)
	}
	b = strconv.AppendInt(append(b, `,"position":`...), int64(e.Position), 10)
	return append(b, "}\n"...)
}

func appendBase64(b, data []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, data)
	return append(b, '"')
}

// appendString quotes s as encoding/json does; strings with characters it
// escapes (quotes, backslashes, controls, HTML's <, > and &, non-ASCII)
// are left to it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // not for a string
				panic(err)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Unpacker reads entries written by Packer or by tar-split's JSON packer.
type Unpacker struct {
	dec *json.Decoder
}

// NewUnpacker returns an Unpacker reading from r.
func NewUnpacker(r io.Reader) *Unpacker {
	return &Unpacker{dec: json.NewDecoder(r)}
}

// Next returns the next entry, or io.EOF after the last.
func (u *Unpacker) Next() (*storage.Entry, error) {
	var e storage.Entry
	if err := u.dec.Decode(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

var (
	_ storage.Packer   = (*Packer)(nil)
	_ storage.Unpacker = (*Unpacker)(nil)
)

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
	"encoding/json"
	"io"
	"unicode/utf8"

	"github.com/vbatts/tar-split/tar/storage"
)

// Packer writes entries as JSON lines, numbering them in order.
type Packer struct {
	enc *json.Encoder
	pos int
}

// NewPacker returns a Packer writing to w.
func NewPacker(w io.Writer) *Packer {
	return &Packer{enc: json.NewEncoder(w)}
}

// AddEntry writes e and returns its position. A name that is not valid
// UTF-8 is stored in name_raw, as tar-split does.
func (p *Packer) AddEntry(e storage.Entry) (int, error) {
	if e.Name != "" && !utf8.ValidString(e.Name) {
		e.NameRaw = []byte(e.Name)
		e.Name = ""
	}
	e.Position = p.pos
	if err := p.enc.Encode(e); err != nil {
		return -1, err
	}
	p.pos++
	return e.Position, nil
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

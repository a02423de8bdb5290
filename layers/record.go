package layers

import (
	"encoding/json"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/internal/compression"
)

// Compression is how a layer's diff was compressed when it was received;
// the values are the ones layers.json stores.
type Compression int

// The compression values of a layer record.
const (
	Uncompressed Compression = Compression(compression.None)
	Bzip2        Compression = Compression(compression.Bzip2)
	Gzip         Compression = Compression(compression.Gzip)
	Xz           Compression = Compression(compression.Xz)
	Zstd         Compression = Compression(compression.Zstd)
)

// String names the compression as tools call it.
func (c Compression) String() string { return compression.Algorithm(c).String() }

// IDMap maps a range of ids inside a layer to ids on the host.
type IDMap struct {
	ContainerID int `json:"container_id"`
	HostID      int `json:"host_id"`
	Size        int `json:"size"`
}

// Flag names strata reads or writes in a record's flags.
const (
	// flagIncomplete marks a layer being created or deleted; a store
	// opened read-write removes such layers (a crash interrupted them).
	flagIncomplete = "incomplete"
	// flagReadOnly marks an image layer, which is never mounted writable.
	flagReadOnly = "read-only"
	// flagExpectedDiffID is the uncompressed digest an Additional Layer
	// Store promised for a layer whose diff-digest it did not know.
	flagExpectedDiffID = "expected-layer-diffid"
)

// Layer is one record of layers.json: a layer's identity, parent and the
// digests and sizes of the diff it was created from. Fields other programs
// write and strata does not know survive a rewrite of the file.
type Layer struct {
	ID                 string         `json:"id"`
	Names              []string       `json:"names,omitempty"`
	Parent             string         `json:"parent,omitempty"`
	Metadata           string         `json:"metadata,omitempty"`
	MountLabel         string         `json:"mountlabel,omitempty"`
	Created            time.Time      `json:"created,omitempty"`
	CompressedDigest   digest.Digest  `json:"compressed-diff-digest,omitempty"`
	CompressedSize     int64          `json:"compressed-size,omitempty"`
	UncompressedDigest digest.Digest  `json:"diff-digest,omitempty"`
	UncompressedSize   int64          `json:"diff-size,omitempty"`
	TOCDigest          digest.Digest  `json:"toc-digest,omitempty"`
	CompressionType    Compression    `json:"compression,omitempty"`
	UIDs               []uint32       `json:"uidset,omitempty"`
	GIDs               []uint32       `json:"gidset,omitempty"`
	Flags              map[string]any `json:"flags,omitempty"`
	UIDMap             []IDMap        `json:"uidmap,omitempty"`
	GIDMap             []IDMap        `json:"gidmap,omitempty"`
	BigDataNames       []string       `json:"big-data-names,omitempty"`

	// ReadOnly is true for image layers (Flags["read-only"] == true): they
	// are mounted read-only whatever the caller asks.
	ReadOnly bool `json:"-"`

	// extra holds the JSON fields of the record strata does not know, so
	// that saving the file keeps what another program wrote.
	extra map[string]json.RawMessage

	// enc is the record's JSON as last saved or read and encodedFrom a
	// copy of the fields it was made from (see encoded); clones have
	// neither.
	enc         []byte
	encodedFrom *Layer
}

// layerFields is Layer without its JSON methods.
type layerFields Layer

// knownFields lists the JSON names of Layer's fields.
var knownFields = map[string]bool{
	"id": true, "names": true, "parent": true, "metadata": true, "mountlabel": true,
	"created": true, "compressed-diff-digest": true, "compressed-size": true,
	"diff-digest": true, "diff-size": true, "toc-digest": true, "compression": true,
	"uidset": true, "gidset": true, "flags": true, "uidmap": true, "gidmap": true,
	"big-data-names": true,
}

// UnmarshalJSON reads a record, keeping the fields it does not know. It is
// the plain encoding/json reading that loading layers.json falls back to
// for a record its one-pass reader leaves alone (see decodeRecords).
func (l *Layer) UnmarshalJSON(data []byte) error {
	var fields layerFields
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	for name := range all {
		if knownFields[name] {
			delete(all, name)
		}
	}
	*l = Layer(fields)
	if len(all) > 0 {
		l.extra = all
	}
	l.ReadOnly = l.flagSet(flagReadOnly)
	return nil
}

// MarshalJSON writes the record: the known fields in declaration order,
// then the unknown ones kept from the file, sorted by name.
func (l Layer) MarshalJSON() ([]byte, error) {
	return l.appendJSON(nil)
}

// flagSet reports whether flag name is the boolean true.
func (l *Layer) flagSet(name string) bool {
	v, ok := l.Flags[name].(bool)
	return ok && v
}

// setFlag sets or (with value false) removes a boolean flag.
func (l *Layer) setFlag(name string, value bool) {
	if !value {
		delete(l.Flags, name)
		if len(l.Flags) == 0 {
			l.Flags = nil
		}
		return
	}
	if l.Flags == nil {
		l.Flags = map[string]any{}
	}
	l.Flags[name] = true
}

// incomplete reports whether the layer is still being created or deleted.
func (l *Layer) incomplete() bool { return l.flagSet(flagIncomplete) }

// clone returns a deep copy, so callers of the public methods never share
// the store's records.
func (l *Layer) clone() *Layer {
	c := *l
	c.enc, c.encodedFrom = nil, nil
	c.Names = append([]string(nil), l.Names...)
	c.UIDs = append([]uint32(nil), l.UIDs...)
	c.GIDs = append([]uint32(nil), l.GIDs...)
	c.UIDMap = append([]IDMap(nil), l.UIDMap...)
	c.GIDMap = append([]IDMap(nil), l.GIDMap...)
	c.BigDataNames = append([]string(nil), l.BigDataNames...)
	if l.Flags != nil {
		c.Flags = make(map[string]any, len(l.Flags))
		for k, v := range l.Flags {
			c.Flags[k] = v
		}
	}
	if l.extra != nil {
		c.extra = make(map[string]json.RawMessage, len(l.extra))
		for k, v := range l.extra {
			c.extra[k] = append(json.RawMessage(nil), v...)
		}
	}
	return &c
}

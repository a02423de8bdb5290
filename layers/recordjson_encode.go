package layers

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
)

// Writing layers.json fast. appendJSON writes a record byte for byte as
// encoding/json wrote it through the former MarshalJSON (known fields in
// declaration order with their omitempty rules, then the unknown fields
// sorted by name, compacted, HTML-escaped), but appends to one buffer
// instead of compacting every record a second time. Values it has no short
// way for (strings needing escapes, non-scalar or float flags) go through
// encoding/json one by one.
//
// A save in a big store mostly rewrites records that did not change, so
// each record keeps its last encoding and a deep copy of the fields it was
// made from; encoded reuses it while the fields still equal the copy.
// Comparing instead of marking records dirty means no code that changes a
// record can forget to say so. A record read by the one-pass reader starts
// with its bytes in the file as its encoding: they decode to the same
// fields, though their spacing, key order or escapes may be another
// writer's.

// encodeRecords returns the content of layers.json for records.
func encodeRecords(records []*Layer) ([]byte, error) {
	size := 2
	for _, l := range records {
		enc, err := l.encoded()
		if err != nil {
			return nil, err
		}
		size += len(enc) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, l := range records {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, l.enc...)
	}
	return append(buf, ']'), nil
}

// encoded returns l's JSON, reusing the last encoding while l's fields are
// those it was made from.
func (l *Layer) encoded() ([]byte, error) {
	if l.encodedFrom != nil && l.encodedFrom.sameFields(l) {
		return l.enc, nil
	}
	enc, err := l.appendJSON(nil)
	if err != nil {
		return nil, err
	}
	l.enc, l.encodedFrom = enc, l.clone()
	return enc, nil
}

// appendJSON appends l's JSON to b.
func (l *Layer) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = appendString(b, l.ID)
	if len(l.Names) > 0 {
		b = appendList(append(b, `,"names":`...), l.Names, appendString)
	}
	b = appendStringField(b, `,"parent":`, l.Parent)
	b = appendStringField(b, `,"metadata":`, l.Metadata)
	b = appendStringField(b, `,"mountlabel":`, l.MountLabel)

	// omitempty does not apply to a struct: the zero time is written too.
	b = append(b, `,"created":"`...)
	if b, err = l.Created.AppendText(b); err != nil {
		_, err = l.Created.MarshalJSON()
		return nil, err
	}
	b = append(b, '"')

	b = appendStringField(b, `,"compressed-diff-digest":`, string(l.CompressedDigest))
	b = appendIntField(b, `,"compressed-size":`, l.CompressedSize)
	b = appendStringField(b, `,"diff-digest":`, string(l.UncompressedDigest))
	b = appendIntField(b, `,"diff-size":`, l.UncompressedSize)
	b = appendStringField(b, `,"toc-digest":`, string(l.TOCDigest))
	b = appendIntField(b, `,"compression":`, int64(l.CompressionType))
	if len(l.UIDs) > 0 {
		b = appendList(append(b, `,"uidset":`...), l.UIDs, appendUint32)
	}
	if len(l.GIDs) > 0 {
		b = appendList(append(b, `,"gidset":`...), l.GIDs, appendUint32)
	}
	if len(l.Flags) > 0 {
		if b, err = appendFlags(append(b, `,"flags":`...), l.Flags); err != nil {
			return nil, err
		}
	}
	if len(l.UIDMap) > 0 {
		b = appendList(append(b, `,"uidmap":`...), l.UIDMap, appendIDMap)
	}
	if len(l.GIDMap) > 0 {
		b = appendList(append(b, `,"gidmap":`...), l.GIDMap, appendIDMap)
	}
	if len(l.BigDataNames) > 0 {
		b = appendList(append(b, `,"big-data-names":`...), l.BigDataNames, appendString)
	}
	if b, err = l.appendExtra(b); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendExtra appends the unknown fields, sorted by name, compacted and
// HTML-escaped as encoding/json does with a marshaler's output.
func (l *Layer) appendExtra(b []byte) ([]byte, error) {
	if len(l.extra) == 0 {
		return b, nil
	}
	names := make([]string, 0, len(l.extra))
	for name := range l.extra {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b = appendString(append(b, ','), name)
		b = append(b, ':')
		raw := l.extra[name]
		if !needsCompacting(raw) {
			b = append(b, raw...)
			continue
		}
		var compact, escaped bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return nil, err
		}
		json.HTMLEscape(&escaped, compact.Bytes())
		b = append(b, escaped.Bytes()...)
	}
	return b, nil
}

// needsCompacting reports whether raw may hold white space between tokens
// or characters encoding/json escapes for HTML (<, >, &, U+2028, U+2029).
func needsCompacting(raw []byte) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xe2:
			return true
		}
	}
	return false
}

func appendStringField(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

func appendIntField(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), n, 10)
}

// appendString appends s quoted. Printable ASCII other than the characters
// encoding/json escapes is copied; any other string is encoded by
// encoding/json (control characters, HTML characters, invalid UTF-8,
// U+2028 and U+2029 all have their rules there).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always encodes
			return append(b, quoted...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendList appends list as a JSON array, each element by appendElem.
func appendList[T any](b []byte, list []T, appendElem func([]byte, T) []byte) []byte {
	b = append(b, '[')
	for i, v := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendElem(b, v)
	}
	return append(b, ']')
}

func appendUint32(b []byte, n uint32) []byte { return strconv.AppendUint(b, uint64(n), 10) }

func appendIDMap(b []byte, m IDMap) []byte {
	b = strconv.AppendInt(append(b, `{"container_id":`...), int64(m.ContainerID), 10)
	b = strconv.AppendInt(append(b, `,"host_id":`...), int64(m.HostID), 10)
	b = strconv.AppendInt(append(b, `,"size":`...), int64(m.Size), 10)
	return append(b, '}')
}

// appendFlags appends the flags object, keys sorted as encoding/json sorts
// a map's.
func appendFlags(b []byte, flags map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		switch v := flags[k].(type) {
		case nil:
			b = append(b, "null"...)
		case bool:
			b = strconv.AppendBool(b, v)
		case string:
			b = appendString(b, v)
		default:
			enc, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(b, enc...)
		}
	}
	return append(b, '}'), nil
}

// sameFields reports whether l and o would encode alike: every JSON field
// equal. A flag value that is not a scalar counts as changed.
func (l *Layer) sameFields(o *Layer) bool {
	if l.ID != o.ID || l.Parent != o.Parent || l.Metadata != o.Metadata ||
		l.MountLabel != o.MountLabel || l.Created != o.Created ||
		l.CompressedDigest != o.CompressedDigest || l.CompressedSize != o.CompressedSize ||
		l.UncompressedDigest != o.UncompressedDigest || l.UncompressedSize != o.UncompressedSize ||
		l.TOCDigest != o.TOCDigest || l.CompressionType != o.CompressionType {
		return false
	}
	if !slices.Equal(l.Names, o.Names) || !slices.Equal(l.UIDs, o.UIDs) ||
		!slices.Equal(l.GIDs, o.GIDs) || !slices.Equal(l.UIDMap, o.UIDMap) ||
		!slices.Equal(l.GIDMap, o.GIDMap) || !slices.Equal(l.BigDataNames, o.BigDataNames) {
		return false
	}
	if len(l.Flags) != len(o.Flags) || len(l.extra) != len(o.extra) {
		return false
	}
	for k, v := range l.Flags {
		w, ok := o.Flags[k]
		if !ok {
			return false
		}
		switch v.(type) {
		case nil, bool, string, float64:
			if v != w { // w of another type compares unequal, never panics
				return false
			}
		default:
			return false
		}
	}
	for k, v := range l.extra {
		w, ok := o.extra[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

package layers

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	digest "github.com/opencontainers/go-digest"
)

// Reading layers.json fast. A store of 10,000 layers is opened by every
// command, and decoding it with encoding/json costs two passes per record
// (the known fields, then a map to keep the unknown ones) after a syntax
// pass over the whole file. recordReader reads the flat record schema in
// one pass: known keys straight into the Layer, unknown keys kept as their
// raw value span. It does not try to be a JSON decoder: anything it is not
// sure it reads exactly as Layer.UnmarshalJSON would (escapes in keys, keys
// that differ from a known one only in case, duplicate keys, numbers that
// are not plain integers, nested values of unusual shape) sends that
// record to Layer.UnmarshalJSON, and a file it cannot delimit goes whole to
// encoding/json, so errors read as they did.

// decodeRecords parses the content of layers.json into its records; a JSON
// null record is a nil element.
func decodeRecords(content []byte) ([]*Layer, error) {
	if records, ok, err := fastDecodeRecords(content); ok {
		return records, err
	}
	var records []*Layer
	err := json.Unmarshal(content, &records)
	return records, err
}

// fastDecodeRecords is decodeRecords' one-pass reader. ok is false when the
// file is not an array it can delimit (including any syntax error), so the
// caller should let encoding/json read (and judge) it.
func fastDecodeRecords(content []byte) (records []*Layer, ok bool, err error) {
	r := recordReader{data: content, text: string(content)}
	r.skipSpace()
	if !r.consume('[') {
		return nil, false, nil
	}
	records = make([]*Layer, 0, len(content)/512+1)
	r.skipSpace()
	if r.consume(']') {
		return records, r.atEnd(), nil
	}
	for {
		r.skipSpace()
		start := r.pos
		var l *Layer
		if !r.consumeWord("null") {
			l = &Layer{}
			if r.readRecord(l) {
				// The record's own bytes serve as its encoding until it
				// changes, so that a process's first save does not encode
				// every record (see encoded).
				l.enc, l.encodedFrom = content[start:r.pos:r.pos], l.clone()
			} else {
				r.pos = start
				if !r.skipValue() {
					return nil, false, nil
				}
				*l = Layer{}
				if err == nil {
					err = json.Unmarshal(content[start:r.pos], l)
				}
			}
		}
		records = append(records, l)
		r.skipSpace()
		if r.consume(']') {
			break
		}
		if !r.consume(',') {
			return nil, false, nil
		}
	}
	if !r.atEnd() {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return records, true, nil
}

// recordReader walks data (and text, the same bytes as a string, so that
// strings read from the file are substrings of one allocation).
type recordReader struct {
	data []byte
	text string
	pos  int
}

func (r *recordReader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// atEnd reports whether only white space is left.
func (r *recordReader) atEnd() bool {
	r.skipSpace()
	return r.pos == len(r.data)
}

func (r *recordReader) consume(c byte) bool {
	if r.pos < len(r.data) && r.data[r.pos] == c {
		r.pos++
		return true
	}
	return false
}

func (r *recordReader) consumeWord(w string) bool {
	if strings.HasPrefix(r.text[r.pos:], w) {
		r.pos += len(w)
		return true
	}
	return false
}

func (r *recordReader) peek() byte {
	if r.pos < len(r.data) {
		return r.data[r.pos]
	}
	return 0
}

// knownFieldBits numbers the known fields, to catch a key given twice.
var knownFieldBits = func() map[string]uint32 {
	m := make(map[string]uint32, len(knownFields))
	i := 0
	for name := range knownFields {
		m[name] = 1 << i
		i++
	}
	return m
}()

// readRecord reads one record object into l. It returns false when the
// record needs encoding/json; r.pos is then anywhere inside it.
func (r *recordReader) readRecord(l *Layer) bool {
	var seen uint32
	ok := r.objectMembers(func(key string) bool {
		bit, known := knownFieldBits[key]
		if !known {
			return r.readUnknown(l, key)
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return r.readKnown(l, key)
	})
	if !ok {
		return false
	}
	l.ReadOnly = l.flagSet(flagReadOnly)
	return true
}

// objectMembers reads an object whose keys are plain strings (see
// plainString), calling each for every member with r at its value.
func (r *recordReader) objectMembers(each func(key string) bool) bool {
	if !r.consume('{') {
		return false
	}
	r.skipSpace()
	if r.consume('}') {
		return true
	}
	for {
		r.skipSpace()
		key, ok := r.plainString()
		if !ok {
			return false
		}
		r.skipSpace()
		if !r.consume(':') {
			return false
		}
		r.skipSpace()
		if !each(key) {
			return false
		}
		r.skipSpace()
		if r.consume('}') {
			return true
		}
		if !r.consume(',') {
			return false
		}
	}
}

// readKnown reads the value of known field key into l.
func (r *recordReader) readKnown(l *Layer, key string) bool {
	var ok bool
	switch key {
	case "id":
		l.ID, ok = r.stringValue()
	case "names":
		l.Names, ok = r.stringArray()
	case "parent":
		l.Parent, ok = r.stringValue()
	case "metadata":
		l.Metadata, ok = r.stringValue()
	case "mountlabel":
		l.MountLabel, ok = r.stringValue()
	case "created":
		start := r.pos
		if !r.skipValue() {
			return false
		}
		// Time's own method, with the raw value, as encoding/json calls it.
		return l.Created.UnmarshalJSON(r.data[start:r.pos]) == nil
	case "compressed-diff-digest":
		l.CompressedDigest, ok = r.digestValue()
	case "compressed-size":
		l.CompressedSize, ok = r.intValue()
	case "diff-digest":
		l.UncompressedDigest, ok = r.digestValue()
	case "diff-size":
		l.UncompressedSize, ok = r.intValue()
	case "toc-digest":
		l.TOCDigest, ok = r.digestValue()
	case "compression":
		var n int64
		n, ok = r.intValue()
		l.CompressionType = Compression(n)
	case "uidset":
		l.UIDs, ok = r.uint32Array()
	case "gidset":
		l.GIDs, ok = r.uint32Array()
	case "flags":
		l.Flags, ok = r.flagsValue()
	case "uidmap":
		l.UIDMap, ok = r.idMapArray()
	case "gidmap":
		l.GIDMap, ok = r.idMapArray()
	case "big-data-names":
		l.BigDataNames, ok = r.stringArray()
	}
	return ok
}

// readUnknown keeps the raw value of a field strata does not know. A key
// that encoding/json would match to a known field (it ignores case, and
// folds some non-ASCII letters) is left to encoding/json.
func (r *recordReader) readUnknown(l *Layer, key string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			return false
		}
	}
	for name := range knownFields {
		if strings.EqualFold(key, name) {
			return false
		}
	}
	if _, dup := l.extra[key]; dup {
		return false
	}
	start := r.pos
	if !r.skipValue() {
		return false
	}
	if l.extra == nil {
		l.extra = map[string]json.RawMessage{}
	}
	l.extra[key] = append(json.RawMessage(nil), r.data[start:r.pos]...)
	return true
}

// plainString reads a string without escapes whose bytes are valid UTF-8:
// its value is its text.
func (r *recordReader) plainString() (string, bool) {
	start := r.pos
	escaped, valid, ok := r.scanString()
	if !ok || escaped || !valid {
		return "", false
	}
	return r.text[start+1 : r.pos-1], true
}

// stringValue reads a string or null (""); a string with escapes or
// invalid UTF-8 is decoded by encoding/json.
func (r *recordReader) stringValue() (string, bool) {
	if r.consumeWord("null") {
		return "", true
	}
	start := r.pos
	escaped, valid, ok := r.scanString()
	if !ok {
		return "", false
	}
	if !escaped && valid {
		return r.text[start+1 : r.pos-1], true
	}
	var s string
	if err := json.Unmarshal(r.data[start:r.pos], &s); err != nil {
		return "", false
	}
	return s, true
}

// digestValue reads a digest as stringValue reads a string; it is not
// validated (encoding/json does not validate it either).
func (r *recordReader) digestValue() (digest.Digest, bool) {
	s, ok := r.stringValue()
	return digest.Digest(s), ok
}

// number reads a JSON number and returns its text.
func (r *recordReader) number() (string, bool) {
	start := r.pos
	if !r.scanNumber() {
		return "", false
	}
	return r.text[start:r.pos], true
}

// intValue reads a plain integer or null (0), as encoding/json fills an
// int64 or int.
func (r *recordReader) intValue() (int64, bool) {
	if r.consumeWord("null") {
		return 0, true
	}
	s, ok := r.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// readArray reads an array (null is nil, [] is empty), calling elem for
// every element with r at its first byte.
func readArray[T any](r *recordReader, elem func() (T, bool)) ([]T, bool) {
	if r.consumeWord("null") {
		return nil, true
	}
	if !r.consume('[') {
		return nil, false
	}
	list := []T{}
	r.skipSpace()
	if r.consume(']') {
		return list, true
	}
	for {
		r.skipSpace()
		v, ok := elem()
		if !ok {
			return nil, false
		}
		list = append(list, v)
		r.skipSpace()
		if r.consume(']') {
			return list, true
		}
		if !r.consume(',') {
			return nil, false
		}
	}
}

// stringArray reads an array of strings.
func (r *recordReader) stringArray() ([]string, bool) {
	return readArray(r, func() (string, bool) {
		if r.peek() != '"' {
			return "", false
		}
		return r.stringValue()
	})
}

// uint32Array reads an array of plain integers that fit a uint32.
func (r *recordReader) uint32Array() ([]uint32, bool) {
	return readArray(r, func() (uint32, bool) {
		s, ok := r.number()
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseUint(s, 10, 32)
		return uint32(n), err == nil
	})
}

// idMapArray reads an array of id mappings, each an object of exactly the
// known keys (at most once each) with integer or null values.
func (r *recordReader) idMapArray() ([]IDMap, bool) {
	return readArray(r, r.idMap)
}

func (r *recordReader) idMap() (IDMap, bool) {
	var m IDMap
	var seen [3]bool
	ok := r.objectMembers(func(key string) bool {
		var field *int
		var i int
		switch key {
		case "container_id":
			field, i = &m.ContainerID, 0
		case "host_id":
			field, i = &m.HostID, 1
		case "size":
			field, i = &m.Size, 2
		default:
			return false
		}
		if seen[i] {
			return false
		}
		seen[i] = true
		n, ok := r.intValue()
		if !ok {
			return false
		}
		*field = int(n)
		return true
	})
	return m, ok
}

// flagsValue reads the flags object as encoding/json fills a
// map[string]any.
func (r *recordReader) flagsValue() (map[string]any, bool) {
	if r.consumeWord("null") {
		return nil, true
	}
	flags := map[string]any{}
	ok := r.objectMembers(func(key string) bool {
		v, ok := r.flagValue()
		if !ok {
			return false
		}
		flags[key] = v
		return true
	})
	if !ok {
		return nil, false
	}
	return flags, true
}

// flagValue reads one flag's value: strings, booleans, null, float64
// numbers, and nested values through encoding/json itself.
func (r *recordReader) flagValue() (v any, ok bool) {
	switch c := r.peek(); {
	case c == '"':
		return r.stringValue()
	case r.consumeWord("true"):
		return true, true
	case r.consumeWord("false"):
		return false, true
	case r.consumeWord("null"):
		return nil, true
	case c == '-' || (c >= '0' && c <= '9'):
		s, ok := r.number()
		if !ok {
			return nil, false
		}
		n, err := strconv.ParseFloat(s, 64)
		return n, err == nil
	}
	start := r.pos
	if !r.skipValue() {
		return nil, false
	}
	if err := json.Unmarshal(r.data[start:r.pos], &v); err != nil {
		return nil, false
	}
	return v, true
}

package archive

import (
	"bytes"
	"strconv"
	"strings"
)

// headerError describes a failure to read a tar header: raw holds the
// bytes read for it, last is the previous entry's name and read tells
// whether there was one. When the failing header is a PAX header naming a
// path (one the tar reader refuses, say for a NUL), the error names that
// path; otherwise it places the failure after the last entry, or before
// the first.
func headerError(raw []byte, last string, read bool, err error) *EntryError {
	if name, ok := paxPath(raw); ok {
		return &EntryError{Name: name, Err: invalid("reading its header: %w", err)}
	}
	if !read {
		return &EntryError{BeforeFirst: true, Err: invalid("reading tar: %w", err)}
	}
	return &EntryError{Name: last, Err: invalid("reading tar after this entry: %w", err)}
}

// paxPath finds the "path" record of a PAX extended header ('x') among the
// header blocks in raw.
func paxPath(raw []byte) (string, bool) {
	for len(raw) >= 512 {
		hdr, body := raw[:512], raw[512:]
		size, err := strconv.ParseInt(strings.Trim(string(hdr[124:136]), " \x00"), 8, 64)
		if err != nil || size < 0 || size > int64(len(body)) {
			return "", false
		}
		if hdr[156] == 'x' {
			if name, ok := paxRecord(body[:size], "path"); ok {
				return name, true
			}
		}
		padded := (size + 511) &^ 511
		if padded > int64(len(body)) {
			return "", false
		}
		raw = body[padded:]
	}
	return "", false
}

// paxRecord returns the value of key among PAX records ("LEN key=value\n").
func paxRecord(recs []byte, key string) (string, bool) {
	for len(recs) > 0 {
		sp := bytes.IndexByte(recs, ' ')
		if sp <= 0 {
			return "", false
		}
		n, err := strconv.Atoi(string(recs[:sp]))
		if err != nil || n <= sp+1 || n > len(recs) {
			return "", false
		}
		k, v, ok := bytes.Cut(bytes.TrimSuffix(recs[sp+1:n], []byte("\n")), []byte("="))
		if ok && string(k) == key {
			return string(v), true
		}
		recs = recs[n:]
	}
	return "", false
}

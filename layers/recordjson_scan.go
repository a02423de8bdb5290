package layers

import "unicode/utf8"

// The syntax side of recordReader: it delimits strings, numbers and whole
// values exactly as RFC 8259 allows, so that whatever it hands on is valid
// JSON and whatever it rejects goes to encoding/json to be judged.

// maxNesting is encoding/json's nesting limit; deeper values are left to
// it (it rejects them).
const maxNesting = 10000

// scanString moves past the string at r.pos. escaped reports a backslash
// in it, valid that its bytes are valid UTF-8; ok is false on bad syntax.
func (r *recordReader) scanString() (escaped, valid, ok bool) {
	if !r.consume('"') {
		return false, false, false
	}
	start := r.pos
	ascii := true
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		switch {
		case c == '"':
			r.pos++
			valid = ascii || utf8.Valid(r.data[start:r.pos-1])
			return escaped, valid, true
		case c == '\\':
			escaped = true
			if !r.scanEscape() {
				return false, false, false
			}
		case c < 0x20:
			return false, false, false
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			r.pos++
		}
	}
	return false, false, false
}

// scanEscape moves past the escape sequence at r.pos.
func (r *recordReader) scanEscape() bool {
	r.pos++ // the backslash
	if r.pos >= len(r.data) {
		return false
	}
	switch r.data[r.pos] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		r.pos++
		return true
	case 'u':
		if r.pos+5 > len(r.data) {
			return false
		}
		for _, h := range r.data[r.pos+1 : r.pos+5] {
			if !isHex(h) {
				return false
			}
		}
		r.pos += 5
		return true
	}
	return false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (r *recordReader) digits() int {
	n := 0
	for r.pos < len(r.data) && r.data[r.pos] >= '0' && r.data[r.pos] <= '9' {
		r.pos++
		n++
	}
	return n
}

// scanNumber moves past the number at r.pos:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *recordReader) scanNumber() bool {
	r.consume('-')
	switch c := r.peek(); {
	case c == '0':
		r.pos++
	case c >= '1' && c <= '9':
		r.digits()
	default:
		return false
	}
	if r.consume('.') && r.digits() == 0 {
		return false
	}
	if c := r.peek(); c == 'e' || c == 'E' {
		r.pos++
		if c := r.peek(); c == '+' || c == '-' {
			r.pos++
		}
		if r.digits() == 0 {
			return false
		}
	}
	return true
}

// skipValue moves past the value at r.pos. Values are counted as nested
// in a record in the array (depth 3), which is deeper than a record
// itself: at worst a record at the limit goes to encoding/json.
func (r *recordReader) skipValue() bool { return r.skipNested(3) }

func (r *recordReader) skipNested(depth int) bool {
	switch c := r.peek(); {
	case c == '"':
		_, _, ok := r.scanString()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		return r.scanNumber()
	case c == '{' || c == '[':
		if depth > maxNesting {
			return false
		}
		return r.skipContainer(c, depth)
	}
	return r.consumeWord("true") || r.consumeWord("false") || r.consumeWord("null")
}

// skipContainer moves past the object or array opened by open at r.pos.
func (r *recordReader) skipContainer(open byte, depth int) bool {
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	r.pos++
	r.skipSpace()
	if r.consume(closing) {
		return true
	}
	for {
		r.skipSpace()
		if open == '{' {
			if _, _, ok := r.scanString(); !ok {
				return false
			}
			r.skipSpace()
			if !r.consume(':') {
				return false
			}
			r.skipSpace()
		}
		if !r.skipNested(depth + 1) {
			return false
		}
		r.skipSpace()
		if r.consume(closing) {
			return true
		}
		if !r.consume(',') {
			return false
		}
	}
}

package mcp

import (
	"fmt"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is how deeply objects and arrays may nest in a body, counting the
// top-level object as 1. It keeps the scanner's recursion bounded; MCP
// messages nest a handful of levels, tool arguments a few more.
const MaxDepth = 64

// scanner checks JSON syntax (RFC 8259, as encoding/json accepts it, plus
// valid UTF-8 in strings) over b. Its methods record the first syntax error
// and then do nothing, so callers check s.err once after a sequence of calls.
type scanner struct {
	b     []byte
	i     int // next byte to read
	depth int
	err   error
}

func (s *scanner) fail(reason string) {
	if s.err == nil {
		s.err = fmt.Errorf("%w: %s at offset %d", ErrParse, reason, s.i)
	}
}

// ws skips JSON white space.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or fails at the end of
// the body and returns 0.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		s.fail("unexpected end of body")
		return 0
	}
	return s.b[s.i]
}

// value scans one JSON value after optional white space and returns where it
// starts; s.b[start:s.i] is then its raw text. For a string, escaped reports
// whether it contains backslash escapes.
func (s *scanner) value() (start int, escaped bool) {
	c := s.peek()
	start = s.i
	switch {
	case s.err != nil:
	case c == '"':
		escaped = s.str()
	case c == '{':
		s.object()
	case c == '[':
		s.array()
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == '-' || isDigit(c):
		s.number()
	default:
		s.fail("unexpected character")
	}
	return start, escaped
}

// open consumes the '{' or '[' at s.i and enters one nesting level.
func (s *scanner) open() bool {
	if s.depth++; s.depth > MaxDepth {
		s.err = fmt.Errorf("%w at offset %d", ErrTooDeep, s.i)
		return false
	}
	s.i++
	return true
}

// more is the member loop of an object whose '{' open consumed: it reports
// whether another member follows, consuming the ',' before it, and leaves
// s.i at the member's key. At the closing '}' it consumes it, leaves the
// nesting level and returns false. first is true right after the '{'.
func (s *scanner) more(first bool) bool {
	switch c := s.peek(); {
	case s.err != nil:
		return false
	case c == '}':
		s.i++
		s.depth--
		return false
	case c == ',' && !first:
		s.i++
		if s.peek() != '"' {
			s.fail("expected key")
			return false
		}
		return true
	case c == '"' && first:
		return true
	case first:
		s.fail("expected key or '}'")
		return false
	default:
		s.fail("expected ',' or '}'")
		return false
	}
}

// key scans a member's key and the ':' after it and returns the key
// unescaped, aliasing s.b when it has no escapes.
func (s *scanner) key() []byte {
	start := s.i
	escaped := s.str()
	end := s.i
	if s.err == nil && s.peek() != ':' {
		s.fail("expected ':'")
	}
	if s.err != nil {
		return nil
	}
	s.i++
	return content(s.b[start:end], escaped)
}

func (s *scanner) object() {
	if !s.open() {
		return
	}
	for first := true; s.more(first); first = false {
		s.key()
		s.value()
	}
}

func (s *scanner) array() {
	if !s.open() {
		return
	}
	if s.peek() == ']' {
		s.i++
		s.depth--
		return
	}
	for s.err == nil {
		s.value()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return
		default:
			s.fail("expected ',' or ']'")
		}
	}
}

func (s *scanner) literal(lit string) {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		s.fail("invalid literal")
		return
	}
	s.i += len(lit)
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. What may
// follow it (a delimiter or white space) is the caller's check.
func (s *scanner) number() {
	b, i := s.b, s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		i = digits(b, i)
	default:
		s.i = i
		s.fail("invalid number")
		return
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			s.i = i
			s.fail("invalid number")
			return
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.i = i
			s.fail("invalid number")
			return
		}
		i = digits(b, i)
	}
	s.i = i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// plain marks the bytes that stand for themselves inside a JSON string:
// ASCII from 0x20 except '"' and '\\'. Everything else needs a closer look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans the string whose '"' is at s.i and reports whether it has
// escapes.
func (s *scanner) str() (escaped bool) {
	b, i := s.b, s.i+1
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			s.i = i
			s.fail("unterminated string")
			return escaped
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return escaped
		case c == '\\':
			escaped = true
			switch {
			case i+1 < len(b) && isSimpleEscape(b[i+1]):
				i += 2
			case i+1 < len(b) && b[i+1] == 'u' && hex4(b[i+2:]) >= 0:
				i += 6
			default:
				s.i = i
				s.fail("invalid escape")
				return escaped
			}
		case c < 0x20:
			s.i = i
			s.fail("control character in string")
			return escaped
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				s.i = i
				s.fail("invalid UTF-8 in string")
				return escaped
			}
			i += n
		}
	}
}

func isSimpleEscape(c byte) bool {
	switch c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return true
	}
	return false
}

// hex4 parses the four hex digits at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// content returns the value of a scanned string given its raw text with the
// quotes: the bytes between them when it has no escapes, else a new
// unescaped copy.
func content(raw []byte, escaped bool) []byte {
	raw = raw[1 : len(raw)-1]
	if !escaped {
		return raw
	}
	return unescape(raw)
}

// unescape decodes the escapes of a string that str accepted. A \u escape of
// a UTF-16 surrogate that is not half of a valid pair becomes U+FFFD, as in
// encoding/json, so that a Go upstream and the filter read the same text.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != '\\' {
			out = append(out, b[i])
			i++
			continue
		}
		c := b[i+1]
		i += 2
		switch c {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(b[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
					r2 = hex4(b[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
					r = dec
					i += 6
				} else {
					r = unicode.ReplacementChar
				}
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, c)
		}
	}
	return out
}

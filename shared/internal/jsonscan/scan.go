// Package jsonscan is the strict JSON scanner under mcp.Classify and
// token.Verify. The filter must read a request body or a token exactly as
// encoding/json in a Go upstream (an MCP server, the manager's golang-jwt)
// would, and refuse what encoding/json resolves silently where another
// parser may resolve it otherwise: repeated keys and keys equal under case
// folding (encoding/json keeps the last and matches fields
// case-insensitively), and invalid UTF-8 (which it replaces). It does so
// without reflection, which costs encoding/json tens of microseconds a
// request in WebAssembly: it reads the bytes once, in place, and allocates
// only to unescape. It uses the standard library only and builds for
// GOOS=wasip1.
package jsonscan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is the JSON type of a value, as its first byte tells it.
type Kind uint8

// The kinds of JSON value. Invalid is what Peek returns where no value
// starts.
const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Object
	Array
)

// String returns the kind as error messages say it: "a string", "null".
func (k Kind) String() string {
	return [...]string{"invalid JSON", "null", "a boolean", "a number", "a string", "an object", "an array"}[k]
}

// kinds maps the first byte of a value to its kind.
var kinds = [256]Kind{'"': String, '{': Object, '[': Array, 't': Bool, 'f': Bool, 'n': Null, '-': Number,
	'0': Number, '1': Number, '2': Number, '3': Number, '4': Number, '5': Number, '6': Number, '7': Number, '8': Number, '9': Number}

// ErrTooDeep is the cause of an *Error for objects and arrays nested deeper
// than MaxDepth; the scanner stops there to keep its recursion bounded.
var ErrTooDeep = errors.New("jsonscan: nesting too deep")

// Error is where and why a Scanner refused its data: every error a Scanner
// returns of its own is an *Error. The data is not JSON to act on.
type Error struct {
	Offset  int    // in Data, of the byte where the Scanner stopped
	Reason  string // such as "invalid escape"
	tooDeep bool
}

// Error returns the reason and the offset, never the data.
// Error returns the reason and the offset, never the data.
func (e *Error) Error() string { return e.Reason + " at offset " + strconv.Itoa(e.Offset) }

// Unwrap returns ErrTooDeep when nesting is what is wrong, else nil.
func (e *Error) Unwrap() error {
	if e.tooDeep {
		return ErrTooDeep
	}
	return nil
}

// Scanner reads one JSON text (RFC 8259, as encoding/json accepts it) from
// Data, refusing invalid UTF-8 in strings and nesting deeper than MaxDepth.
// Set its fields before the first call; its zero position is the start of
// Data. Reading stops at the first error; a Scanner that returned one is
// done.
type Scanner struct {
	Data []byte
	// MaxDepth is how deeply objects and arrays may nest, counting the
	// outermost as 1.
	MaxDepth int
	// Strict also refuses what encoding/json reads in a way other parsers
	// may not: \u escapes of unpaired UTF-16 surrogates (which it reads as
	// U+FFFD), and objects, at any depth, with two keys equal under case
	// folding (see KeySet).
	Strict bool

	pos, depth int
}

// Offset returns the offset in Data of the next byte to read.
func (s *Scanner) Offset() int { return s.pos }

// Peek skips white space and returns the kind of the value that starts
// there: Invalid at the end of Data or at a byte no value starts with.
func (s *Scanner) Peek() Kind {
	s.space()
	if s.pos == len(s.Data) {
		return Invalid
	}
	return kinds[s.Data[s.pos]]
}

// Skip reads the next value whole, checking it, and returns its JSON text.
func (s *Scanner) Skip() ([]byte, error) {
	k := s.Peek()
	start := s.pos
	err := s.skip(k)
	return s.Data[start:s.pos], err
}

// Value reads the next value whole and returns its kind and text: the
// contents of a string, unescaped, and the JSON text of any other value.
// The contents of a string without escapes alias Data; unescaping
// allocates.
func (s *Scanner) Value() (Kind, []byte, error) {
	k := s.Peek()
	if k != String {
		raw, err := s.Skip()
		return k, raw, err
	}
	text, err := s.text()
	return k, text, err
}

// Object reads the object that is next, calling each for every member with
// its key, unescaped as Value unescapes a string, the offset in Data where
// the key starts, and the Scanner at the member's value, which each must
// read whole. It returns the first error, of the Scanner or of each.
func (s *Scanner) Object(each func(key []byte, at int) error) error {
	if s.Peek() != Object {
		return s.fail("expected an object")
	}
	return s.object(each)
}

// Array reads the array that is next, calling each with the Scanner at
// every element, which each must read whole. It returns the first error,
// of the Scanner or of each.
func (s *Scanner) Array(each func() error) error {
	if s.Peek() != Array {
		return s.fail("expected an array")
	}
	return s.array(each)
}

// End checks that only white space follows what was read.
func (s *Scanner) End() error {
	if s.space(); s.pos < len(s.Data) {
		return s.fail("data after the value")
	}
	return nil
}

func (s *Scanner) fail(reason string) error {
	return &Error{Offset: s.pos, Reason: reason}
}

func (s *Scanner) space() {
	for s.pos < len(s.Data) {
		switch s.Data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// next skips white space and returns the next byte, or 0 at the end.
func (s *Scanner) next() byte {
	if s.space(); s.pos < len(s.Data) {
		return s.Data[s.pos]
	}
	return 0
}

// skip reads a value of kind k, which Peek returned.
func (s *Scanner) skip(k Kind) error {
	switch k {
	case String:
		_, err := s.str()
		return err
	case Object:
		return s.object(nil)
	case Array:
		return s.array(nil)
	case Null:
		return s.literal("null")
	case Bool:
		if s.Data[s.pos] == 't' {
			return s.literal("true")
		}
		return s.literal("false")
	case Number:
		return s.number()
	}
	if s.pos == len(s.Data) {
		return s.fail("unexpected end of data")
	}
	return s.fail("unexpected character")
}

// open consumes the '{' or '[' at s.pos and enters one nesting level.
func (s *Scanner) open() error {
	if s.depth++; s.depth > s.MaxDepth {
		return &Error{Offset: s.pos, Reason: fmt.Sprintf("nesting deeper than %d", s.MaxDepth), tooDeep: true}
	}
	s.pos++
	return nil
}

// close consumes end, the '}' or ']' of the object or array being read, if
// it is next, and leaves its nesting level.
func (s *Scanner) close(end byte) bool {
	if s.next() != end {
		return false
	}
	s.pos++
	s.depth--
	return true
}

// object reads an object at its '{', calling each for every member or, when
// each is nil, skipping the members.
func (s *Scanner) object(each func(key []byte, at int) error) error {
	if !s.Strict {
		return s.members(each, nil)
	}
	var keys KeySet
	return s.members(each, &keys)
}

// members is object, refusing repeated keys when keys is not nil.
func (s *Scanner) members(each func(key []byte, at int) error, keys *KeySet) error {
	if err := s.open(); err != nil {
		return err
	}
	if s.close('}') {
		return nil
	}
	for {
		if s.next() != '"' {
			return s.fail("expected a key")
		}
		at := s.pos
		var key []byte
		var err error
		if each != nil || keys != nil {
			key, err = s.text()
		} else {
			_, err = s.str()
		}
		if err != nil {
			return err
		}
		if keys != nil && keys.Add(key) {
			s.pos = at
			return s.fail(fmt.Sprintf("key %.64q repeated (keys are compared case-insensitively)", key))
		}
		if s.next() != ':' {
			return s.fail("expected ':'")
		}
		s.pos++
		if each != nil {
			err = each(key, at)
		} else {
			err = s.skip(s.Peek())
		}
		if err != nil {
			return err
		}
		if s.close('}') {
			return nil
		}
		if s.next() != ',' {
			return s.fail("expected ',' or '}'")
		}
		s.pos++
	}
}

// array reads an array at its '[', calling each for every element (or
// skipping the elements when each is nil).
func (s *Scanner) array(each func() error) error {
	if err := s.open(); err != nil {
		return err
	}
	if s.close(']') {
		return nil
	}
	for {
		var err error
		if each != nil {
			err = each()
		} else {
			err = s.skip(s.Peek())
		}
		if err != nil {
			return err
		}
		if s.close(']') {
			return nil
		}
		if s.next() != ',' {
			return s.fail("expected ',' or ']'")
		}
		s.pos++
	}
}

func (s *Scanner) literal(lit string) error {
	if len(s.Data)-s.pos < len(lit) || string(s.Data[s.pos:s.pos+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. What may
// follow it (a delimiter or white space) is the caller's check.
func (s *Scanner) number() error {
	b, i := s.Data, s.pos
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		i = digits(b, i)
	default:
		s.pos = i
		return s.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			s.pos = i
			return s.fail("invalid number")
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.pos = i
			return s.fail("invalid number")
		}
		i = digits(b, i)
	}
	s.pos = i
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// text reads the string at s.pos and returns its contents.
func (s *Scanner) text() ([]byte, error) {
	start := s.pos
	escaped, err := s.str()
	if err != nil {
		return nil, err
	}
	b := s.Data[start+1 : s.pos-1]
	if escaped {
		b = unescape(b)
	}
	return b, nil
}

// plain marks the bytes that stand for themselves inside a JSON string:
// ASCII from 0x20 except '"' and '\\'. Everything else needs a closer look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Masks for plainRun: a byte's high bit, and each byte set to 1, to the
// smallest plain byte, to '"' and to '\\'.
const (
	highBits  = 0x8080808080808080
	ones      = 0x0101010101010101
	spaces    = 0x2020202020202020
	quotes    = 0x2222222222222222
	backslash = 0x5c5c5c5c5c5c5c5c
)

// plainRun returns the offset of the first byte from i on that is not
// plain, or len(b). Strings are mostly plain (a tool's text argument can
// be most of a body), so it tests eight bytes at a time, which is several
// times faster than a byte at a time in WebAssembly: with w the eight
// bytes as a word, (w - ones*n) &^ w has a high bit set exactly when some
// byte is below n (n at most 0x80), and applied to w ^ (ones*c), exactly
// when some byte is c. The first word with a byte that is not plain is
// left to the byte loop, which finds which one.
func plainRun(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q, bs := w^quotes, w^backslash
		if (w|(w-spaces)&^w|(q-ones)&^q|(bs-ones)&^bs)&highBits != 0 {
			break
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

// str checks the string whose '"' is at s.pos, moves past it and reports
// whether it has escapes.
func (s *Scanner) str() (escaped bool, err error) {
	b, i := s.Data, s.pos+1
	for {
		i = plainRun(b, i)
		if i >= len(b) {
			s.pos = i
			return escaped, s.fail("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.pos = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			n := escapeLen(b[i:])
			if n < 0 && s.Strict {
				s.pos = i
				return escaped, s.fail(`\u escape of an unpaired surrogate`)
			}
			if n == 0 {
				s.pos = i
				return escaped, s.fail("invalid escape")
			}
			i += max(n, -n)
		case c < 0x20:
			s.pos = i
			return escaped, s.fail("control character in string")
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				s.pos = i
				return escaped, s.fail("invalid UTF-8 in string")
			}
			i += n
		}
	}
}

// escapeLen returns the length of the escape that starts b: 2 for \n and
// its like, 6 for \uXXXX, 12 for a surrogate pair, 0 for an invalid escape,
// and -6 for a \u escape of an unpaired surrogate (which encoding/json reads
// as U+FFFD).
func escapeLen(b []byte) int {
	switch {
	case len(b) < 2:
		return 0
	case b[1] != 'u':
		switch b[1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			return 2
		}
		return 0
	}
	r := hex4(b[2:])
	switch {
	case r < 0:
		return 0
	case !utf16.IsSurrogate(r):
		return 6
	case len(b) >= 12 && b[6] == '\\' && b[7] == 'u' && utf16.DecodeRune(r, hex4(b[8:])) != unicode.ReplacementChar:
		return 12
	}
	return -6
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

// unescape decodes the escapes of string contents that str accepted. A \u
// escape of an unpaired surrogate becomes U+FFFD, as in encoding/json.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != '\\' {
			out = append(out, b[i])
			i++
			continue
		}
		n := escapeLen(b[i:])
		switch c := b[i+1]; {
		case n == 12:
			out = utf8.AppendRune(out, utf16.DecodeRune(hex4(b[i+2:]), hex4(b[i+8:])))
		case n < 0:
			out = utf8.AppendRune(out, unicode.ReplacementChar)
		case c == 'u':
			out = utf8.AppendRune(out, hex4(b[i+2:]))
		case c == 'b':
			out = append(out, '\b')
		case c == 'f':
			out = append(out, '\f')
		case c == 'n':
			out = append(out, '\n')
		case c == 'r':
			out = append(out, '\r')
		case c == 't':
			out = append(out, '\t')
		default: // '"', '\\', '/'
			out = append(out, c)
		}
		i += max(n, -n)
	}
	return out
}

package token

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The header and the claims are read by the small JSON scanner below rather
// than unmarshalled. encoding/json keeps the last of repeated names and
// matches struct fields case-insensitively, so {"iss":"a","ISS":"b"} means
// "b" to the manager's golang-jwt and could mean "a" to another parser;
// reading names exactly and refusing names equal under case folding leaves
// one reading of every accepted token. (json.Decoder's Token API could do
// the same, but it costs about 300µs a token in WebAssembly, half an Ed25519
// verification.)
//
// The scanner accepts RFC 8259 JSON, as json.Valid does, except that it
// refuses invalid UTF-8, \u escapes of unpaired UTF-16 surrogates (which
// encoding/json replaces with U+FFFD), repeated names, and nesting deeper
// than maxDepth. FuzzDecodeObject holds it to encoding/json.

// maxDepth bounds nesting; gateway tokens nest two deep.
const maxDepth = 32

// scanner reads JSON from data, at pos.
type scanner struct {
	data  []byte
	pos   int
	depth int
}

// member handles one member of an object. name is as sent, folded its
// case-folded form; the scanner is positioned at the value, which member
// must consume whole.
type member func(s *scanner, name, folded string) error

// valueKind is the JSON type of a value.
type valueKind uint8

const (
	kindNull valueKind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

func (k valueKind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an object", "an array"}[k]
}

// jsonValue is a value as value reads it: the contents of a string, the
// literal of a number or a boolean; objects and arrays have only a kind.
type jsonValue struct {
	kind valueKind
	text string
}

// decodeObject reads data, which must be exactly one JSON object in UTF-8,
// calling m for each of its members.
func decodeObject(data []byte, m member) error {
	if !utf8.Valid(data) {
		return errors.New("not UTF-8")
	}
	s := &scanner{data: data}
	s.space()
	if s.peek() != '{' {
		v, err := s.value()
		if err != nil {
			return err
		}
		return fmt.Errorf("%s where an object belongs", v.kind)
	}
	if err := s.object(m); err != nil {
		return err
	}
	s.space()
	if s.pos != len(s.data) {
		return s.errorf("data after the object")
	}
	return nil
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", s.pos, fmt.Sprintf(format, args...))
}

// peek returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// space skips white space.
func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// object reads an object, at its '{', calling m for each member.
func (s *scanner) object(m member) error {
	if s.depth++; s.depth > maxDepth {
		return s.errorf("nested deeper than %d", maxDepth)
	}
	s.pos++ // '{'
	var seen nameSet
	s.space()
	if s.peek() == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		s.space()
		if s.peek() != '"' {
			return s.errorf("object member without a name")
		}
		name, err := s.string()
		if err != nil {
			return err
		}
		folded := fold(name)
		if !seen.add(folded) {
			return fmt.Errorf("name %.64q repeated (names are compared case-insensitively)", name)
		}
		s.space()
		if s.peek() != ':' {
			return s.errorf("no ':' after a name")
		}
		s.pos++
		s.space()
		if err := m(s, name, folded); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("no ',' or '}' after a member")
		}
	}
}

// array reads an array, at its '[', calling each for each element with the
// scanner at the element.
func (s *scanner) array(each func(*scanner) error) error {
	if s.depth++; s.depth > maxDepth {
		return s.errorf("nested deeper than %d", maxDepth)
	}
	s.pos++ // '['
	s.space()
	if s.peek() == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		s.space()
		if err := each(s); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("no ',' or ']' after an element")
		}
	}
}

// value reads one value whole. The contents of objects and arrays are
// checked (names not repeated) and skipped.
func (s *scanner) value() (jsonValue, error) {
	s.space()
	switch c := s.peek(); {
	case c == '{':
		return jsonValue{kind: kindObject}, s.object(skip)
	case c == '[':
		return jsonValue{kind: kindArray}, s.array(skipElement)
	case c == '"':
		str, err := s.string()
		return jsonValue{kind: kindString, text: str}, err
	case c == '-' || '0' <= c && c <= '9':
		n, err := s.number()
		return jsonValue{kind: kindNumber, text: n}, err
	}
	for _, lit := range [...]struct {
		text string
		kind valueKind
	}{{"null", kindNull}, {"true", kindBool}, {"false", kindBool}} {
		if end := s.pos + len(lit.text); end <= len(s.data) && string(s.data[s.pos:end]) == lit.text {
			s.pos = end
			return jsonValue{kind: lit.kind, text: lit.text}, nil
		}
	}
	if s.pos == len(s.data) {
		return jsonValue{}, s.errorf("unexpected end")
	}
	return jsonValue{}, s.errorf("invalid character %q", s.data[s.pos])
}

// skip is a member that ignores its value.
func skip(s *scanner, _, _ string) error {
	_, err := s.value()
	return err
}

// skipElement is an array element handler that ignores the element.
func skipElement(s *scanner) error {
	_, err := s.value()
	return err
}

// number reads a number (RFC 8259 §6) and returns its literal.
func (s *scanner) number() (string, error) {
	start := s.pos
	if s.peek() == '-' {
		s.pos++
	}
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return "", s.errorf("invalid number")
	}
	if s.peek() == '.' {
		s.pos++
		if s.digits() == 0 {
			return "", s.errorf("no digit after '.'")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if s.digits() == 0 {
			return "", s.errorf("no digit in the exponent")
		}
	}
	return string(s.data[start:s.pos]), nil
}

// digits skips digits and returns how many.
func (s *scanner) digits() int {
	start := s.pos
	for c := s.peek(); '0' <= c && c <= '9'; c = s.peek() {
		s.pos++
	}
	return s.pos - start
}

// string reads a string, at its '"', and returns its contents.
func (s *scanner) string() (string, error) {
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			s.pos = i + 1
			return string(s.data[start:i]), nil
		case c == '\\':
			return s.escaped(start, i)
		case c < 0x20:
			s.pos = i
			return "", s.errorf("control character in a string")
		}
	}
	s.pos = len(s.data)
	return "", s.errorf("unterminated string")
}

// escaped finishes string from data[i], the first backslash of a string
// whose contents start at start.
func (s *scanner) escaped(start, i int) (string, error) {
	b := append(make([]byte, 0, 2*(i-start)+16), s.data[start:i]...)
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return string(b), nil
		case c < 0x20:
			s.pos = i
			return "", s.errorf("control character in a string")
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(s.data) {
			break
		}
		switch e := s.data[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(s.data[i+2:])
			if !ok {
				s.pos = i
				return "", s.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// Only a high surrogate escape followed by a low one.
				low, ok := rune(0), false
				if rest := s.data[i+6:]; len(rest) >= 2 && rest[0] == '\\' && rest[1] == 'u' {
					low, ok = hex4(rest[2:])
				}
				if r = utf16.DecodeRune(r, low); !ok || r == unicode.ReplacementChar {
					s.pos = i
					return "", s.errorf("\\u escape of an unpaired surrogate")
				}
				i += 6
			}
			b = utf8.AppendRune(b, r)
			i += 4
		default:
			s.pos = i
			return "", s.errorf("invalid escape")
		}
		i += 2
	}
	s.pos = len(s.data)
	return "", s.errorf("unterminated string")
}

// hex4 decodes the four hex digits that start b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
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
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// nameSet holds the folded names of one object: in an array while few, so
// that a token's objects cost no allocation, and in a map past that, so
// that an object of thousands of names costs no quadratic time.
type nameSet struct {
	small [16]string
	n     int
	large map[string]struct{}
}

// add adds name and reports whether it was new.
func (ns *nameSet) add(name string) bool {
	if ns.large != nil {
		if _, dup := ns.large[name]; dup {
			return false
		}
		ns.large[name] = struct{}{}
		return true
	}
	for _, have := range ns.small[:ns.n] {
		if have == name {
			return false
		}
	}
	if ns.n < len(ns.small) {
		ns.small[ns.n] = name
		ns.n++
		return true
	}
	ns.large = make(map[string]struct{}, 4*len(ns.small))
	for _, have := range ns.small {
		ns.large[have] = struct{}{}
	}
	ns.large[name] = struct{}{}
	return true
}

// fold maps a name to one representative of its case-folding class, so
// that two names are equal under Unicode simple case folding (as
// strings.EqualFold and encoding/json compare them, "ſub" matching "sub")
// exactly when their folds are equal.
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s) // no allocation when already lower case
	}
	var b strings.Builder
	for _, r := range s {
		// The smallest rune of r's folding orbit; an orbit with an ASCII
		// letter starts with its upper case, lowered here to agree with the
		// fast path above.
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		if 'A' <= least && least <= 'Z' {
			least += 'a' - 'A'
		}
		b.WriteRune(least)
	}
	return b.String()
}

package jsonscan

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// KeySet holds the keys of one object and finds keys that encoding/json
// would match to the same struct field: it compares keys with
// bytes.EqualFold, which is how encoding/json matches a key to a field that
// has no exact match. Objects usually have a few keys, compared pairwise
// without allocating; past len(inline) keys the set switches to a map of
// folded keys, so that an object with many keys costs linear time. The
// zero KeySet is empty.
type KeySet struct {
	n      int
	inline [16][]byte
	folded map[string]struct{}
}

// Add adds key, which must be valid UTF-8 and stay unchanged while the set
// is in use, and reports whether the set already held a key equal to it
// under case folding.
func (s *KeySet) Add(key []byte) (dup bool) {
	if s.folded == nil {
		for _, o := range s.inline[:s.n] {
			if bytes.EqualFold(o, key) {
				return true
			}
		}
		if s.n < len(s.inline) {
			s.inline[s.n] = key
			s.n++
			return false
		}
		s.folded = make(map[string]struct{}, 2*len(s.inline))
		for _, o := range s.inline {
			s.folded[foldKey(o)] = struct{}{}
		}
	}
	f := foldKey(key)
	if _, dup := s.folded[f]; dup {
		return true
	}
	s.folded[f] = struct{}{}
	return false
}

// foldKey maps k to a canonical form such that foldKey(a) == foldKey(b)
// exactly when bytes.EqualFold(a, b): every rune becomes the smallest rune
// of its unicode.SimpleFold orbit (so "k", "K" and the Kelvin sign U+212A
// all become "K"). k is valid UTF-8.
func foldKey(k []byte) string {
	out := make([]byte, 0, len(k))
	for len(k) > 0 {
		r, n := utf8.DecodeRune(k)
		k = k[n:]
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		out = utf8.AppendRune(out, low)
	}
	return string(out)
}

// FoldMatch returns the name of names that key equals under case folding:
// the field encoding/json would fill from key if no name equals it
// exactly. Callers ask it about keys that are not exactly one of names, to
// refuse a key that one parser would read and another would not.
func FoldMatch(key []byte, names []string) (name string, ok bool) {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return n, true
		}
	}
	return "", false
}

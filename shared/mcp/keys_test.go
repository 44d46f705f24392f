package mcp

import (
	"bytes"
	"testing"
	"unicode"
	"unicode/utf8"
)

// TestFoldKeyIsEqualFold checks, for every rune, that foldKey maps it and
// every rune of its case-folding orbit to one rune that bytes.EqualFold
// equates with it: the map path of keySet then finds the same duplicates
// as the pairwise path.
func TestFoldKeyIsEqualFold(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		k := []byte(string(r))
		f := foldKey(k)
		if !bytes.EqualFold(k, []byte(f)) {
			t.Fatalf("foldKey(%q) = %q, not EqualFold", r, f)
		}
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			if g := foldKey([]byte(string(o))); g != f {
				t.Fatalf("foldKey(%q) = %q but foldKey(%q) = %q", r, f, o, g)
			}
		}
	}
}

func TestKeySet(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		dup  bool
	}{
		{"distinct keys", []string{"jsonrpc", "id", "method", "params"}, false},
		{"exact duplicate", []string{"name", "arguments", "name"}, true},
		{"duplicate in another case", []string{"name", "NAME"}, true},
		{"Kelvin sign and k", []string{"k", "\u212a"}, true},
		{"long s and S", []string{"S", "\u017f"}, true},
		{"different lengths", []string{"name", "names"}, false},
		{"distinct past the inline keys", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s"}, false},
		{"duplicate past the inline keys", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "A"}, true},
		{"folded duplicate past the inline keys", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "\u212a"}, true},
	}
	for _, tt := range tests {
		var s keySet
		dup := false
		for _, k := range tt.keys {
			dup = s.add([]byte(k)) || dup
		}
		if dup != tt.dup {
			t.Errorf("%s: duplicate = %v, want %v", tt.name, dup, tt.dup)
		}
	}
}

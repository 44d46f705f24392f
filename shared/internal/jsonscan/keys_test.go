package jsonscan

import (
	"bytes"
	"testing"
	"unicode"
	"unicode/utf8"
)

// TestFoldKeyIsEqualFold checks, for every rune, that foldKey maps it and
// every rune of its case-folding orbit to one rune that bytes.EqualFold
// equates with it: the map path of KeySet then finds the same duplicates
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
		var s KeySet
		dup := false
		for _, k := range tt.keys {
			dup = s.Add([]byte(k)) || dup
		}
		if dup != tt.dup {
			t.Errorf("%s: duplicate = %v, want %v", tt.name, dup, tt.dup)
		}
	}
}

// TestKeySetFolding checks pairs of keys on both paths of KeySet: among a
// few keys, and past the inline keys.
func TestKeySetFolding(t *testing.T) {
	same := [][2]string{{"sub", "SUB"}, {"sub", "ſub"}, {"kid", "Kid"}, {"straße", "STRAßE"}, {"σ", "Σ"}, {"ς", "σ"}, {"agent_id", "Agent_ID"}}
	differ := [][2]string{{"iss", "İss"}, {"sub", "sup"}, {"ss", "ß"}, {"a", "a "}}
	for _, fill := range []int{0, 20} {
		for _, pairs := range [][][2]string{same, differ} {
			for _, p := range pairs {
				var s KeySet
				for i := range fill {
					s.Add([]byte{'0' + byte(i/10), '0' + byte(i%10)})
				}
				s.Add([]byte(p[0]))
				if dup := s.Add([]byte(p[1])); dup != (len(pairs) == len(same)) {
					t.Errorf("after %d keys, %q then %q: duplicate = %v", fill, p[0], p[1], dup)
				}
			}
		}
	}
}

func TestFoldMatch(t *testing.T) {
	names := []string{"alg", "kid", "io.modelcontextprotocol/protocolVersion"}
	tests := []struct {
		key, want string
	}{
		{"ALG", "alg"},
		{"io.modelcontextprotocol/PROTOCOLVERSION", "io.modelcontextprotocol/protocolVersion"},
		{"alg", "alg"},
		{"algo", ""},
		{"\u212aID", "kid"},
	}
	for _, tt := range tests {
		if got, ok := FoldMatch([]byte(tt.key), names); got != tt.want || ok != (tt.want != "") {
			t.Errorf("FoldMatch(%q) = %q, %v; want %q", tt.key, got, ok, tt.want)
		}
	}
	long := []byte("io.modelcontextprotocol/clientCapabilities")
	if allocs := testing.AllocsPerRun(100, func() { FoldMatch(long, names) }); allocs != 0 {
		t.Errorf("FoldMatch allocates %v times", allocs)
	}
}

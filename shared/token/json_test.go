package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// tree reads a value with the scanner into what encoding/json's Unmarshal
// gives with UseNumber.
func tree(s *scanner) (any, error) {
	s.space()
	switch s.peek() {
	case '{':
		m := map[string]any{}
		err := s.object(func(s *scanner, name, _ string) error {
			v, err := tree(s)
			m[name] = v
			return err
		})
		return m, err
	case '[':
		a := []any{}
		err := s.array(func(s *scanner) error {
			v, err := tree(s)
			a = append(a, v)
			return err
		})
		return a, err
	}
	v, err := s.value()
	switch v.kind {
	case kindString:
		return v.text, err
	case kindNumber:
		return json.Number(v.text), err
	case kindBool:
		return v.text == "true", err
	}
	return nil, err
}

// decodeTree is decodeObject building a tree.
func decodeTree(data []byte) (any, error) {
	var out any
	err := decodeObject(data, func(s *scanner, name, _ string) error {
		if out == nil {
			out = map[string]any{}
		}
		v, err := tree(s)
		out.(map[string]any)[name] = v
		return err
	})
	if err == nil && out == nil {
		out = map[string]any{}
	}
	return out, err
}

// stricter are the rules by which the scanner refuses JSON that
// encoding/json accepts, as its errors say them.
var stricter = []string{"repeated", "unpaired surrogate", "nested deeper", "not UTF-8", "where an object belongs"}

var scannerCases = []struct {
	name, json string
	ok         bool
}{
	{"empty object", `{}`, true},
	{"white space everywhere", " \t\r\n{ \"a\" : [ 1 , { } , [ ] ] , \"b\" :\n\"\" } \n", true},
	{"every scalar", `{"s":"x","n":-0.5e+10,"z":0,"t":true,"f":false,"null":null,"e":1E-2}`, true},
	{"escapes", `{"a":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}`, true},
	{"UTF-8 as is", `{"é":"😀"}`, true},
	{"escaped name equal to a plain one", `{"a":1,"\u0061":2}`, false},
	{"names equal in another case", `{"Kid":1,"kid":2}`, false},
	{"names equal under Unicode folding", `{"K":1,"k":2}`, false},
	{"names that differ", `{"a":1,"b":{"a":2}}`, true},
	{"repeated name in a nested object", `{"a":[{"b":1,"b":2}]}`, false},
	{"lone high surrogate", `{"a":"\uD800"}`, false},
	{"lone low surrogate", `{"a":"\uDC00x"}`, false},
	{"reversed surrogates", `{"a":"\uDC00\uD800"}`, false},
	{"invalid UTF-8", "{\"a\":\"\xff\"}", false},
	{"deep nesting", `{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, false},
	{"nesting at the limit", `{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`, true},
	{"array at the top", `[]`, false},
	{"string at the top", `"x"`, false},
	{"empty", ``, false},
	{"trailing comma", `{"a":1,}`, false},
	{"trailing data", `{} x`, false},
	{"two objects", `{}{}`, false},
	{"leading zero", `{"a":01}`, false},
	{"bare minus", `{"a":-}`, false},
	{"no fraction digits", `{"a":1.}`, false},
	{"no exponent digits", `{"a":1e+}`, false},
	{"plus sign", `{"a":+1}`, false},
	{"control character in a string", "{\"a\":\"\t\"}", false},
	{"invalid escape", `{"a":"\x"}`, false},
	{"short unicode escape", `{"a":"\u12"}`, false},
	{"unterminated string", `{"a":"x`, false},
	{"unquoted name", `{a:1}`, false},
	{"single quotes", `{'a':1}`, false},
	{"truncated literal", `{"a":tru}`, false},
	{"literal with a tail", `{"a":nullx}`, false},
	{"missing colon", `{"a" 1}`, false},
	{"missing comma", `{"a":1 "b":2}`, false},
	{"unclosed", `{"a":1`, false},
	{"NaN", `{"a":NaN}`, false},
}

func TestScanner(t *testing.T) {
	for _, tc := range scannerCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeTree([]byte(tc.json))
			if (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				return
			}
			var want any
			dec := json.NewDecoder(bytes.NewReader([]byte(tc.json)))
			dec.UseNumber()
			if err := dec.Decode(&want); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v, encoding/json %#v", got, want)
			}
		})
	}
}

func TestFold(t *testing.T) {
	same := [][2]string{{"sub", "SUB"}, {"sub", "ſub"}, {"kid", "Kid"}, {"straße", "STRAßE"}, {"σ", "Σ"}, {"ς", "σ"}, {"agent_id", "Agent_ID"}}
	for _, p := range same {
		if fold(p[0]) != fold(p[1]) || !strings.EqualFold(p[0], p[1]) {
			t.Errorf("fold(%q) = %q, fold(%q) = %q: want equal", p[0], fold(p[0]), p[1], fold(p[1]))
		}
	}
	differ := [][2]string{{"iss", "İss"}, {"sub", "sup"}, {"ss", "ß"}, {"a", "a "}}
	for _, p := range differ {
		if fold(p[0]) == fold(p[1]) {
			t.Errorf("fold(%q) = fold(%q) = %q: want different", p[0], p[1], fold(p[0]))
		}
	}
}

// FuzzDecodeObject holds the scanner to encoding/json: what the scanner
// accepts, encoding/json reads the same way; what it refuses, encoding/json
// refuses too, unless one of the stricter rules says why; and two names of
// one object are never equal under strings.EqualFold.
func FuzzDecodeObject(f *testing.F) {
	for _, tc := range scannerCases {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeTree(data)
		var want any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		refErr := dec.Decode(&want)
		if refErr == nil {
			if _, err := dec.Token(); err != io.EOF {
				refErr = errors.New("data after the value")
			}
		}
		if err == nil {
			if refErr != nil {
				t.Fatalf("scanner accepts what encoding/json refuses (%v)", refErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("scanner reads %#v, encoding/json %#v", got, want)
			}
			checkNames(t, data)
			return
		}
		if refErr == nil && !containsAny(err.Error(), stricter) {
			t.Fatalf("scanner refuses what encoding/json accepts, for no stated rule: %v", err)
		}
	})
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// checkNames fails if an object of data has two names equal under
// strings.EqualFold, reading data with encoding/json's Decoder.
func checkNames(t *testing.T, data []byte) {
	t.Helper()
	type frame struct {
		object   bool
		wantName bool
		names    []string
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		if n := len(stack); n > 0 && stack[n-1].wantName {
			if name, ok := tok.(string); ok {
				top := stack[n-1]
				for _, have := range top.names {
					if strings.EqualFold(have, name) {
						t.Fatalf("names %q and %q both accepted", have, name)
					}
				}
				top.names = append(top.names, name)
				top.wantName = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &frame{object: tok == json.Delim('{'), wantName: tok == json.Delim('{')})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: an enclosing object expects a name next.
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantName = true
		}
	}
}

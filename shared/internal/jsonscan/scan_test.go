package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// testDepth is the MaxDepth of the tests' Scanners.
const testDepth = 16

// tree reads a value with s into what encoding/json's Decoder gives with
// UseNumber.
func tree(s *Scanner) (any, error) {
	switch s.Peek() {
	case Object:
		m := map[string]any{}
		err := s.Object(func(key []byte, _ int) error {
			v, err := tree(s)
			m[string(key)] = v
			return err
		})
		return m, err
	case Array:
		a := []any{}
		err := s.Array(func() error {
			v, err := tree(s)
			a = append(a, v)
			return err
		})
		return a, err
	}
	k, text, err := s.Value()
	switch k {
	case String:
		return string(text), err
	case Number:
		return json.Number(text), err
	case Bool:
		return string(text) == "true", err
	}
	return nil, err
}

// decode reads all of data with a Scanner into a tree.
func decode(data []byte, strict bool) (any, error) {
	s := Scanner{Data: data, MaxDepth: testDepth, Strict: strict}
	v, err := tree(&s)
	if err == nil {
		err = s.End()
	}
	return v, err
}

var scanTests = []struct {
	name            string
	json            string
	lenient, strict bool // whether each Scanner accepts json
}{
	{"empty object", `{}`, true, true},
	{"a string at the top", `"x"`, true, true},
	{"a number at the top", `-0`, true, true},
	{"null at the top", ` null `, true, true},
	{"white space everywhere", " \t\r\n{ \"a\" : [ 1 , { } , [ ] ] , \"b\" :\n\"\" } \n", true, true},
	{"every scalar", `{"s":"x","n":-0.5e+10,"z":0,"t":true,"f":false,"null":null,"e":1E-2}`, true, true},
	{"huge number", `123456789012345678901234567890E400`, true, true},
	{"escapes", `{"a":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}`, true, true},
	{"escaped NUL", `"a\u0000"`, true, true},
	{"UTF-8 as is", `{"é":"😀"}`, true, true},
	{"escaped key equal to a plain one", `{"a":1,"\u0061":2}`, true, false},
	{"keys equal in another case", `{"Kid":1,"kid":2}`, true, false},
	{"keys equal under Unicode folding", `{"K":1,"k":2}`, true, false},
	{"keys that differ", `{"a":1,"b":{"a":2}}`, true, true},
	{"repeated key in a nested object", `{"a":[{"b":1,"b":2}]}`, true, false},
	{"lone high surrogate", `{"a":"\uD800"}`, true, false},
	{"lone low surrogate", `{"a":"\uDC00x"}`, true, false},
	{"reversed surrogates", `{"a":"\uDC00\uD800"}`, true, false},
	{"high surrogate before a non-surrogate escape", `"\ud83c\u0041"`, true, false},
	{"high surrogate at the end", `"a\ud83c"`, true, false},
	{"lone surrogate in a key", `{"\ud800":1}`, true, false},
	{"invalid UTF-8", "{\"a\":\"\xff\"}", false, false},
	{"invalid UTF-8 in a key", "{\"\xfe\":1}", false, false},
	{"overlong UTF-8", "\"\xc0\xaf\"", false, false},
	{"UTF-8 encoded surrogate", "\"\xed\xa0\x80\"", false, false},
	{"truncated UTF-8", "\"\xe2\x82\"", false, false},
	{"nesting at the limit", strings.Repeat("[", testDepth) + strings.Repeat("]", testDepth), true, true},
	{"nesting deeper than the limit", `{"a":` + strings.Repeat("[", testDepth) + strings.Repeat("]", testDepth) + `}`, false, false},
	{"empty", ``, false, false},
	{"only white space", " \n", false, false},
	{"trailing comma in an object", `{"a":1,}`, false, false},
	{"trailing comma in an array", `[1,]`, false, false},
	{"leading comma", `[,1]`, false, false},
	{"trailing data", `{} x`, false, false},
	{"two values", `{}{}`, false, false},
	{"leading zero", `01`, false, false},
	{"bare minus", `-`, false, false},
	{"no fraction digits", `1.`, false, false},
	{"leading dot", `.5`, false, false},
	{"no exponent digits", `1e+`, false, false},
	{"plus sign", `+1`, false, false},
	{"hex number", `0x10`, false, false},
	{"NaN", `NaN`, false, false},
	{"control character in a string", "\"\t\"", false, false},
	{"invalid escape", `"\x"`, false, false},
	{"short unicode escape", `"\u12"`, false, false},
	{"non-hex unicode escape", `"\u12G4"`, false, false},
	{"backslash at the end", `"\`, false, false},
	{"unterminated string", `{"a":"x`, false, false},
	{"unquoted key", `{a:1}`, false, false},
	{"single quotes", `{'a':1}`, false, false},
	{"truncated literal", `tru`, false, false},
	{"capitalised literal", `True`, false, false},
	{"literal with a tail", `{"a":nullx}`, false, false},
	{"missing colon", `{"a" 1}`, false, false},
	{"missing comma", `{"a":1 "b":2}`, false, false},
	{"unclosed object", `{"a":1`, false, false},
	{"unclosed array", `[1`, false, false},
	{"comment", `{/*x*/}`, false, false},
}

func TestScanner(t *testing.T) {
	for _, tc := range scanTests {
		t.Run(tc.name, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				ok := tc.lenient
				if strict {
					ok = tc.strict
				}
				got, err := decode([]byte(tc.json), strict)
				if (err == nil) != ok {
					t.Fatalf("strict=%v: error %v, want ok=%v", strict, err, ok)
				}
				if err != nil {
					continue
				}
				var want any
				dec := json.NewDecoder(strings.NewReader(tc.json))
				dec.UseNumber()
				if err := dec.Decode(&want); err != nil {
					t.Fatalf("encoding/json: %v", err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("strict=%v: got %#v, encoding/json %#v", strict, got, want)
				}
			}
		})
	}
}

func TestValueAliasesDataUnlessEscaped(t *testing.T) {
	data := []byte(`["plain", "esc\u0061ped"]`)
	var texts [][]byte
	s := Scanner{Data: data, MaxDepth: 1}
	err := s.Array(func() error {
		_, text, err := s.Value()
		texts = append(texts, text)
		return err
	})
	if err != nil || len(texts) != 2 || string(texts[0]) != "plain" || string(texts[1]) != "escaped" {
		t.Fatalf("read %q, %v", texts, err)
	}
	if &texts[0][0] != &data[2] {
		t.Errorf("a string without escapes does not alias Data")
	}
	if bytes.Contains(data, texts[1]) {
		t.Errorf("an unescaped string is in Data")
	}
	allocs := testing.AllocsPerRun(100, func() {
		s := Scanner{Data: data[1:8]}
		s.Value()
	})
	if allocs != 0 {
		t.Errorf("reading a string without escapes allocates %v times", allocs)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		offset  int
		tooDeep bool
	}{
		{"nesting too deep stops at the bracket", `[[[`, 2, true},
		{"invalid escape is where its backslash is", `"ab\x"`, 3, false},
		{"repeated key is where it starts", `{"a":1, "A":2}`, 8, false},
		{"data after the value", `1 2`, 2, false},
		{"end of data", ` `, 1, false},
	}
	for _, tc := range tests {
		s := Scanner{Data: []byte(tc.json), MaxDepth: 2, Strict: true}
		_, err := s.Skip()
		if err == nil {
			err = s.End()
		}
		var e *Error
		if !errors.As(err, &e) || e.Offset != tc.offset || errors.Is(err, ErrTooDeep) != tc.tooDeep {
			t.Errorf("%s: error %v, want offset %d, too deep %v", tc.name, err, tc.offset, tc.tooDeep)
		}
	}
}

func TestObjectPassesKeyOffsets(t *testing.T) {
	s := Scanner{Data: []byte(`{"a":1, "b":{"c":[]}}`), MaxDepth: 3}
	var at []int
	err := s.Object(func(_ []byte, offset int) error {
		at = append(at, offset)
		_, err := s.Skip()
		return err
	})
	if err != nil || !reflect.DeepEqual(at, []int{1, 8}) {
		t.Errorf("key offsets %v, %v; want [1 8]", at, err)
	}
}

func TestObjectAndArrayRefuseOtherKinds(t *testing.T) {
	s := Scanner{Data: []byte(`[]`), MaxDepth: 1}
	if err := s.Object(func([]byte, int) error { return nil }); err == nil {
		t.Errorf("Object read an array")
	}
	s = Scanner{Data: []byte(`{}`), MaxDepth: 1}
	if err := s.Array(func() error { return nil }); err == nil {
		t.Errorf("Array read an object")
	}
}

// TestPlainRun checks the eight-bytes-at-a-time scan against a byte loop,
// for every byte value at every position of a word, from every alignment.
func TestPlainRun(t *testing.T) {
	byteLoop := func(b []byte, i int) int {
		for i < len(b) && plain[b[i]] {
			i++
		}
		return i
	}
	for c := range 256 {
		for pos := range 20 {
			b := []byte(strings.Repeat("a", pos) + string([]byte{byte(c)}) + strings.Repeat("b", 19-pos))
			for start := range 4 {
				if got, want := plainRun(b, start), byteLoop(b, start); got != want {
					t.Fatalf("byte %#x at %d, from %d: plainRun = %d, want %d", c, pos, start, got, want)
				}
			}
		}
	}
	if got := plainRun(nil, 0); got != 0 {
		t.Fatalf("plainRun(nil) = %d", got)
	}
}

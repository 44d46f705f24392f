package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// FuzzScan holds both Scanners to reference, encoding/json with the checks
// it does not do written out: each accepts exactly what its reference
// accepts, reads it as encoding/json does, and refuses with an *Error.
func FuzzScan(f *testing.F) {
	for _, tc := range scanTests {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, strict := range []bool{false, true} {
			got, err := decode(data, strict)
			want, ok := reference(data, strict)
			if !ok {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("strict=%v: Scanner accepts what the reference refuses, or refuses with %v", strict, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("strict=%v: Scanner refuses what the reference accepts: %v", strict, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("strict=%v: Scanner reads %#v, encoding/json %#v", strict, got, want)
			}
		}
	})
}

// reference reads data with encoding/json, and refuses besides invalid
// UTF-8 and nesting deeper than testDepth; with strict also keys equal
// under case folding and \u escapes of unpaired surrogates.
func reference(data []byte, strict bool) (any, bool) {
	if !json.Valid(data) || !utf8.Valid(data) {
		return nil, false
	}
	if depth, foldedKeys := walk(data); depth > testDepth || strict && (foldedKeys || loneSurrogate(data)) {
		return nil, false
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		panic(err) // json.Valid accepted it
	}
	return v, true
}

// walk returns how deeply the arrays and objects of valid JSON nest, and
// whether an object has two keys equal under strings.EqualFold.
func walk(data []byte) (depth int, foldedKeys bool) {
	type frame struct {
		object, wantKey bool
		keys            []string
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return depth, foldedKeys
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			top := stack[n-1]
			if key, ok := tok.(string); ok {
				for _, k := range top.keys {
					foldedKeys = foldedKeys || strings.EqualFold(k, key)
				}
				top.keys = append(top.keys, key)
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &frame{object: tok == json.Delim('{'), wantKey: tok == json.Delim('{')})
			depth = max(depth, len(stack))
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: an enclosing object expects a key next.
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
}

// loneSurrogate reports whether valid JSON has a \u escape of a UTF-16
// surrogate that is not half of a pair. In valid JSON a backslash always
// starts an escape.
func loneSurrogate(data []byte) bool {
	u := func(i int) rune { // the rune of the \uXXXX at data[i:], or -1
		if i+6 > len(data) || data[i] != '\\' || data[i+1] != 'u' {
			return -1
		}
		v, _ := strconv.ParseUint(string(data[i+2:i+6]), 16, 16)
		return rune(v)
	}
	for i := 0; i < len(data); i++ {
		switch {
		case data[i] != '\\':
		case data[i+1] != 'u':
			i++
		case !utf16.IsSurrogate(u(i)):
			i += 5
		case utf16.DecodeRune(u(i), u(i+6)) == unicode.ReplacementChar:
			return true
		default:
			i += 11
		}
	}
	return false
}

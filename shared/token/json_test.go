package token

import (
	"strings"
	"testing"

	"github.com/knaight/knaight/shared/internal/jsonscan"
)

// scannerCases pin how Verify reads a header or claims: one JSON object,
// strict as jsonscan.Scanner.Strict is, nested at most maxDepth deep.
// jsonscan's tests and FuzzScan hold the reading itself to encoding/json.
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

func TestDecodeObject(t *testing.T) {
	skip := func(s *jsonscan.Scanner, _ []byte) error {
		_, err := s.Skip()
		return err
	}
	for _, tc := range scannerCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := decodeObject([]byte(tc.json), skip); (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

package mcp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

type classifyTest struct {
	name string
	body string
	want Message
	err  error
}

func request(id, method, name string) Message {
	return Message{Kind: KindRequest, ID: []byte(id), Method: method, Name: name}
}

var classifyTests = []classifyTest{
	// Kinds and ids.
	{name: "tools/call request with a number id", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{"location":"Seattle"}}}`, want: request(`1`, "tools/call", "get_weather")},
	{name: "string id is kept raw with its quotes and escapes", body: `{"jsonrpc":"2.0","id":"a\u0062\"c","method":"ping"}`, want: request(`"a\u0062\"c"`, "ping", "")},
	{name: "number ids keep their spelling", body: `{"jsonrpc":"2.0","id":-0.5e+10,"method":"ping"}`, want: request(`-0.5e+10`, "ping", "")},
	{name: "huge number id is kept raw", body: `{"jsonrpc":"2.0","id":123456789012345678901234567890E400,"method":"ping"}`, want: request(`123456789012345678901234567890E400`, "ping", "")},
	{name: "notification has no id", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, want: Message{Kind: KindNotification, Method: "notifications/initialized"}},
	{name: "response with result", body: `{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`, want: Message{Kind: KindResponse, ID: []byte(`7`)}},
	{name: "response with null result", body: `{"jsonrpc":"2.0","id":"s-1","result":null}`, want: Message{Kind: KindResponse, ID: []byte(`"s-1"`)}},
	{name: "error response", body: `{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"no"}}`, want: Message{Kind: KindResponse, ID: []byte(`7`)}},
	{name: "members in any order, params first", body: `{"params":{"arguments":{},"name":"deploy"},"method":"tools/call","id":3,"jsonrpc":"2.0"}`, want: request(`3`, "tools/call", "deploy")},

	// Names.
	{name: "prompts/get name", body: `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"review","arguments":{"name":"not this"}}}`, want: request(`1`, "prompts/get", "review")},
	{name: "resources/read uri", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///projects/app/config.json"}}`, want: request(`1`, "resources/read", "file:///projects/app/config.json")},
	{name: "resources/read ignores params.name", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x","uri":"file:///a"}}`, want: request(`1`, "resources/read", "file:///a")},
	{name: "tools/call ignores params.uri", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"uri":"file:///a"}}`, want: request(`1`, "tools/call", "")},
	{name: "tools/list has no name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"ignored","cursor":"c1"}}`, want: request(`1`, "tools/list", "")},
	{name: "tools/call without name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, want: request(`1`, "tools/call", "")},
	{name: "tools/call without params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, want: request(`1`, "tools/call", "")},
	{name: "tools/call with params array has no name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["get_weather"]}`, want: request(`1`, "tools/call", "")},
	{name: "name of another method need not be a string", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":7}}`, want: request(`1`, "tools/list", "")},
	{name: "escaped method and name are unescaped", body: `{"jsonrpc":"2.0","id":1,"method":"tools\/c\u0061ll","params":{"name":"a\tb\n\"c\"\\d\u00e9"}}`, want: request(`1`, "tools/call", "a\tb\n\"c\"\\d\u00e9")},
	{name: "unicode name in UTF-8", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"météo-天気-🌦"}}`, want: request(`1`, "tools/call", "météo-天気-🌦")},
	{name: "surrogate pair escape", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud83c\udf26"}}`, want: request(`1`, "tools/call", "🌦")},
	{name: "unpaired high surrogate reads as U+FFFD", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\ud83cb"}}`, want: request(`1`, "tools/call", "a\ufffdb")},
	{name: "high surrogate before a non-surrogate escape", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud83c\u0041"}}`, want: request(`1`, "tools/call", "\ufffdA")},
	{name: "lone low surrogate reads as U+FFFD", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\udf26\udf26"}}`, want: request(`1`, "tools/call", "\ufffd\ufffd")},
	{name: "escaped NUL is kept", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u0000"}}`, want: request(`1`, "tools/call", "a\x00")},
	{name: "escaped jsonrpc version", body: `{"jsonrpc":"\u0032.0","id":1,"method":"ping"}`, want: request(`1`, "ping", "")},
	{name: "protocol version from params._meta", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c"}}}}`, want: Message{Kind: KindRequest, ID: []byte(`1`), Method: "tools/call", Name: "t", ProtocolVersion: "2026-07-28"}},
	{name: "_meta that is not an object carries no version", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":[1]}}`, want: request(`1`, "ping", "")},

	// Well-formed JSON in other shapes.
	{name: "white space around and between tokens", body: " \t\r\n{ \"jsonrpc\" : \"2.0\" ,\n\t\"id\" : 1 , \"method\" : \"ping\" , \"params\" : { } }\r\n ", want: request(`1`, "ping", "")},
	{name: "unknown members are allowed", body: `{"jsonrpc":"2.0","id":1,"method":"ping","extra":{"a":[true,false,null,-1.5E-3,"x"]},"params":{"x":[]}}`, want: request(`1`, "ping", "")},
	{name: "params array", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2,{}]}`, want: request(`1`, "ping", "")},
	{name: "empty method is a method", body: `{"jsonrpc":"2.0","id":1,"method":""}`, want: request(`1`, "", "")},
	{name: "nesting MaxDepth deep", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":` + nested(MaxDepth-2) + `}}`, want: request(`1`, "tools/call", "t")},
	{name: "duplicate keys deeper than params are allowed", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1,"a":2,"A":3}}}`, want: request(`1`, "tools/call", "t")},
	{name: "case variants deeper than params are allowed", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"Name":"x","METHOD":"y"}}}`, want: request(`1`, "tools/call", "t")},

	// Duplicate keys.
	{name: "duplicate method", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}`, err: ErrDuplicateKey},
	{name: "duplicate id", body: `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, err: ErrDuplicateKey},
	{name: "duplicate unknown top-level key", body: `{"jsonrpc":"2.0","id":1,"method":"ping","x":1,"x":1}`, err: ErrDuplicateKey},
	{name: "duplicate name in params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"allowed","name":"forbidden"}}`, err: ErrDuplicateKey},
	{name: "escaped duplicate name in params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"allowed","na\u006de":"forbidden"}}`, err: ErrDuplicateKey},
	{name: "duplicate of any key in params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{},"arguments":{}}}`, err: ErrDuplicateKey},
	{name: "duplicate params of a method without name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"a","cursor":"b"}}`, err: ErrDuplicateKey},
	{name: "key differing only in case is a duplicate", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call"}`, err: ErrDuplicateKey},
	{name: "name in another case is a duplicate", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"allowed","Name":"forbidden"}}`, err: ErrDuplicateKey},
	{name: "Kelvin sign folds to k", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"k":1,"\u212a":2}}`, err: ErrDuplicateKey},
	{name: "duplicate in params._meta", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`, err: ErrDuplicateKey},
	{name: "duplicate after many keys", body: manyKeys(40, `"k7"`), err: ErrDuplicateKey},
	{name: "case-folded duplicate after many keys", body: manyKeys(40, `"\u212a7"`), err: ErrDuplicateKey},
	{name: "many distinct keys", body: manyKeys(40, `"z"`), want: request(`1`, "ping", "")},
	{name: "duplicate key wins over invalid request", body: `{"jsonrpc":"1.0","id":1,"id":1}`, err: ErrDuplicateKey},

	// Invalid requests.
	{name: "jsonrpc missing", body: `{"id":1,"method":"ping"}`, err: ErrInvalidRequest},
	{name: "jsonrpc 1.0", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, err: ErrInvalidRequest},
	{name: "jsonrpc as a number", body: `{"jsonrpc":2.0,"id":1,"method":"ping"}`, err: ErrInvalidRequest},
	{name: "jsonrpc with a space", body: `{"jsonrpc":"2.0 ","id":1,"method":"ping"}`, err: ErrInvalidRequest},
	{name: "method missing", body: `{"jsonrpc":"2.0","id":1}`, err: ErrInvalidRequest},
	{name: "method missing with params", body: `{"jsonrpc":"2.0","id":1,"params":{}}`, err: ErrInvalidRequest},
	{name: "method not a string", body: `{"jsonrpc":"2.0","id":1,"method":["tools/call"]}`, err: ErrInvalidRequest},
	{name: "method null", body: `{"jsonrpc":"2.0","id":1,"method":null}`, err: ErrInvalidRequest},
	{name: "null id", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, err: ErrInvalidRequest},
	{name: "boolean id", body: `{"jsonrpc":"2.0","id":true,"method":"ping"}`, err: ErrInvalidRequest},
	{name: "object id", body: `{"jsonrpc":"2.0","id":{},"method":"ping"}`, err: ErrInvalidRequest},
	{name: "params null", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":null}`, err: ErrInvalidRequest},
	{name: "params string", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}`, err: ErrInvalidRequest},
	{name: "tools/call name not a string", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["a","b"]}}`, err: ErrInvalidRequest},
	{name: "tools/call name null", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}`, err: ErrInvalidRequest},
	{name: "prompts/get name not a string", body: `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":1}}`, err: ErrInvalidRequest},
	{name: "resources/read uri not a string", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":{"path":"/"}}}`, err: ErrInvalidRequest},
	{name: "protocol version not a string", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}}`, err: ErrInvalidRequest},
	{name: "both method and result", body: `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, err: ErrInvalidRequest},
	{name: "both method and error", body: `{"jsonrpc":"2.0","method":"ping","error":{}}`, err: ErrInvalidRequest},
	{name: "response with result and error", body: `{"jsonrpc":"2.0","id":1,"result":{},"error":{}}`, err: ErrInvalidRequest},
	{name: "response without id", body: `{"jsonrpc":"2.0","result":{}}`, err: ErrInvalidRequest},
	{name: "response with null id", body: `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`, err: ErrInvalidRequest},
	{name: "response with params", body: `{"jsonrpc":"2.0","id":1,"result":{},"params":{}}`, err: ErrInvalidRequest},
	{name: "error that is not an object", body: `{"jsonrpc":"2.0","id":1,"error":"boom"}`, err: ErrInvalidRequest},
	{name: "lone case variant of method", body: `{"jsonrpc":"2.0","id":1,"Method":"tools/call"}`, err: ErrInvalidRequest},
	{name: "lone case variant of name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"forbidden"}}`, err: ErrInvalidRequest},
	{name: "lone case variant of id", body: `{"jsonrpc":"2.0","ID":1,"method":"ping"}`, err: ErrInvalidRequest},
	{name: "lone case variant of the _meta version", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolversion":"x"}}}`, err: ErrInvalidRequest},
	{name: "empty object", body: `{}`, err: ErrInvalidRequest},
	{name: "top-level string", body: `"tools/call"`, err: ErrInvalidRequest},
	{name: "top-level number", body: ` 1 `, err: ErrInvalidRequest},
	{name: "top-level null", body: `null`, err: ErrInvalidRequest},

	// Batches.
	{name: "batch of one request", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, err: ErrBatch},
	{name: "empty batch", body: ` [ ] `, err: ErrBatch},
	{name: "malformed batch is a parse error", body: `[{"jsonrpc":"2.0"},]`, err: ErrParse},

	// Parse errors.
	{name: "empty body", body: ``, err: ErrParse},
	{name: "white space only", body: " \r\n\t", err: ErrParse},
	{name: "trailing data", body: `{"jsonrpc":"2.0","id":1,"method":"ping"} x`, err: ErrParse},
	{name: "two messages", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}`, err: ErrParse},
	{name: "trailing NUL", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\x00", err: ErrParse},
	{name: "byte order mark", body: "\ufeff{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", err: ErrParse},
	{name: "parse error wins over duplicate key", body: `{"jsonrpc":"2.0","id":1,"id":1,"method":"ping"`, err: ErrParse},
	{name: "unterminated object", body: `{"jsonrpc":"2.0","id":1,"method":"ping"`, err: ErrParse},
	{name: "unterminated string", body: `{"jsonrpc":"2.0","id":1,"method":"ping`, err: ErrParse},
	{name: "trailing comma in object", body: `{"jsonrpc":"2.0","id":1,"method":"ping",}`, err: ErrParse},
	{name: "trailing comma in array", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,]}`, err: ErrParse},
	{name: "missing colon", body: `{"jsonrpc" "2.0"}`, err: ErrParse},
	{name: "missing comma", body: `{"jsonrpc":"2.0" "id":1}`, err: ErrParse},
	{name: "leading comma", body: `{,"jsonrpc":"2.0"}`, err: ErrParse},
	{name: "single quotes", body: `{'jsonrpc':'2.0'}`, err: ErrParse},
	{name: "unquoted key", body: `{jsonrpc:"2.0"}`, err: ErrParse},
	{name: "raw control character in a string", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\tb\"}}", err: ErrParse},
	{name: "invalid escape", body: `{"jsonrpc":"2.0","id":1,"method":"tools\x2fcall"}`, err: ErrParse},
	{name: "short unicode escape", body: `{"jsonrpc":"2.0","id":1,"method":"\u12"}`, err: ErrParse},
	{name: "non-hex unicode escape", body: `{"jsonrpc":"2.0","id":1,"method":"\u12G4"}`, err: ErrParse},
	{name: "backslash at the end", body: `{"jsonrpc":"2.0","id":1,"method":"\`, err: ErrParse},
	{name: "invalid UTF-8 in a name", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\xffb\"}}", err: ErrParse},
	{name: "invalid UTF-8 deep in the arguments", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"arguments\":{\"q\":[\"\xc3\"]}}}", err: ErrParse},
	{name: "invalid UTF-8 in a key", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"\xfe\":1}", err: ErrParse},
	{name: "overlong UTF-8", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc0\xaf\"}", err: ErrParse},
	{name: "UTF-8 encoded surrogate", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xed\xa0\x80\"}", err: ErrParse},
	{name: "truncated UTF-8 at the end of a string", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xe2\x82\"}", err: ErrParse},
	{name: "nesting deeper than MaxDepth", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":` + nested(MaxDepth-1) + `}}`, err: ErrTooDeep},
	{name: "literal typo", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[tru]}`, err: ErrParse},
	{name: "capitalised literal", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[True]}`, err: ErrParse},
	{name: "truncated literal", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[nul`, err: ErrParse},
	{name: "number with leading zero", body: `{"jsonrpc":"2.0","id":01,"method":"ping"}`, err: ErrParse},
	{name: "number with trailing dot", body: `{"jsonrpc":"2.0","id":1.,"method":"ping"}`, err: ErrParse},
	{name: "number with leading dot", body: `{"jsonrpc":"2.0","id":.5,"method":"ping"}`, err: ErrParse},
	{name: "number with leading plus", body: `{"jsonrpc":"2.0","id":+1,"method":"ping"}`, err: ErrParse},
	{name: "lone minus", body: `{"jsonrpc":"2.0","id":-,"method":"ping"}`, err: ErrParse},
	{name: "minus at the end", body: `{"jsonrpc":"2.0","id":-`, err: ErrParse},
	{name: "exponent without digits", body: `{"jsonrpc":"2.0","id":1e,"method":"ping"}`, err: ErrParse},
	{name: "exponent sign without digits", body: `{"jsonrpc":"2.0","id":1e+,"method":"ping"}`, err: ErrParse},
	{name: "hex number", body: `{"jsonrpc":"2.0","id":0x10,"method":"ping"}`, err: ErrParse},
	{name: "NaN", body: `{"jsonrpc":"2.0","id":NaN,"method":"ping"}`, err: ErrParse},
	{name: "Infinity", body: `{"jsonrpc":"2.0","id":-Infinity,"method":"ping"}`, err: ErrParse},
	{name: "comment", body: `{"jsonrpc":"2.0",/*x*/"id":1,"method":"ping"}`, err: ErrParse},
}

// nested returns n nested arrays and objects, {"a":[{"a":[...]}]}.
func nested(n int) string {
	var open, close strings.Builder
	for i := range n {
		if i%2 == 0 {
			open.WriteString(`{"a":`)
			close.WriteString(`}`)
		} else {
			open.WriteString(`[`)
			close.WriteString(`]`)
		}
	}
	c := []byte(close.String())
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
	return open.String() + "1" + string(c)
}

// manyKeys returns a ping request whose params have n keys k0...k(n-1) and
// then last.
func manyKeys(n int, last string) string {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{`)
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	b.WriteString(last + `:0}}`)
	return b.String()
}

func TestClassify(t *testing.T) {
	for _, tt := range classifyTests {
		t.Run(tt.name, func(t *testing.T) {
			checkClassify(t, []byte(tt.body), tt.want, tt.err)
		})
	}
}

func checkClassify(t *testing.T, body []byte, want Message, wantErr error) {
	t.Helper()
	got, err := Classify(body)
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("Classify = %+v, %v; want error %v", got, err, wantErr)
		}
		if !sameMessage(got, Message{}) {
			t.Errorf("Classify returned %+v with its error", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("Classify: %v", err)
	}
	if !sameMessage(got, want) {
		t.Errorf("Classify = %+v (id %s), want %+v (id %s)", got, got.ID, want, want.ID)
	}
}

// TestClassifyBigBodies has the bodies too big for fuzzing seeds, where
// minimizing a new input would take most of the fuzzing time.
func TestClassifyBigBodies(t *testing.T) {
	big := strings.Repeat("é-ok ", 1<<18) // 1.5 MiB
	manyArgs := new(strings.Builder)
	for i := range 20000 {
		fmt.Fprintf(manyArgs, `"a%d":[%d,"x",{"b":null}],`, i, i)
	}
	tests := []classifyTest{
		{name: "1.5 MiB argument", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"text":"` + big + `"}}}`, want: request(`1`, "tools/call", "t")},
		{name: "1.5 MiB name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + big + `"}}`, want: request(`1`, "tools/call", big)},
		{name: "20000 arguments", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{` + manyArgs.String() + `"z":0}}}`, want: request(`1`, "tools/call", "t")},
		{name: "20000 params keys then a duplicate", body: manyKeys(20000, `"K19999"`), err: ErrDuplicateKey},
		{name: "20000 distinct params keys", body: manyKeys(20000, `"z"`), want: request(`1`, "ping", "")},
		{name: "100000 nested arrays stop the scan at MaxDepth", body: strings.Repeat("[", 100000), err: ErrTooDeep},
		{name: "invalid UTF-8 at the end of a big argument", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"text":"` + big + "\xff" + `"}}}`, err: ErrParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkClassify(t, []byte(tt.body), tt.want, tt.err)
		})
	}
}

// TestClassifyMatchesReference runs the table through FuzzClassify's
// reference too, so that a row that disagrees with encoding/json shows up
// without fuzzing.
func TestClassifyMatchesReference(t *testing.T) {
	for _, tt := range classifyTests {
		want, err := reference([]byte(tt.body))
		if tt.err != nil {
			if !errors.Is(tt.err, err) {
				t.Errorf("%s: reference says %v, table %v", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || !sameMessage(want, tt.want) {
			t.Errorf("%s: reference says %+v, %v; table %+v", tt.name, want, err, tt.want)
		}
	}
}

func TestClassifyIDAliasesBody(t *testing.T) {
	body := []byte(`{"jsonrpc":"2.0","id":"abc","method":"ping"}`)
	m, err := Classify(body)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(body, []byte(`"abc"`)); &body[i] != &m.ID[0] {
		t.Errorf("ID does not alias the body")
	}
}

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil is no error", nil, 0},
		{"parse error", ErrParse, CodeParseError},
		{"too deep is a parse error", ErrTooDeep, CodeParseError},
		{"batch", ErrBatch, CodeInvalidRequest},
		{"duplicate key", ErrDuplicateKey, CodeInvalidRequest},
		{"invalid request", ErrInvalidRequest, CodeInvalidRequest},
		{"header mismatch", ErrHeaderMismatch, CodeHeaderMismatch},
		{"wrapped error", fmt.Errorf("classify: %w", ErrDuplicateKey), CodeInvalidRequest},
		{"foreign error is internal", errors.New("boom"), CodeInternalError},
		{"empty body", classifyErr(``), CodeParseError},
		{"batch body", classifyErr(`[]`), CodeInvalidRequest},
		{"duplicate in a body", classifyErr(`{"jsonrpc":"2.0","id":1,"ID":2,"method":"x"}`), CodeInvalidRequest},
		{"too deep body", classifyErr(strings.Repeat("[", MaxDepth+1)), CodeParseError},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("%s: Code = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func classifyErr(body string) error {
	_, err := Classify([]byte(body))
	return err
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindRequest: "request", KindNotification: "notification", KindResponse: "response", 0: "Kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

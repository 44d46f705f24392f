package mcp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzClassify checks Classify against reference, the same rules stated on
// top of encoding/json: for every body both reject with the same error or
// both accept with the same Message.
func FuzzClassify(f *testing.F) {
	for _, tt := range classifyTests {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := Classify(body)
		want, wantErr := reference(body)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("Classify(%q) = %+v, %v; reference says %v", body, got, err, wantErr)
			}
			if got.Kind != 0 || got.ID != nil || got.Method != "" || got.Name != "" || got.ProtocolVersion != "" {
				t.Fatalf("Classify(%q) returned %+v with error %v", body, got, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Classify(%q): %v; reference accepts it as %+v", body, err, want)
		}
		if !sameMessage(got, want) {
			t.Fatalf("Classify(%q) = %+v (id %s), reference %+v (id %s)", body, got, got.ID, want, want.ID)
		}
		if got.ID != nil && !bytes.Contains(body, got.ID) {
			t.Fatalf("Classify(%q): id %q is not from the body", body, got.ID)
		}
	})
}

func sameMessage(a, b Message) bool {
	return a.Kind == b.Kind && bytes.Equal(a.ID, b.ID) && (a.ID == nil) == (b.ID == nil) &&
		a.Method == b.Method && a.Name == b.Name && a.ProtocolVersion == b.ProtocolVersion
}

// reference is Classify's specification written with encoding/json, which
// parses and unescapes; only the checks encoding/json does not do (UTF-8,
// depth, case-folded duplicate keys) are written out.
func reference(body []byte) (Message, error) {
	if !json.Valid(body) || !utf8.Valid(body) || maxDepth(body) > MaxDepth {
		return Message{}, ErrParse
	}
	switch bytes.TrimLeft(body, " \t\r\n")[0] {
	case '[':
		return Message{}, ErrBatch
	case '{':
	default:
		return Message{}, ErrInvalidRequest
	}
	if hasDuplicateKeys(body) {
		return Message{}, ErrDuplicateKey
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		panic(err) // json.Valid accepted it
	}
	var params, meta map[string]json.RawMessage
	if p, ok := top["params"]; ok && p[0] == '{' {
		json.Unmarshal(p, &params)
		if m, ok := params["_meta"]; ok && m[0] == '{' {
			json.Unmarshal(m, &meta)
		}
	}
	if caseVariant(top, "jsonrpc", "id", "method", "params", "result", "error") ||
		caseVariant(params, "name", "uri", "_meta") ||
		caseVariant(meta, "io.modelcontextprotocol/protocolVersion") {
		return Message{}, ErrInvalidRequest
	}
	invalid := func() (Message, error) { return Message{}, ErrInvalidRequest }

	if v, ok := jsonString(top["jsonrpc"]); !ok || v != "2.0" {
		return invalid()
	}
	var m Message
	id, hasID := top["id"]
	if hasID {
		if id[0] != '"' && id[0] != '-' && (id[0] < '0' || id[0] > '9') {
			return invalid() // null, true, false, object, array
		}
		m.ID = id
	}
	method, hasMethod := top["method"]
	_, hasResult := top["result"]
	rpcErr, hasError := top["error"]
	p, hasParams := top["params"]
	switch {
	case hasMethod && (hasResult || hasError):
		return invalid()
	case hasMethod:
		var ok bool
		if m.Method, ok = jsonString(method); !ok {
			return invalid()
		}
		if hasParams && p[0] != '{' && p[0] != '[' {
			return invalid()
		}
		m.Kind = KindNotification
		if hasID {
			m.Kind = KindRequest
		}
		nameKey := map[string]string{"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}[m.Method]
		if v, present := params[nameKey]; present && nameKey != "" {
			if m.Name, ok = jsonString(v); !ok {
				return invalid()
			}
		}
		if v, present := meta["io.modelcontextprotocol/protocolVersion"]; present {
			if m.ProtocolVersion, ok = jsonString(v); !ok {
				return invalid()
			}
		}
	case hasResult || hasError:
		if (hasResult && hasError) || !hasID || hasParams || (hasError && rpcErr[0] != '{') {
			return invalid()
		}
		m.Kind = KindResponse
	default:
		return invalid()
	}
	return m, nil
}

// jsonString decodes raw if it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// caseVariant reports whether obj has a key that equals one of names under
// case folding without being it.
func caseVariant(obj map[string]json.RawMessage, names ...string) bool {
	for k := range obj {
		for _, n := range names {
			if k != n && strings.EqualFold(k, n) && !slices.Contains(names, k) {
				return true
			}
		}
	}
	return false
}

// maxDepth returns how deeply body's arrays and objects nest.
func maxDepth(body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// hasDuplicateKeys reports whether two keys of the top-level object, of its
// params object or of params._meta are equal under case folding.
func hasDuplicateKeys(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.Token() // '{'
	return duplicateIn(dec, []string{"params", "_meta"})
}

// duplicateIn reads the rest of an object whose '{' dec has read; path names
// the member at each next level whose keys are checked too.
func duplicateIn(dec *json.Decoder, path []string) bool {
	var keys []string
	dup := false
	for dec.More() {
		tok, _ := dec.Token()
		k := tok.(string)
		for _, o := range keys {
			dup = dup || strings.EqualFold(o, k)
		}
		keys = append(keys, k)
		tok, _ = dec.Token()
		switch {
		case len(path) > 0 && k == path[0] && tok == json.Delim('{'):
			dup = duplicateIn(dec, path[1:]) || dup
		case tok == json.Delim('{') || tok == json.Delim('['):
			for depth := 1; depth > 0; {
				switch tok, _ := dec.Token(); tok {
				case json.Delim('{'), json.Delim('['):
					depth++
				case json.Delim('}'), json.Delim(']'):
					depth--
				}
			}
		}
	}
	dec.Token() // '}'
	return dup
}

// FuzzCheckHeaders checks two properties: the headers a conforming client
// sends for a body always pass, and headers that pass agree with the body.
func FuzzCheckHeaders(f *testing.F) {
	for _, tt := range headerTests {
		f.Add([]byte(tt.body), tt.version, tt.method, tt.name, tt.hasMethod, tt.hasName)
	}
	f.Fuzz(func(t *testing.T, body []byte, version, method, name string, hasMethod, hasName bool) {
		m, err := Classify(body)
		if err != nil {
			return
		}
		named := m.Method == "tools/call" || m.Method == "prompts/get" || m.Method == "resources/read"
		modern := version >= Version20260728
		if m.Kind != KindResponse && printable(m.Method) {
			enc := ""
			if named {
				enc = encodeName(m.Name)
			}
			if err := CheckHeaders(m.ProtocolVersion, m.Method, enc, true, named, m); err != nil {
				t.Fatalf("headers of a conforming client rejected for %q: %v", body, err)
			}
		}
		if CheckHeaders(version, method, name, hasMethod, hasName, m) != nil {
			return
		}
		wantName := ""
		if named {
			wantName = m.Name
		}
		switch {
		case m.ProtocolVersion != "" && version != m.ProtocolVersion:
			t.Fatalf("accepted MCP-Protocol-Version %q for body version %q", version, m.ProtocolVersion)
		case modern && m.Kind == KindRequest && (m.ProtocolVersion == "" || !hasMethod || (named && !hasName)):
			t.Fatalf("accepted a %s request without required headers: %+v", version, m)
		case hasMethod && method != m.Method:
			t.Fatalf("accepted Mcp-Method %q for method %q", method, m.Method)
		case hasName && decodeNameRef(name) != wantName:
			t.Fatalf("accepted Mcp-Name %q for name %q", name, wantName)
		}
	})
}

// encodeName encodes a name for Mcp-Name as the specification tells clients
// to: plain when it is printable ASCII without surrounding spaces and does
// not look like the base64 sentinel, else base64.
func encodeName(s string) string {
	sentinel := strings.HasPrefix(s, "=?base64?") && strings.HasSuffix(s, "?=")
	if printable(s) && strings.TrimSpace(s) == s && !sentinel {
		return s
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

// decodeNameRef decodes an Mcp-Name value that CheckHeaders accepted.
func decodeNameRef(v string) string {
	if len(v) >= len("=?base64??=") && strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?=") {
		b, err := base64.StdEncoding.DecodeString(v[len("=?base64?") : len(v)-len("?=")])
		if err != nil {
			return "\x00undecodable"
		}
		return string(b)
	}
	return v
}

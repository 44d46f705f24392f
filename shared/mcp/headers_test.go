package mcp

import (
	"errors"
	"testing"
)

// Bodies for the header tests; modern ones carry the protocol version in
// params._meta as every 2026-07-28 request does.
const (
	modernToolsCall = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	modernRead      = `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///projects/app/config.json","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	modernPrompt    = `{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"Grüße","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	modernSentinel  = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"=?base64?literal?=","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	modernList      = `{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	modernNoMeta    = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}`
	laterToolsCall  = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","_meta":{"io.modelcontextprotocol/protocolVersion":"2027-03-01"}}}`
	legacyToolsCall = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}`
	notification    = `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`
	response        = `{"jsonrpc":"2.0","id":9,"result":{}}`
)

var headerTests = []struct {
	name               string
	body               string
	version            string
	method, nameHeader string
	hasMethod, hasName bool
	err                error
}{
	{name: "modern tools/call with matching headers", body: modernToolsCall, version: "2026-07-28", method: "tools/call", nameHeader: "get_weather", hasMethod: true, hasName: true},
	{name: "modern resources/read names the uri", body: modernRead, version: "2026-07-28", method: "resources/read", nameHeader: "file:///projects/app/config.json", hasMethod: true, hasName: true},
	{name: "modern prompts/get with a base64 name", body: modernPrompt, version: "2026-07-28", method: "prompts/get", nameHeader: "=?base64?R3LDvMOfZQ==?=", hasMethod: true, hasName: true},
	{name: "base64 sentinel in the body must be sent encoded", body: modernSentinel, version: "2026-07-28", method: "tools/call", nameHeader: "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=", hasMethod: true, hasName: true},
	{name: "modern tools/list without Mcp-Name", body: modernList, version: "2026-07-28", method: "tools/list", hasMethod: true},
	{name: "modern tools/list with an empty Mcp-Name", body: modernList, version: "2026-07-28", method: "tools/list", hasMethod: true, hasName: true},
	{name: "modern notification without headers", body: notification, version: "2026-07-28"},
	{name: "modern notification with a matching Mcp-Method", body: notification, version: "2026-07-28", method: "notifications/cancelled", hasMethod: true},
	{name: "legacy request without headers", body: legacyToolsCall, version: "2025-11-25"},
	{name: "legacy request with matching headers", body: legacyToolsCall, version: "2025-06-18", method: "tools/call", nameHeader: "get_weather", hasMethod: true, hasName: true},
	{name: "request without any version header", body: legacyToolsCall},
	{name: "response without headers", body: response, version: "2026-07-28"},
	{name: "later version with matching headers", body: laterToolsCall, version: "2027-03-01", method: "tools/call", nameHeader: "get_weather", hasMethod: true, hasName: true},

	{name: "modern request without Mcp-Method", body: modernToolsCall, version: "2026-07-28", nameHeader: "get_weather", hasName: true, err: ErrHeaderMismatch},
	{name: "modern tools/call without Mcp-Name", body: modernToolsCall, version: "2026-07-28", method: "tools/call", hasMethod: true, err: ErrHeaderMismatch},
	{name: "modern resources/read without Mcp-Name", body: modernRead, version: "2026-07-28", method: "resources/read", hasMethod: true, err: ErrHeaderMismatch},
	{name: "later version without headers", body: laterToolsCall, version: "2027-03-01", err: ErrHeaderMismatch},
	{name: "Mcp-Method names another method", body: modernToolsCall, version: "2026-07-28", method: "tools/list", nameHeader: "get_weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Method differs in case", body: modernToolsCall, version: "2026-07-28", method: "Tools/Call", nameHeader: "get_weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Name names another tool", body: modernToolsCall, version: "2026-07-28", method: "tools/call", nameHeader: "delete_everything", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Name differs in case", body: modernToolsCall, version: "2026-07-28", method: "tools/call", nameHeader: "Get_Weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Name base64 of another name", body: modernToolsCall, version: "2026-07-28", method: "tools/call", nameHeader: "=?base64?ZGVsZXRl?=", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Name with bad base64", body: modernToolsCall, version: "2026-07-28", method: "tools/call", nameHeader: "=?base64?not base64!?=", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "plain value in sentinel form is decoded", body: modernSentinel, version: "2026-07-28", method: "tools/call", nameHeader: "=?base64?literal?=", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Name with raw UTF-8", body: modernPrompt, version: "2026-07-28", method: "prompts/get", nameHeader: "Grüße", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Name with a control character", body: modernToolsCall, version: "2026-07-28", method: "tools/call", nameHeader: "get_weather\t", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Method with a control character", body: modernToolsCall, version: "2026-07-28", method: "tools/call\x00", nameHeader: "get_weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "Mcp-Name on a method without a name", body: modernList, version: "2026-07-28", method: "tools/list", nameHeader: "get_weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "modern notification with a wrong Mcp-Method", body: notification, version: "2026-07-28", method: "tools/call", hasMethod: true, err: ErrHeaderMismatch},
	{name: "legacy request with a wrong Mcp-Name", body: legacyToolsCall, version: "2025-11-25", method: "tools/call", nameHeader: "other", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "legacy request with a wrong Mcp-Method", body: legacyToolsCall, method: "tools/list", hasMethod: true, err: ErrHeaderMismatch},
	{name: "response with an Mcp-Method", body: response, version: "2025-11-25", method: "tools/call", hasMethod: true, err: ErrHeaderMismatch},
	{name: "modern header but no version in the body", body: modernNoMeta, version: "2026-07-28", method: "tools/call", nameHeader: "get_weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "legacy header but a modern body", body: modernToolsCall, version: "2025-11-25", method: "tools/call", nameHeader: "get_weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "no version header but a modern body", body: modernToolsCall, method: "tools/call", nameHeader: "get_weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
	{name: "version header differs from the body", body: laterToolsCall, version: "2026-07-28", method: "tools/call", nameHeader: "get_weather", hasMethod: true, hasName: true, err: ErrHeaderMismatch},
}

func TestCheckHeaders(t *testing.T) {
	for _, tt := range headerTests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Classify([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			err = CheckHeaders(tt.version, tt.method, tt.nameHeader, tt.hasMethod, tt.hasName, m)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("CheckHeaders = %v, want %v", err, tt.err)
			}
			if err != nil && Code(err) != CodeHeaderMismatch {
				t.Errorf("Code = %d, want %d", Code(err), CodeHeaderMismatch)
			}
		})
	}
}

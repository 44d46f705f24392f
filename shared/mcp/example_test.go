package mcp_test

import (
	"fmt"

	"github.com/knaight/knaight/shared/mcp"
)

// A filter classifies the body, checks the headers against it, and only then
// evaluates policy on the method and name.
func Example() {
	body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather",
		"arguments":{"location":"Seattle"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`)
	m, err := mcp.Classify(body)
	if err != nil {
		fmt.Println("400, JSON-RPC code", mcp.Code(err))
		return
	}
	if err := mcp.CheckHeaders("2026-07-28", "tools/call", "get_weather", true, true, m); err != nil {
		fmt.Println("400, JSON-RPC code", mcp.Code(err))
		return
	}
	fmt.Printf("%s %s id=%s name=%s\n", m.Kind, m.Method, m.ID, m.Name)

	_, err = mcp.Classify([]byte(`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"get_weather","Name":"delete_all"}}`))
	fmt.Println(err, mcp.Code(err))
	// Output:
	// request tools/call id=7 name=get_weather
	// mcp: duplicate key at offset 77 -32600
}

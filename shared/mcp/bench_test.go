package mcp

import (
	"encoding/json"
	"strings"
	"testing"
)

// toolsCall1KiB is a typical tools/call body of 1 KiB: a 2026-07-28 _meta
// and a few arguments, one of them a longer text, without escapes.
var toolsCall1KiB = func() []byte {
	head := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_documents",` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"ExampleClient","version":"1.4.2"},` +
		`"io.modelcontextprotocol/clientCapabilities":{"elicitation":{}},"progressToken":"p-7f3a"},` +
		`"arguments":{"collection":"engineering-handbook","limit":20,"includeArchived":false,"filters":{"tags":["security","oncall"],"after":"2026-01-01"},"query":"`
	tail := `"}}}`
	return []byte(head + strings.Repeat("x", 1024-len(head)-len(tail)) + tail)
}()

// BenchmarkClassify1KiB compares Classify with decoding the same body into a
// struct with encoding/json, the baseline it replaces.
func BenchmarkClassify1KiB(b *testing.B) {
	body := toolsCall1KiB
	if len(body) != 1024 {
		b.Fatalf("body is %d bytes", len(body))
	}
	b.Run("Classify", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if m, err := Classify(body); err != nil || m.Name != "search_documents" {
				b.Fatal(m, err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		type request struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Method  string          `json:"method"`
			Params  struct {
				Name string `json:"name"`
				URI  string `json:"uri"`
				Meta struct {
					ProtocolVersion string `json:"io.modelcontextprotocol/protocolVersion"`
				} `json:"_meta"`
			} `json:"params"`
		}
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var r request
			if err := json.Unmarshal(body, &r); err != nil || r.Params.Name != "search_documents" {
				b.Fatal(r, err)
			}
		}
	})
}

func BenchmarkCheckHeaders(b *testing.B) {
	m, err := Classify(toolsCall1KiB)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckHeaders(Version20260728, "tools/call", "search_documents", true, true, m); err != nil {
			b.Fatal(err)
		}
	}
}

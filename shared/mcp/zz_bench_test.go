package mcp
import ("testing";"strings";"encoding/json")
func BenchmarkZZ(b *testing.B) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","x":"` + strings.Repeat("x", 1000) + `"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","x":[` + strings.Repeat("1,", 300) + `1]}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","x":{` + strings.Repeat(`"a":1,`, 100) + `"b":1}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"abc","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
	} {
		b.Run("", func(b *testing.B) { b.ReportAllocs(); body := []byte(s); for b.Loop() { if _, err := Classify(body); err != nil { b.Fatal(err) } } })
	}
}
func BenchmarkZZValid(b *testing.B) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","x":"` + strings.Repeat("x", 1000) + `"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","x":[` + strings.Repeat("1,", 300) + `1]}`,
	} {
		b.Run("", func(b *testing.B) { body := []byte(s); for b.Loop() { if !json.Valid(body) { b.Fatal() } } })
	}
}

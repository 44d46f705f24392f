package sign_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/knaight/knaight/shared/sign"
)

// An upstream MCP server accepts only requests the gateway signed.
func Example_upstream() {
	gatewayKey := bytes.Repeat([]byte{0x5a}, 32) // from the manager, never in code
	v := sign.Verifier{Replay: sign.NewMemoryReplayCache(100_000)}
	requireGateway := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
			if err != nil {
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			h, err := v.VerifyHTTP(r, body, func(agent, keyID string) ([][]byte, error) { return [][]byte{gatewayKey}, nil })
			if err != nil {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.Header.Set("X-Verified-Agent", h.Agent)
			next.ServeHTTP(w, r)
		})
	}
	mcp := httptest.NewServer(requireGateway(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Verified-Agent"))
	})))
	defer mcp.Close()

	// What the gateway does for each request it forwards.
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	req, _ := http.NewRequest("POST", mcp.URL+"/mcp", bytes.NewReader(body))
	sign.SignHTTP(req, body, gatewayKey, "ans://v1.0.0.deploy-bot.agents.example.com", "", time.Now())
	resp, _ := http.DefaultClient.Do(req)
	out, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(out))

	unsigned, _ := http.Post(mcp.URL+"/mcp", "application/json", bytes.NewReader(body))
	fmt.Println(unsigned.StatusCode)
	// Output:
	// 200 hello ans://v1.0.0.deploy-bot.agents.example.com
	// 401
}

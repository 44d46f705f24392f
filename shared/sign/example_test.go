package sign_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/knaight/knaight/shared/sign"
)

type agentKey struct{}

// An upstream MCP server accepts only requests the gateway signed. The
// gateway signs with the upstream's key and names the calling agent.
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
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), agentKey{}, h.Agent)))
		})
	}
	mcp := httptest.NewServer(requireGateway(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Context().Value(agentKey{}))
	})))
	defer mcp.Close()

	// What the gateway does for each request it forwards.
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	req, err := http.NewRequest("POST", mcp.URL+"/mcp", bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	if err := sign.SignHTTP(req, body, gatewayKey, "ans://v1.0.0.deploy-bot.agents.example.com", "", time.Now()); err != nil {
		panic(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(out))

	// The same request again is a replay; an unsigned one is refused.
	replay, err := http.NewRequest("POST", mcp.URL+"/mcp", bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	replay.Header = req.Header.Clone()
	again, err := http.DefaultClient.Do(replay)
	if err != nil {
		panic(err)
	}
	again.Body.Close()
	fmt.Println(again.StatusCode)
	unsigned, err := http.Post(mcp.URL+"/mcp", "application/json", bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	unsigned.Body.Close()
	fmt.Println(unsigned.StatusCode)
	// Output:
	// 200 hello ans://v1.0.0.deploy-bot.agents.example.com
	// 401
	// 401
}

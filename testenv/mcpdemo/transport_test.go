package mcpdemo

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/sign"
)

// gatewayFront verifies agents' requests the way the gateway does: the
// bearer token, and the signature under the named agent's key, once each.
func gatewayFront(t *testing.T, token string, agentKeys map[string][]byte) *httptest.Server {
	t.Helper()
	v := sign.Verifier{Replay: sign.NewMemoryReplayCache(1000)}
	keys := func(agent, keyID string) ([][]byte, error) {
		if agent != testAgent {
			return nil, nil
		}
		if k, ok := agentKeys[keyID]; ok {
			return [][]byte{k}, nil
		}
		return nil, nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/mcp", http.StatusTemporaryRedirect)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+token {
			http.Error(w, "token: "+got, http.StatusUnauthorized)
			return
		}
		if _, err := v.VerifyHTTP(r, body, keys); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		io.WriteString(w, r.Method+" "+r.RequestURI+" "+string(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSigningTransport(t *testing.T) {
	agentKey := bytes.Repeat([]byte{0x42}, 32)
	srv := gatewayFront(t, "tok_agent", map[string][]byte{"hk_1": agentKey})
	var tick atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(tick.Add(1)) * time.Millisecond) }
	good := &SigningTransport{Token: "tok_agent", Agent: testAgent, KeyID: "hk_1", Key: agentKey, Now: clock}

	for _, tc := range []struct {
		name, method, target, body string
		rt                         *SigningTransport
		want                       string // response body, or "" for a refusal
	}{
		{"POST with a JSON-RPC body", "POST", "/mcp", initialize, good, "POST /mcp " + initialize},
		{"the same POST again, signed anew", "POST", "/mcp", initialize, good, "POST /mcp " + initialize},
		{"GET without a body", "GET", "/mcp", "", good, "GET /mcp "},
		{"DELETE without a body", "DELETE", "/mcp", "", good, "DELETE /mcp "},
		{"target signed as sent", "POST", "/mcp/%7Bid%7D?q=a%20b", "{}", good, "POST /mcp/%7Bid%7D?q=a%20b {}"},
		{"a redirect is signed again", "POST", "/moved", "{}", good, "POST /mcp {}"},
		{"without the token", "POST", "/mcp", "{}", &SigningTransport{Agent: testAgent, KeyID: "hk_1", Key: agentKey}, ""},
		{"another agent's name", "POST", "/mcp", "{}", &SigningTransport{Token: "tok_agent", Agent: "ans://v1.0.0.other.example.com", KeyID: "hk_1", Key: agentKey}, ""},
		{"a key the gateway does not know", "POST", "/mcp", "{}", &SigningTransport{Token: "tok_agent", Agent: testAgent, KeyID: "hk_1", Key: testKey}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.target, body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: tc.rt}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			switch {
			case tc.want == "" && resp.StatusCode != http.StatusUnauthorized:
				t.Errorf("got %d %s, want 401", resp.StatusCode, got)
			case tc.want != "" && (resp.StatusCode != http.StatusOK || string(got) != tc.want):
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, tc.want)
			}
			if req.Header.Get(sign.HeaderSignature) != "" || req.Header.Get("Authorization") != "" {
				t.Error("the caller's request was changed")
			}
		})
	}
}

func TestSigningTransportRefusesAWeakKey(t *testing.T) {
	var sent atomic.Bool
	rt := &SigningTransport{
		Base:  roundTripFunc(func(*http.Request) (*http.Response, error) { sent.Store(true); return nil, errors.New("sent") }),
		Agent: testAgent, Key: []byte("short"),
	}
	req, err := http.NewRequestWithContext(t.Context(), "POST", "http://gateway.invalid/mcp", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RoundTrip(req); !errors.Is(err, sign.ErrWeakKey) || sent.Load() {
		t.Errorf("RoundTrip: %v (sent %v), want ErrWeakKey and nothing sent", err, sent.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

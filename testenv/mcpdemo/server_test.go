package mcpdemo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/knaight/knaight/shared/sign"
)

const (
	testAgent = "ans://v1.0.0.deploy-bot.agents.example.com"
	testKID   = "uk_demo_1"
	testTrust = "L3"
)

var testKey = bytes.Repeat([]byte{0x5a}, 32)

// gatewayTransport does to each request what the gateway does to one it
// allows: a new decision id, the agent's trust level, and a signature with
// the upstream key naming the agent.
type gatewayTransport struct {
	signer *SigningTransport

	mu        sync.Mutex
	decisions []string
}

func newGatewayTransport(key []byte, kid string) *gatewayTransport {
	return &gatewayTransport{signer: &SigningTransport{Agent: testAgent, KeyID: kid, Key: key}}
}

func (g *gatewayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	id := rand.Text()
	g.mu.Lock()
	g.decisions = append(g.decisions, id)
	g.mu.Unlock()
	out.Header.Set(HeaderDecisionID, id)
	out.Header.Set(HeaderTrustLevel, testTrust)
	return g.signer.RoundTrip(out)
}

func (g *gatewayTransport) sent(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Contains(g.decisions, id)
}

// exchange is one HTTP response the demo server started.
type exchange struct {
	method, contentType string
	status              int
}

// recorder records the status of every response as soon as it starts,
// since an SSE stream's handler returns only when the stream ends.
type recorder struct {
	mu   sync.Mutex
	seen []exchange
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&statusWriter{ResponseWriter: w, method: r.Method, rec: rec}, r)
	})
}

func (rec *recorder) saw(want exchange) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Contains(rec.seen, want)
}

type statusWriter struct {
	http.ResponseWriter
	method  string
	rec     *recorder
	written bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.written {
		w.written = true
		ct, _, _ := strings.Cut(w.Header().Get("Content-Type"), ";")
		w.rec.mu.Lock()
		w.rec.seen = append(w.rec.seen, exchange{method: w.method, status: status, contentType: ct})
		w.rec.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets the SDK's http.ResponseController flush SSE events.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newDemo(t *testing.T) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(rec.wrap(NewHandler(Options{UpstreamKeys: map[string][]byte{testKID: testKey, "uk_old": bytes.Repeat([]byte{0x33}, 32)}})))
	t.Cleanup(srv.Close)
	return srv, rec
}

func connect(ctx context.Context, url string, rt http.RoundTripper, version string, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1.0.0"}, opts)
	t := &mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: &http.Client{Transport: rt}}
	return c.Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: version})
}

// eventually polls cond for things the SDK does in the background.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
	}
}

func text(t *testing.T, content []mcp.Content) string {
	t.Helper()
	if len(content) != 1 {
		t.Fatalf("got %d content items, want 1", len(content))
	}
	tc, ok := content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T, want text", content[0])
	}
	return tc.Text
}

func structured[T any](t *testing.T, res *mcp.CallToolResult) T {
	t.Helper()
	var out T
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	return out
}

func TestSignedClientUsesEveryFeature(t *testing.T) {
	for _, tc := range []struct {
		name, ask, negotiated string
		stateful              bool
	}{
		{"2025-06-18 session", "2025-06-18", "2025-06-18", true},
		{"2025-11-25 session", "2025-11-25", "2025-11-25", true},
		{"2026-07-28 sessionless, the SDK's default", "", "2026-07-28", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, rec := newDemo(t)
			gw := newGatewayTransport(testKey, testKID)
			var mu sync.Mutex
			var progress []string
			cs, err := connect(t.Context(), srv.URL, gw, tc.ask, &mcp.ClientOptions{
				ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
					mu.Lock()
					progress = append(progress, req.Params.Message)
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := cs.InitializeResult().ProtocolVersion; got != tc.negotiated {
				t.Errorf("protocol version %q, want %q", got, tc.negotiated)
			}
			if got := cs.ID() != ""; got != tc.stateful {
				t.Errorf("session id %q: stateful %v, want %v", cs.ID(), got, tc.stateful)
			}
			ctx := t.Context()

			var names []string
			for tool, err := range cs.Tools(ctx, nil) {
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			if want := []string{ToolDeploy, ToolEcho, ToolTime}; !slices.Equal(names, want) {
				t.Errorf("tools %v, want %v", names, want)
			}

			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolEcho, Arguments: map[string]any{"text": "hello"}})
			if err != nil || res.IsError {
				t.Fatalf("echo: %v %+v", err, res)
			}
			if got := text(t, res.Content); !strings.HasPrefix(got, "hello\n") || !strings.Contains(got, "called by "+testAgent) {
				t.Errorf("echo said %q", got)
			}
			e := structured[EchoOutput](t, res)
			if e.Text != "hello" || e.CalledBy != testAgent || e.TrustLevel != testTrust || !gw.sent(e.DecisionID) {
				t.Errorf("echo returned %+v", e)
			}

			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolTime})
			if err != nil || res.IsError {
				t.Fatalf("time: %v %+v", err, res)
			}
			if _, err := time.Parse(time.RFC3339Nano, text(t, res.Content)); err != nil {
				t.Errorf("time: %v", err)
			}

			params := &mcp.CallToolParams{Name: ToolDeploy, Arguments: map[string]any{"service": "billing", "version": "1.2.3"}}
			params.SetProgressToken("deploy-1")
			res, err = cs.CallTool(ctx, params)
			if err != nil || res.IsError {
				t.Fatalf("deploy: %v %+v", err, res)
			}
			if got := text(t, res.Content); got != "deployed billing 1.2.3" {
				t.Errorf("deploy said %q", got)
			}
			if d := structured[DeployOutput](t, res); d.DeployedBy != testAgent || !gw.sent(d.DecisionID) {
				t.Errorf("deploy returned %+v", d)
			}
			eventually(t, "three progress notifications", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return slices.Equal(progress, deploySteps)
			})

			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolDeploy, Arguments: map[string]any{"service": "billing", "version": ""}})
			if err != nil || !res.IsError {
				t.Errorf("deploy without a version: %v %+v, want a tool error", err, res)
			}

			rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: ResourceReadme})
			if err != nil {
				t.Fatal(err)
			}
			if len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, "Knaight demo upstream") {
				t.Errorf("readme: %+v", rr.Contents)
			}

			pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: PromptSummary, Arguments: map[string]string{"text": "The gateway signs."}})
			if err != nil {
				t.Fatal(err)
			}
			if len(pr.Messages) != 1 || !strings.Contains(text(t, []mcp.Content{pr.Messages[0].Content}), "The gateway signs.") {
				t.Errorf("prompt: %+v", pr.Messages)
			}
			if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: PromptSummary}); err == nil {
				t.Error("prompt without its argument: no error")
			}

			if tc.stateful {
				// The SDK client opens the standalone SSE stream with a signed
				// GET after the handshake; tool results arrive as SSE events.
				eventually(t, "the standalone SSE stream", func() bool {
					return rec.saw(exchange{method: http.MethodGet, status: http.StatusOK, contentType: "text/event-stream"})
				})
			}
			if !rec.saw(exchange{method: http.MethodPost, status: http.StatusOK, contentType: "text/event-stream"}) {
				t.Error("no POST was answered with an SSE stream")
			}
			if err := cs.Close(); err != nil {
				t.Error(err)
			}
			if tc.stateful && !rec.saw(exchange{method: http.MethodDelete, status: http.StatusNoContent}) {
				t.Error("the signed DELETE did not end the session")
			}
		})
	}
}

// The SDK runs a session's handlers in the context of the request that
// opened the session; each call must still report its own decision.
func TestEachCallReportsItsOwnDecision(t *testing.T) {
	srv, _ := newDemo(t)
	gw := newGatewayTransport(testKey, testKID)
	cs, err := connect(t.Context(), srv.URL, gw, "2025-11-25", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var ids []string
	for range 2 {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: ToolEcho, Arguments: map[string]any{"text": "x"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, structured[EchoOutput](t, res).DecisionID)
	}
	gw.mu.Lock()
	first := gw.decisions[0] // the initialize request's
	gw.mu.Unlock()
	if ids[0] == ids[1] || ids[0] == first || ids[1] == first || !gw.sent(ids[0]) || !gw.sent(ids[1]) {
		t.Errorf("decision ids %v (initialize %s): want two new ones", ids, first)
	}
}

func TestOlderUpstreamKeyStillAccepted(t *testing.T) {
	srv, _ := newDemo(t)
	for i, kid := range []string{"uk_old", ""} {
		gw := newGatewayTransport(bytes.Repeat([]byte{0x33}, 32), kid)
		// The key id is not signed, so both sessions' identical
		// notifications/initialized would be one signature, a replay, if
		// signed in the same millisecond: a second apart, they are not.
		gw.signer.Now = func() time.Time { return time.Now().Add(time.Duration(i) * time.Second) }
		cs, err := connect(t.Context(), srv.URL, gw, "2025-06-18", nil)
		if err != nil {
			t.Fatalf("key id %q: %v", kid, err)
		}
		cs.Close()
	}
}

func TestUnsignedClientIsRefused(t *testing.T) {
	srv, rec := newDemo(t)
	for name, rt := range map[string]http.RoundTripper{
		"no signature":    http.DefaultTransport,
		"agent's own key": &SigningTransport{Agent: testAgent, KeyID: testKID, Key: bytes.Repeat([]byte{0x01}, 32)},
	} {
		t.Run(name, func(t *testing.T) {
			cs, err := connect(t.Context(), srv.URL, rt, "2025-11-25", nil)
			if err == nil {
				cs.Close()
				t.Fatal("connected")
			}
		})
	}
	if !rec.saw(exchange{method: http.MethodPost, status: http.StatusUnauthorized, contentType: "application/json"}) {
		t.Error("the handler did not answer 401")
	}
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`

// rawRequest is a request to the demo as the gateway would forward it,
// signed over signedBody (nil: the body sent) with key, or unsigned if key
// is nil.
type rawRequest struct {
	method, path string
	body         string
	signedBody   *string
	key          []byte
	kid          string
	at           time.Time
	noDecision   bool
}

func (r rawRequest) build(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), r.method, url+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if !r.noDecision {
		req.Header.Set(HeaderDecisionID, hex.EncodeToString(bytes.Repeat([]byte{7}, 16)))
	}
	if r.key != nil {
		signed := r.body
		if r.signedBody != nil {
			signed = *r.signedBody
		}
		at := r.at
		if at.IsZero() {
			at = time.Now()
		}
		if err := sign.SignHTTP(req, []byte(signed), r.key, testAgent, r.kid, at); err != nil {
			t.Fatal(err)
		}
	}
	return req
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	var body struct {
		JSONRPC string `json:"jsonrpc"`
		ID      any    `json:"id"`
		Error   struct {
			Code int `json:"code"`
			Data struct {
				Reason string `json:"reason"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%d: body is not JSON-RPC: %v", resp.StatusCode, err)
	}
	if body.JSONRPC != "2.0" || body.ID != nil || body.Error.Code == 0 {
		t.Errorf("%d: not a JSON-RPC error response: %+v", resp.StatusCode, body)
	}
	return resp.StatusCode, body.Error.Data.Reason
}

func TestGatewaySignatureIsRequired(t *testing.T) {
	srv, _ := newDemo(t)
	other := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","arguments":{"service":"billing","version":"6.6.6"}}}`
	for _, tc := range []struct {
		name   string
		req    rawRequest
		status int
		reason string
	}{
		{"signed initialize", rawRequest{method: "POST", path: "/mcp", body: initialize, key: testKey, kid: testKID}, 200, ""},
		{"signed on another path, which any path serves", rawRequest{method: "POST", path: "/other?x=1", body: initialize, key: testKey, kid: testKID}, 200, ""},
		{"unsigned POST", rawRequest{method: "POST", path: "/mcp", body: initialize}, 401, "signature_missing"},
		{"unsigned GET stream", rawRequest{method: "GET", path: "/mcp"}, 401, "signature_missing"},
		{"unsigned DELETE", rawRequest{method: "DELETE", path: "/mcp"}, 401, "signature_missing"},
		{"unknown key id", rawRequest{method: "POST", path: "/mcp", body: initialize, key: testKey, kid: "uk_nope"}, 401, "signature_unknown_key"},
		{"wrong key under a known id", rawRequest{method: "POST", path: "/mcp", body: initialize, key: bytes.Repeat([]byte{1}, 32), kid: testKID}, 401, "signature_invalid"},
		{"tampered body", rawRequest{method: "POST", path: "/mcp", body: other, signedBody: new(initialize), key: testKey, kid: testKID}, 401, "signature_invalid"},
		{"stale signature", rawRequest{method: "POST", path: "/mcp", body: initialize, key: testKey, kid: testKID, at: time.Now().Add(-DefaultSkew - time.Second)}, 401, "timestamp_skew"},
		{"signed GET over a body it does not have", rawRequest{method: "GET", path: "/mcp", signedBody: new("{}"), key: testKey, kid: testKID}, 401, "signature_invalid"},
		{"signed without a decision id", rawRequest{method: "POST", path: "/mcp", body: initialize, key: testKey, kid: testKID, noDecision: true}, 401, ReasonDecisionMissing},
		{"body too large", rawRequest{method: "POST", path: "/mcp", body: strings.Repeat(" ", MaxBodyBytes+1), key: testKey, kid: testKID}, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, reason := send(t, tc.req.build(t, srv.URL))
			if status != tc.status || reason != tc.reason {
				t.Errorf("got %d %q, want %d %q", status, reason, tc.status, tc.reason)
			}
		})
	}
}

func TestReplayedRequestIsRefused(t *testing.T) {
	srv, _ := newDemo(t)
	req := rawRequest{method: "POST", path: "/mcp", body: initialize, key: testKey, kid: testKID}.build(t, srv.URL)
	if status, reason := send(t, req); status != 200 {
		t.Fatalf("first: %d %s", status, reason)
	}
	again, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/mcp", strings.NewReader(initialize))
	if err != nil {
		t.Fatal(err)
	}
	again.Header = req.Header.Clone()
	if status, reason := send(t, again); status != 401 || reason != "replay" {
		t.Errorf("replay: %d %q, want 401 replay", status, reason)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"one key", Options{UpstreamKeys: map[string][]byte{"k": testKey}}, true},
		{"no keys", Options{}, false},
		{"empty key id", Options{UpstreamKeys: map[string][]byte{"": testKey}}, false},
		{"short key", Options{UpstreamKeys: map[string][]byte{"k": make([]byte, sign.MinKeySize-1)}}, false},
		{"negative skew", Options{UpstreamKeys: map[string][]byte{"k": testKey}, Skew: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.o.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

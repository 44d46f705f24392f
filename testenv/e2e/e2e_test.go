// Package e2e runs the whole system the way a user does: real PostgreSQL,
// the manager process, the demo upstream MCP server, and the real
// plugin.wasm in the testenv gateway in front of it, driven by the official
// MCP Go SDK client with a token from /oauth2/token and the agent's HMAC
// key. It follows the original design's demo flow and its edges.
package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/knaight/knaight/shared/sign"
	"github.com/knaight/knaight/testenv/mcpdemo"
	"github.com/knaight/knaight/testenv/postgres"
	"github.com/knaight/knaight/testenv/stack"
)

func TestMain(m *testing.M) { os.Exit(postgres.Main(m)) }

// staleness is the gateways' fail-closed limit in this suite: short, so
// that the manager-down part does not wait five minutes.
const staleness = 8 * time.Second

// agent is the demo agent as the suite knows it.
type agent struct {
	id, ans, kid string
	key          []byte
	clientID     string
	secret       string
}

func TestDemoFlow(t *testing.T) {
	ctx := t.Context()
	// With an Envoy on PATH (or ENVOY_BIN) the suite runs through it and
	// envoy/envoy.yaml; otherwise through the testenv gateway.
	envoy := stack.EnvoyBinary()
	if envoy != "" {
		t.Logf("gateway: %s with envoy/envoy.yaml", envoy)
	}
	st, err := stack.Start(ctx, stack.Options{Dir: t.TempDir(), DatabaseURL: postgres.NewDatabase(t), MaxStaleness: staleness, Envoy: envoy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	api := st.API

	// Register an agent of the demo role: ANS ACTIVE at once, L1.
	a := demoAgent(t, st)
	token := oauthToken(t, st, a)

	deploy := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","arguments":{"service":"web","version":"1.2.3"}}}`

	t.Run("privileged tool denied while trust is below the threshold", func(t *testing.T) {
		waitFor(t, "trust_below_threshold", func() string { return rawCall(t, st, a, token, deploy).reason })
	})

	t.Run("a signed trust webhook raises trust and the same call is allowed", func(t *testing.T) {
		now := time.Now().UTC().Format(time.RFC3339)
		signal(t, st, a, stack.IdentitySignals...)
		var src struct{ ID, Secret string }
		must(t, api.Do(ctx, "POST", "/api/v1/trust/sources", map[string]any{"name": "scorecard", "kinds": []string{"scorecard.score"}}, 201, &src))
		secret, err := base64.RawURLEncoding.DecodeString(src.Secret)
		must(t, err)
		body, _ := json.Marshal(map[string]any{"ansName": a.ans, "kind": "scorecard.score", "value": 8, "observedAt": now})
		stamp := time.Now().UTC().Format(time.RFC3339)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(stamp + "."))
		m.Write(body)
		req, _ := http.NewRequestWithContext(ctx, "POST", st.Manager.URL+"/api/v1/trust/sources/"+src.ID+"/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Knaight-Timestamp", stamp)
		req.Header.Set("X-Knaight-Signature", "hmac-sha256="+hex.EncodeToString(m.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("webhook: %d %s", resp.StatusCode, raw)
		}
		waitFor(t, "allowed", func() string { return rawCall(t, st, a, token, deploy).reason })
	})

	t.Run("the MCP SDK client works through the gateway", func(t *testing.T) {
		session := connect(t, st, a, token, "2025-11-25")
		defer session.Close()
		tools, err := session.ListTools(ctx, nil)
		must(t, err)
		if len(tools.Tools) < 3 {
			t.Errorf("tools: %+v", tools.Tools)
		}
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": "web", "version": "2"}})
		must(t, err)
		if res.IsError || !strings.Contains(text(res), "deployed web 2") {
			t.Errorf("deploy: %s", text(res))
		}
		res, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
		must(t, err)
		if !strings.Contains(text(res), "called by "+a.ans) {
			t.Errorf("echo does not name the caller the gateway vouched for: %s", text(res))
		}
		// A tool outside the allowed endpoints is denied, while tools/list
		// was allowed.
		if _, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "time"}); err == nil {
			t.Error("the time tool, outside the policy, was allowed")
		}
		if got := rawCall(t, st, a, token, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"time"}}`); got.reason != "endpoint_not_allowed" {
			t.Errorf("time tool: %s", got.reason)
		}
	})

	t.Run("a replayed request is rejected", func(t *testing.T) {
		req := signedRequest(t, st, a, token, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, time.Now())
		first := do(t, req())
		second := do(t, req())
		if first.reason != "allowed" || second.reason != "replay" || second.status != 401 {
			t.Errorf("first %+v, replay %+v", first, second)
		}
	})

	t.Run("without a token: 401 pointing at metadata the client can fetch", func(t *testing.T) {
		got := rawCall(t, st, a, "", deploy)
		if got.status != 401 || got.reason != "token_missing" {
			t.Fatalf("%+v", got)
		}
		const prefix = `Bearer resource_metadata="`
		if !strings.HasPrefix(got.wwwAuth, prefix) {
			t.Fatalf("WWW-Authenticate %q", got.wwwAuth)
		}
		mdURL := strings.TrimSuffix(strings.TrimPrefix(got.wwwAuth, prefix), `"`)
		resp, err := http.Get(mdURL)
		must(t, err)
		defer resp.Body.Close()
		var md struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		must(t, json.NewDecoder(resp.Body).Decode(&md))
		if resp.StatusCode != 200 || md.Resource != st.Resource || len(md.AuthorizationServers) != 1 || md.AuthorizationServers[0] != st.Manager.URL {
			t.Errorf("metadata %d %+v", resp.StatusCode, md)
		}
	})

	t.Run("a revoked token is denied", func(t *testing.T) {
		var intro struct {
			JTI string `json:"jti"`
		}
		must(t, api.Do(ctx, "POST", "/api/v1/enforcement/tokens/introspect", map[string]any{"token": token}, 200, &intro))
		must(t, api.Do(ctx, "POST", "/api/v1/enforcement/tokens/revoke", map[string]any{
			"organizationId": st.OrganizationID, "tokenId": intro.JTI, "reason": "e2e"}, 200, nil))
		waitFor(t, "token_revoked", func() string { return rawCall(t, st, a, token, deploy).reason })
	})

	t.Run("a suspended ANS registration is denied", func(t *testing.T) {
		token = oauthToken(t, st, a)
		waitFor(t, "allowed", func() string { return rawCall(t, st, a, token, deploy).reason })
		must(t, api.Do(ctx, "POST", "/api/v1/agents/"+a.id+"/ans/status", map[string]any{"status": "SUSPENDED", "reason": "e2e"}, 200, nil))
		waitForAny(t, []string{"agent_inactive", "token_revoked"}, func() string { return rawCall(t, st, a, token, deploy).reason })
		must(t, api.Do(ctx, "POST", "/api/v1/agents/"+a.id+"/ans/status", map[string]any{"status": "ACTIVE", "reason": "e2e"}, 200, nil))
		token = oauthToken(t, st, a)
		waitFor(t, "allowed", func() string { return rawCall(t, st, a, token, deploy).reason })
	})

	t.Run("manager down: enforce until stale, then fail closed; records arrive once it is back", func(t *testing.T) {
		st.Manager.Stop()
		var ids []string
		got := rawCall(t, st, a, token, deploy)
		if got.reason != "allowed" {
			t.Fatalf("right after the manager stopped: %+v", got)
		}
		ids = append(ids, got.decisionID)
		deadline := time.Now().Add(staleness + 30*time.Second)
		for {
			got = rawCall(t, st, a, token, deploy)
			ids = append(ids, got.decisionID)
			if got.status == 503 && got.reason == "snapshot_stale" {
				break
			}
			if got.reason != "allowed" || time.Now().After(deadline) {
				t.Fatalf("while the manager is down: %+v", got)
			}
			time.Sleep(500 * time.Millisecond)
		}
		must(t, st.Manager.Restart(ctx))
		waitFor(t, "allowed", func() string { return rawCall(t, st, a, token, deploy).reason })

		// Each decision made while the manager was away is stored once.
		deadline = time.Now().Add(60 * time.Second)
		for {
			var calls struct {
				Items []struct{ ID string } `json:"items"`
			}
			must(t, api.Do(ctx, "GET", "/api/v1/enforcement/calls?limit=500", nil, 200, &calls))
			count := map[string]int{}
			for _, it := range calls.Items {
				count[it.ID]++
			}
			missing := 0
			for _, id := range ids {
				if count[id] > 1 {
					t.Fatalf("decision %s stored %d times", id, count[id])
				}
				if count[id] == 0 {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d decisions made while the manager was down never arrived", missing, len(ids))
			}
			time.Sleep(time.Second)
		}
	})

	t.Run("the audit ledger verifies", func(t *testing.T) {
		var v struct {
			OK     bool `json:"ok"`
			Events int  `json:"events"`
		}
		must(t, api.Do(ctx, "GET", "/api/v1/audit/verify", nil, 200, &v))
		if !v.OK || v.Events == 0 {
			t.Errorf("audit verify: %+v", v)
		}
	})
}

// demoAgent registers an agent of the demo role, ANS ACTIVE at once (L1),
// with an OAuth client for its tokens.
func demoAgent(t *testing.T, st *stack.Stack) agent {
	t.Helper()
	a, err := st.RegisterAgent(t.Context(), "deploy-bot")
	must(t, err)
	return agent{id: a.ID, ans: a.ANSName, kid: a.KeyID, key: a.Key, clientID: a.ClientID, secret: a.ClientSecret}
}

// signal records trust signals for the agent through the API.
func signal(t *testing.T, st *stack.Stack, a agent, signals ...stack.Signal) {
	t.Helper()
	must(t, st.AddSignals(t.Context(), a.stack(), "e2e", signals...))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// oauthToken gets a gateway token as the agent itself does: OAuth
// client_credentials with its client secret, for the gateway's resource.
func oauthToken(t *testing.T, st *stack.Stack, a agent) string {
	t.Helper()
	token, err := st.Token(t.Context(), nil, a.stack())
	must(t, err)
	return token
}

// stack is the agent as the stack package knows it.
func (a agent) stack() stack.Agent {
	return stack.Agent{ID: a.id, ANSName: a.ans, KeyID: a.kid, Key: a.key, ClientID: a.clientID, ClientSecret: a.secret}
}

// outcome is what the gateway answered to one request.
type outcome struct {
	status                      int
	reason, decisionID, wwwAuth string
}

// signedRequest returns a function making the same signed request (same
// timestamp, so the same signature) each time it is called.
func signedRequest(t *testing.T, st *stack.Stack, a agent, token, body string, at time.Time) func() *http.Request {
	t.Helper()
	return func() *http.Request {
		req, _ := http.NewRequest("POST", st.Resource, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		must(t, sign.SignHTTP(req, []byte(body), a.key, a.ans, a.kid, at))
		return req
	}
}

// rawCall sends one freshly signed JSON-RPC request through the gateway.
func rawCall(t *testing.T, st *stack.Stack, a agent, token, body string) outcome {
	t.Helper()
	return do(t, signedRequest(t, st, a, token, body, time.Now())())
}

func do(t *testing.T, req *http.Request) outcome {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	o := outcome{status: resp.StatusCode, reason: resp.Header.Get("X-Knaight-Reason"),
		decisionID: resp.Header.Get("X-Knaight-Decision-Id"), wwwAuth: resp.Header.Get("WWW-Authenticate")}
	if o.reason == "" && resp.StatusCode/100 == 2 {
		o.reason = "allowed"
	}
	return o
}

// waitFor retries until got returns want, with a generous deadline: how
// fast changes propagate is the benchmarks' business, not this suite's.
func waitFor(t *testing.T, want string, got func() string) {
	t.Helper()
	waitForAny(t, []string{want}, got)
}

func waitForAny(t *testing.T, want []string, got func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = got()
		for _, w := range want {
			if last == w {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("still %q after 30 s, want one of %q", last, want)
}

// connect opens an MCP session through the gateway with the official SDK
// client, signing every request with the agent's key.
func connect(t *testing.T, st *stack.Stack, a agent, token, version string) *mcp.ClientSession {
	t.Helper()
	httpClient := &http.Client{Transport: &mcpdemo.SigningTransport{Token: token, Agent: a.ans, KeyID: a.kid, Key: a.key}}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: st.Resource, HTTPClient: httpClient},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect through the gateway: %v", err)
	}
	return session
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

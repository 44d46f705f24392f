package filter

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/sign"
	"github.com/knaight/knaight/shared/snapshot"
)

// The fixture is one organization as the manager would describe it: a
// gateway credential, the manager's snapshot key, a token key, two agents
// (one ACTIVE, one SUSPENDED) and a policy. Keys are fixed so that failures
// reproduce.

const (
	fxIssuer   = "https://manager.example"
	fxResource = "https://mcp.example.com/mcp"
	fxAgent    = "ans://v1.0.0.deploy-bot.agents.example.com"
	fxIdle     = "ans://v1.0.0.idle-bot.agents.example.com"
	fxStranger = "ans://v1.0.0.stranger.agents.example.com"
	fxReader   = "ans://v1.0.0.reader.agents.example.com"
	fxOrphan   = "ans://v1.0.0.orphan.agents.example.com"
	fxHMACKID  = "hk_1"
	fxTokenKID = "tk_ed_1"
	fxHSKID    = "tk_hs_1"
	fxSnapKID  = "snap_1"
	fxGateway  = "0b7c2f6e-3f4c-4b0a-9a52-6c1d2e3f4a5b"
	fxOrgID    = "5d1e6f7a-8b9c-4d0e-8f1a-2b3c4d5e6f70"
	fxRevoked  = "9e8d7c6b-5a49-4382-9716-0a1b2c3d4e5f"
)

func seeded(tag string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		s := sha256.Sum256([]byte(tag + strconv.Itoa(i)))
		out = append(out, s[:]...)
	}
	return out[:n]
}

var (
	fxSnapKey  = ed25519.NewKeyFromSeed(seeded("snapshot key", 32))
	fxForgeKey = ed25519.NewKeyFromSeed(seeded("forger", 32))
	fxTokenKey = ed25519.NewKeyFromSeed(seeded("token key", 32))
	fxHSSecret = seeded("hs256 secret", 32)
	fxHMAC     = seeded("agent hmac", 32)
	fxUpstream = seeded("upstream key", 32)
	fxCred     = snapshot.Credential{GatewayID: fxGateway, Secret: seeded("gateway credential", 32)}
)

// guestEpoch is the wall clock the compiled plugin sees under proxytest:
// its wazero runtime is built without a real clock, so the guest's time
// starts at 2022-01-01T00:00:00Z and advances one millisecond per reading.
// Tests against the wasm make their tokens and timestamps on that clock
// (Envoy gives the guest the real one).
var guestEpoch = time.Unix(1640995200, 0)

// testNow is the clock of the VM under test, set by vmTest.
var testNow = time.Now

// fxConfig is a valid plugin configuration for the fixture.
func fxConfig(extra string) string {
	return `{"organization": "acme", "environment": "production",
	  "managerCluster": "knaight_manager", "managerAuthority": "manager.internal",
	  "gatewayCredential": "` + fxCred.String() + `",
	  "snapshotKeys": {"` + fxSnapKID + `": "` + base64.StdEncoding.EncodeToString(fxSnapKey.Public().(ed25519.PublicKey)) + `"},
	  "resource": "` + fxResource + `", "maxBodyBytes": 4096, "maxStalenessSeconds": 60, "flushIntervalMillis": 10` + extra + `}`
}

var validConfig = fxConfig("")

// fxPolicy allows the deployer role to list tools, call deploy_* tools and
// open its event stream, with the deploy scope, at L3 and LoA 2.
func fxPolicy() policy.Policy {
	return policy.Policy{
		ID: "pol-deploy", RoleTemplate: "deployer", Environment: policy.Production,
		MinTrustLevel: policy.L3, MinLoA: 2, RequiredScopes: []string{"mcp:invoke"},
		AllowedEndpoints: []string{"tools/list", "tools/call:deploy_*", "notifications/*", MethodStream, MethodClose},
	}
}

// fxSnapshot is the fixture's snapshot at version.
func fxSnapshot(version uint64) *snapshot.Snapshot {
	return &snapshot.Snapshot{
		Schema: snapshot.Schema, Version: version, Organization: "acme", OrganizationID: fxOrgID, Environment: policy.Production,
		IssuedAt: testNow().UTC(), Issuer: fxIssuer,
		TokenKeys: []snapshot.TokenKey{
			{ID: fxTokenKID, Algorithm: snapshot.AlgEdDSA, Key: fxTokenKey.Public().(ed25519.PublicKey)},
			{ID: fxHSKID, Algorithm: snapshot.AlgHS256, Key: fxHSSecret},
		},
		Revocations: []snapshot.Revocation{{TokenID: fxRevoked, ExpiresAt: testNow().Add(time.Hour).UTC()}},
		Agents: []snapshot.Agent{
			{ANSName: fxAgent, ID: "agent-1", Status: snapshot.StatusActive, RoleTemplate: "deployer",
				TrustLevel: policy.L3, TrustScore: 32, Keys: []snapshot.HMACKey{{ID: fxHMACKID, Secret: fxHMAC}}},
			{ANSName: fxIdle, ID: "agent-2", Status: "SUSPENDED", RoleTemplate: "deployer", TrustLevel: policy.L3},
			{ANSName: fxReader, ID: "agent-3", Status: snapshot.StatusActive, RoleTemplate: "reader",
				TrustLevel: policy.L3, Keys: []snapshot.HMACKey{{ID: fxHMACKID, Secret: fxHMAC}}},
			{ANSName: fxOrphan, ID: "agent-4", Status: snapshot.StatusActive, RoleTemplate: "nobody",
				TrustLevel: policy.L5, Keys: []snapshot.HMACKey{{ID: fxHMACKID, Secret: fxHMAC}}},
		},
		Bundle: snapshot.Bundle{ID: "bundle-1", Revision: "r1", Policies: []policy.Policy{fxPolicy(), {
			ID: "pol-read", RoleTemplate: "reader", Environment: policy.Production, MinTrustLevel: policy.L1, MinLoA: 1,
			AllowedEndpoints: []string{"tools/call"}, Constraints: policy.Constraints{MaxBodyBytes: 64},
		}}},
		Upstream:          snapshot.UpstreamKey{ID: "up_1", Secret: fxUpstream},
		ProtectedResource: snapshot.ProtectedResource{AuthorizationServers: []string{fxIssuer}, ScopesSupported: []string{"mcp:invoke"}},
		Settings:          snapshot.Settings{ClockSkewSeconds: 300, MaxStalenessSeconds: 600},
	}
}

// envelope seals s as the manager does, signed with key.
func envelope(t *testing.T, s *snapshot.Snapshot, key ed25519.PrivateKey) []byte {
	t.Helper()
	payload, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	sealKey, err := fxCred.SealKey()
	if err != nil {
		t.Fatal(err)
	}
	env, err := snapshot.Seal(payload, s.Version, key, fxSnapKID, fxGateway, sealKey)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// claims of a fixture token; mutate before minting.
type tokenClaims map[string]any

func fxClaims() tokenClaims {
	now := testNow()
	return tokenClaims{
		"iss": fxIssuer, "sub": fxAgent, "aud": fxResource, "jti": newUUID(),
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		"org": fxOrgID, "agent_id": "agent-1", "ans": fxAgent, "loa": 2, "scope": "mcp:read mcp:invoke",
	}
}

// mint signs claims as a gateway token with the fixture's EdDSA key, or
// with HS256 when kid is fxHSKID.
func mint(t *testing.T, c tokenClaims, kid string) string {
	t.Helper()
	b64 := base64.RawURLEncoding
	alg := "EdDSA"
	if kid == fxHSKID {
		alg = "HS256"
	}
	hdr, _ := json.Marshal(map[string]string{"alg": alg, "typ": "at+jwt", "kid": kid})
	body, _ := json.Marshal(c)
	input := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	var sig []byte
	if alg == "HS256" {
		m := hmac.New(sha256.New, fxHSSecret)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	} else {
		sig = ed25519.Sign(fxTokenKey, []byte(input))
	}
	return input + "." + b64.EncodeToString(sig)
}

// asAgent makes r come from agent: its token and signature.
func asAgent(t *testing.T, r request, agent string) request {
	c := fxClaims()
	c["sub"], c["ans"] = agent, agent
	r.token, r.agent = mint(t, c, fxTokenKID), agent
	return r
}

// request is an MCP request as an agent sends it.
type request struct {
	method, path string
	token        string // "" for none
	agent        string
	body         []byte
	ts           time.Time
	key          []byte
	extra        [][2]string
	// repeat is appended after extra as it is, so that a header can occur
	// twice.
	repeat   [][2]string
	unsigned bool
}

func toolCall(t *testing.T, tool string) request {
	return request{
		method: "POST", path: "/mcp", token: mint(t, fxClaims(), fxTokenKID), agent: fxAgent, key: fxHMAC,
		body: []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`),
	}
}

// headers signs r and returns its header list.
func (r request) headers(t *testing.T) [][2]string {
	t.Helper()
	hs := [][2]string{
		{":method", r.method}, {":path", r.path}, {":authority", "mcp.example.com"},
		{"content-type", "application/json"},
	}
	if r.token != "" {
		hs = append(hs, [2]string{"authorization", "Bearer " + r.token})
	}
	if !r.unsigned {
		ts := r.ts
		if ts.IsZero() {
			ts = testNow()
		}
		stamp := ts.UTC().Format(time.RFC3339Nano)
		sig, err := sign.Sign(r.key, sign.Request{Method: r.method, Target: r.path, BodySHA256: sign.BodyDigest(r.body), Agent: r.agent, Timestamp: stamp})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, [2]string{"x-knaight-agent", r.agent}, [2]string{"x-knaight-timestamp", stamp},
			[2]string{"x-knaight-signature", sig}, [2]string{"x-knaight-key-id", fxHMACKID})
	}
	for _, e := range r.extra {
		hs = slices.DeleteFunc(hs, func(h [2]string) bool { return h[0] == e[0] })
		if e[1] != "" {
			hs = append(hs, e)
		}
	}
	return append(hs, r.repeat...)
}

// gateway wraps the emulator with the fixture's moves.
type gateway struct {
	t *testing.T
	proxytest.HostEmulator
	// answered remembers the calls the test answered, by position.
	answered map[int]bool
}

// newGateway starts the plugin with config and, when version > 0, feeds it
// the fixture's snapshot at that version through its first poll.
func newGateway(t *testing.T, vm types.VMContext, config string, version uint64) *gateway {
	t.Helper()
	return newGatewayProps(t, vm, config, version, nil)
}

// newGatewayProps is newGateway with host properties.
func newGatewayProps(t *testing.T, vm types.VMContext, config string, version uint64, props map[string]string) *gateway {
	t.Helper()
	host := newHost(t, vm, config, props)
	if got := host.StartPlugin(); got != types.OnPluginStartStatusOK {
		t.Fatalf("StartPlugin = %v; critical logs: %q", got, host.GetCriticalLogs())
	}
	g := &gateway{t: t, HostEmulator: host, answered: map[int]bool{}}
	if version > 0 {
		g.publish(fxSnapshot(version))
	}
	return g
}

// pendingCall returns the oldest call to path the root context dispatched
// that the test has not answered. Calls are told apart by their position in
// the emulator's list: it reuses callout ids once a call is answered.
func (g *gateway) pendingCall(path string) (proxytest.HttpCalloutAttribute, int, bool) {
	calls := g.GetCalloutAttributesFromContext(proxytest.PluginContextID)
	for i, c := range calls {
		if g.answered[i] {
			continue
		}
		for _, h := range c.Headers {
			if h[0] == ":path" && h[1] == path {
				return c, i, true
			}
		}
	}
	return proxytest.HttpCalloutAttribute{}, 0, false
}

// answerPoll ticks until the filter has a snapshot poll in flight and
// answers it.
func (g *gateway) answerPoll(status int, body []byte, headers ...[2]string) proxytest.HttpCalloutAttribute {
	g.t.Helper()
	for range 3 {
		if c, i, ok := g.pendingCall(snapshotPath); ok {
			g.answered[i] = true
			g.CallOnHttpCallResponse(c.CalloutID, append([][2]string{{":status", strconv.Itoa(status)}}, headers...), nil, body)
			return c
		}
		g.Tick()
	}
	g.t.Fatal("the filter sent no snapshot poll")
	return proxytest.HttpCalloutAttribute{}
}

// publish feeds s to the filter through a poll, signed with the manager's
// key.
func (g *gateway) publish(s *snapshot.Snapshot) {
	g.t.Helper()
	g.answerPoll(200, envelope(g.t, s, fxSnapKey))
}

// result is what happened to one request.
type result struct {
	action    types.Action
	local     *localResponse // nil when forwarded
	forwarded [][2]string    // request headers as forwarded (when allowed)
	id        uint32
}

func (g *gateway) send(r request) result {
	g.t.Helper()
	id := g.InitializeHttpContext()
	hs := r.headers(g.t)
	var act types.Action
	if len(r.body) == 0 {
		act = g.CallOnRequestHeaders(id, hs, true)
	} else {
		hs = append(hs, [2]string{"content-length", strconv.Itoa(len(r.body))})
		act = g.CallOnRequestHeaders(id, hs, false)
		if g.GetSentLocalResponse(id) == nil {
			act = g.CallOnRequestBody(id, r.body, true)
		}
	}
	res := result{action: act, id: id}
	if lr := g.GetSentLocalResponse(id); lr != nil {
		res.local = &localResponse{status: lr.StatusCode, headers: slices.Clone(lr.Headers), body: bytes.Clone(lr.Data)}
	} else {
		res.forwarded = slices.Clone(g.GetCurrentRequestHeaders(id))
	}
	g.CompleteHttpContext(id)
	return res
}

func headerValue(hs [][2]string, name string) (string, bool) {
	for _, h := range hs {
		if strings.EqualFold(h[0], name) {
			return h[1], true
		}
	}
	return "", false
}

// rpcError is a local response's JSON-RPC error body.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Reason     string `json:"reason"`
			DecisionID string `json:"decisionId"`
		} `json:"data"`
	} `json:"error"`
}

// expectDenied checks that res is a local denial with status and reason,
// well formed, and returns its body.
func expectDenied(t *testing.T, res result, status uint32, reason decision.Reason) rpcError {
	t.Helper()
	if res.local == nil {
		t.Fatalf("request was forwarded, want %d %s", status, reason)
	}
	var body rpcError
	dec := json.NewDecoder(bytes.NewReader(res.local.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %q is not a JSON-RPC error: %v", res.local.body, err)
	}
	if res.local.status != status || body.Error.Data.Reason != string(reason) {
		t.Fatalf("got %d %s (%s), want %d %s", res.local.status, body.Error.Data.Reason, body.Error.Message, status, reason)
	}
	if res.action != types.ActionPause {
		t.Errorf("action %v, want ActionPause", res.action)
	}
	if body.JSONRPC != "2.0" {
		t.Errorf("jsonrpc %q", body.JSONRPC)
	}
	ct, _ := headerValue(res.local.headers, "content-type")
	hr, _ := headerValue(res.local.headers, HeaderReason)
	hid, _ := headerValue(res.local.headers, HeaderDecisionID)
	if ct != "application/json" || hr != string(reason) || !decisionIDPattern.MatchString(hid) || hid != body.Error.Data.DecisionID {
		t.Errorf("headers %q do not carry the reason and decision id of body %s", res.local.headers, res.local.body)
	}
	return body
}

func expectAllowed(t *testing.T, res result) {
	t.Helper()
	if res.local != nil {
		t.Fatalf("denied with %d: %s", res.local.status, res.local.body)
	}
	if res.action != types.ActionContinue {
		t.Fatalf("action %v, want ActionContinue", res.action)
	}
}

// flushRecords answers the filter's pending decision flush with status and
// returns the records it sent.
func (g *gateway) flushRecords(status int) []decision.Record {
	g.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, i, ok := g.pendingCall(decisionsPath); ok {
			g.answered[i] = true
			var batch decision.Batch
			dec := json.NewDecoder(bytes.NewReader(c.Body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&batch); err != nil {
				g.t.Fatalf("flush body %q: %v", c.Body, err)
			}
			g.CallOnHttpCallResponse(c.CalloutID, [][2]string{{":status", strconv.Itoa(status)}}, nil, nil)
			return batch.Records
		}
		time.Sleep(time.Millisecond)
		g.Tick()
	}
	g.t.Fatal("the filter flushed no decisions")
	return nil
}

func fmtHeaders(hs [][2]string) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s: %s\n", h[0], h[1])
	}
	return b.String()
}

func b64decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// setHeadConfirmed rewrites the snapshot head in shared data, as if the
// poller had last heard from the manager at confirmed.
func setHeadConfirmed(t *testing.T, version uint64, confirmed time.Time) {
	t.Helper()
	cfg, err := ParseConfig([]byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := setShared(newSharedKeys(cfg).head, encodeHead(head{version: version, confirmed: confirmed})); err != nil {
		t.Fatal(err)
	}
}

// newUUID returns a random canonical UUID (version 4), as the manager's
// token ids are.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

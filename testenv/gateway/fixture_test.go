package gateway

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/knaight/knaight/plugin/filter"
	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/sign"
	"github.com/knaight/knaight/shared/snapshot"
)

// The fixture is one organization as the manager describes it to a
// gateway: a credential, the manager's snapshot key, a token key, an ACTIVE
// agent with its request-signing key, a policy and the upstream signing
// key. Keys derive from fixed seeds so that failures reproduce. (A trimmed
// copy of plugin/filter's test fixture, whose _test files cannot be
// imported.)
const (
	fxIssuer   = "https://manager.example"
	fxResource = "https://mcp.example.com/mcp"
	fxAgent    = "ans://v1.0.0.deploy-bot.agents.example.com"
	fxHMACKID  = "hk_1"
	fxTokenKID = "tk_ed_1"
	fxSnapKID  = "snap_1"
	fxUpKID    = "up_1"
	fxGateway  = "0b7c2f6e-3f4c-4b0a-9a52-6c1d2e3f4a5b"
	fxOrgID    = "5d1e6f7a-8b9c-4d0e-8f1a-2b3c4d5e6f70"
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
	fxTokenKey = ed25519.NewKeyFromSeed(seeded("token key", 32))
	fxHMAC     = seeded("agent hmac", 32)
	fxUpstream = seeded("upstream key", 32)
	fxCred     = snapshot.Credential{GatewayID: fxGateway, Secret: seeded("gateway credential", 32)}
)

// fxConfig is the filter's configuration for the fixture: a one-second
// long poll so that poll cycles are short, and a fast flush.
func fxConfig(extra string) []byte {
	return []byte(`{"organization": "acme", "environment": "production",
	  "managerCluster": "knaight_manager", "managerAuthority": "manager.internal",
	  "gatewayCredential": "` + fxCred.String() + `",
	  "snapshotKeys": {"` + fxSnapKID + `": "` + base64.StdEncoding.EncodeToString(fxSnapKey.Public().(ed25519.PublicKey)) + `"},
	  "resource": "` + fxResource + `", "maxBodyBytes": 4096, "pollWaitSeconds": 1, "flushIntervalMillis": 10` + extra + `}`)
}

// fxSnapshot lets the deployer call deploy_* tools and open its event
// stream.
func fxSnapshot(version uint64) *snapshot.Snapshot {
	return &snapshot.Snapshot{
		Schema: snapshot.Schema, Version: version, Organization: "acme", OrganizationID: fxOrgID, Environment: policy.Production,
		IssuedAt: time.Now().UTC(), Issuer: fxIssuer,
		TokenKeys: []snapshot.TokenKey{{ID: fxTokenKID, Algorithm: snapshot.AlgEdDSA, Key: fxTokenKey.Public().(ed25519.PublicKey)}},
		Agents: []snapshot.Agent{{ANSName: fxAgent, ID: "agent-1", Status: snapshot.StatusActive, RoleTemplate: "deployer",
			TrustLevel: policy.L3, TrustScore: 32, Keys: []snapshot.HMACKey{{ID: fxHMACKID, Secret: fxHMAC}}}},
		Bundle: snapshot.Bundle{ID: "bundle-1", Revision: "r1", Policies: []policy.Policy{{
			ID: "pol-deploy", RoleTemplate: "deployer", Environment: policy.Production,
			MinTrustLevel: policy.L3, MinLoA: 2, RequiredScopes: []string{"mcp:invoke"},
			AllowedEndpoints: []string{"tools/call:deploy_*", filter.MethodStream},
		}}},
		Upstream:          snapshot.UpstreamKey{ID: fxUpKID, Secret: fxUpstream},
		ProtectedResource: snapshot.ProtectedResource{AuthorizationServers: []string{fxIssuer}, ScopesSupported: []string{"mcp:invoke"}},
		Settings:          snapshot.Settings{ClockSkewSeconds: 300, MaxStalenessSeconds: 600},
	}
}

// sealed is the manager's answer to a snapshot poll: s encoded, signed and
// sealed for the fixture's gateway.
func sealed(t testing.TB, s *snapshot.Snapshot) []byte {
	t.Helper()
	payload, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	sealKey, err := fxCred.SealKey()
	if err != nil {
		t.Fatal(err)
	}
	env, err := snapshot.Seal(payload, s.Version, fxSnapKey, fxSnapKID, fxGateway, sealKey)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// mint returns a gateway token for the fixture's agent.
func mint(t testing.TB) string {
	t.Helper()
	now := time.Now()
	b64 := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "EdDSA", "typ": "at+jwt", "kid": fxTokenKID})
	body, _ := json.Marshal(map[string]any{
		"iss": fxIssuer, "sub": fxAgent, "aud": fxResource, "jti": uuid.NewString(),
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		"org": fxOrgID, "agent_id": "agent-1", "ans": fxAgent, "loa": 2, "scope": "mcp:read mcp:invoke",
	})
	input := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	return input + "." + b64.EncodeToString(ed25519.Sign(fxTokenKey, []byte(input)))
}

// signed is a request from the fixture's agent: its token and signature.
func signed(t testing.TB, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+mint(t))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := sign.SignHTTP(req, body, fxHMAC, fxAgent, fxHMACKID, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

// rpcID numbers the JSON-RPC requests, so that two requests signed in the
// same millisecond still differ (an identical one is a replay).
var rpcID atomic.Int64

func toolCall(tool string) []byte {
	return []byte(`{"jsonrpc":"2.0","id":` + strconv.FormatInt(rpcID.Add(1), 10) +
		`,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`)
}

// manager is a fake Knaight manager: it serves the fixture's snapshot with
// long polls and collects decision records.
type manager struct {
	*httptest.Server
	body    []byte
	version uint64

	mu          sync.Mutex
	polls       int
	inFlight    int
	maxInFlight int
	badAuth     int
	records     []decision.Record
}

func newManager(t *testing.T) *manager {
	m := &manager{version: 1}
	m.body = sealed(t, fxSnapshot(m.version))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/gateway/snapshot", m.snapshot)
	mux.HandleFunc("POST /api/v1/gateway/decisions", m.decisions)
	m.Server = httptest.NewServer(mux)
	t.Cleanup(m.Close)
	return m
}

func (m *manager) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+fxCred.String() {
		m.mu.Lock()
		m.badAuth++
		m.mu.Unlock()
		http.Error(w, "bad credential", http.StatusUnauthorized)
		return false
	}
	return true
}

func (m *manager) snapshot(w http.ResponseWriter, r *http.Request) {
	if !m.authorized(w, r) {
		return
	}
	m.mu.Lock()
	m.polls++
	m.inFlight++
	m.maxInFlight = max(m.maxInFlight, m.inFlight)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.inFlight--
		m.mu.Unlock()
	}()
	etag := `"` + strconv.FormatUint(m.version, 10) + `"`
	if r.Header.Get("If-None-Match") == etag {
		wait := 2 * time.Second
		if s, ok := strings.CutPrefix(r.Header.Get("Prefer"), "wait="); ok {
			if n, err := strconv.Atoi(s); err == nil {
				wait = min(wait, time.Duration(n)*time.Second)
			}
		}
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", etag)
	_, _ = w.Write(m.body)
}

func (m *manager) decisions(w http.ResponseWriter, r *http.Request) {
	if !m.authorized(w, r) {
		return
	}
	var batch decision.Batch
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	m.records = append(m.records, batch.Records...)
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"accepted":%d}`, len(batch.Records))
}

// record returns the decision record with id, once the manager has it.
func (m *manager) record(id string) (decision.Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.records {
		if r.ID == id {
			return r, true
		}
	}
	return decision.Record{}, false
}

// resetStats starts a new observation window.
func (m *manager) resetStats() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polls, m.maxInFlight = 0, m.inFlight
}

func (m *manager) stats() (polls, maxInFlight, badAuth int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.polls, m.maxInFlight, m.badAuth
}

// upstream is a fake MCP server behind the gateway: it checks the
// gateway's signature, answers tool calls, and streams two events on GET,
// the second only once the test says the client read the first.
type upstream struct {
	*httptest.Server
	release chan struct{}

	mu       sync.Mutex
	requests []http.Header
	badSig   []error
	timedOut bool
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	verifier := sign.Verifier{Skew: time.Minute}
	_, err := verifier.VerifyHTTP(r, body, func(agent, kid string) ([][]byte, error) {
		if agent == fxAgent && kid == fxUpKID {
			return [][]byte{fxUpstream}, nil
		}
		return nil, nil
	})
	u.mu.Lock()
	u.requests = append(u.requests, r.Header.Clone())
	if err != nil {
		u.badSig = append(u.badSig, err)
	}
	u.mu.Unlock()
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message\ndata: one\n\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-u.release:
		case <-time.After(5 * time.Second):
			u.mu.Lock()
			u.timedOut = true
			u.mu.Unlock()
		}
		fmt.Fprint(w, "event: message\ndata: two\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`)
}

func (u *upstream) seen() ([]http.Header, []error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.requests...), append([]error(nil), u.badSig...)
}

// readEvent reads one Server-Sent Event (up to its blank line).
func readEvent(r *bufio.Reader) (string, error) {
	var ev strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return ev.String(), err
		}
		if line == "\n" {
			return ev.String(), nil
		}
		ev.WriteString(line)
	}
}

// The compiled plugin, built once per test binary.
var (
	pluginOnce sync.Once
	pluginWasm []byte
	pluginErr  error
	buildDir   string
)

// buildWasm builds a main package for wasip1 into the test binary's build
// directory.
func buildWasm(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// plugin returns plugin.wasm, built as the Makefile builds it.
func plugin(t testing.TB) []byte {
	t.Helper()
	pluginOnce.Do(func() {
		defer func() {
			if pluginWasm == nil && pluginErr == nil {
				pluginErr = fmt.Errorf("building plugin.wasm failed")
			}
		}()
		pluginWasm = buildWasm(t, "plugin.wasm", "-buildmode=c-shared", "github.com/knaight/knaight/plugin")
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	return pluginWasm
}

func TestMain(m *testing.M) {
	var err error
	if buildDir, err = os.MkdirTemp("", "knaight-gateway-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

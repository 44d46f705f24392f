// Package contract checks the two contracts between the manager and the
// filter (the snapshot, and decision records) with both real parts: the
// manager binary on a throwaway PostgreSQL, and the filter's Go code behind
// the proxy-wasm SDK's host emulator, which this test feeds the manager's
// answers by hand. The compiled filter under a real host is the end-to-end
// suite's business; here the point is that what one side writes the other
// reads.
package contract

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/plugin/filter"
	"github.com/knaight/knaight/shared/sign"
	"github.com/knaight/knaight/testenv/managerproc"
	"github.com/knaight/knaight/testenv/postgres"
)

func TestMain(m *testing.M) { os.Exit(postgres.Main(m)) }

const resource = "http://127.0.0.1:10000/mcp"

// client calls the manager's API.
type client struct {
	t    *testing.T
	base string
}

func (c client) call(method, path, auth string, body any, want int, headers ...string) (map[string]any, http.Header, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+auth)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out, resp.Header, raw
}

func TestFilterEnforcesTheManagersSnapshotAndReportsBack(t *testing.T) {
	dir := t.TempDir()
	bin, err := managerproc.Build(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := managerproc.Start(t.Context(), managerproc.Options{
		Binary: bin, DatabaseURL: postgres.NewDatabase(t), LogPath: filepath.Join(dir, "manager.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	c := client{t: t, base: m.URL}
	admin := m.AdminKey

	// An observer agent in development: the seeded policy lets it list and
	// read at L1 with LoA 1 and mcp:read, and call no tool.
	templates, _, _ := c.call("GET", "/api/v1/role-templates", admin, nil, 200)
	var observer string
	for _, it := range templates["items"].([]any) {
		if it.(map[string]any)["name"] == "observer" {
			observer = it.(map[string]any)["id"].(string)
		}
	}
	agent, _, _ := c.call("POST", "/api/v1/agents", admin, map[string]any{
		"name": "reader-bot", "roleTemplateId": observer, "environment": "development", "activate": true}, 201)
	agentID := agent["id"].(string)
	ansName := agent["ans"].(map[string]any)["name"].(string)
	hk := agent["hmacKey"].(map[string]any)
	hmacKey, err := base64.RawURLEncoding.DecodeString(hk["secret"].(string))
	if err != nil {
		t.Fatal(err)
	}
	org, _, _ := c.call("GET", "/api/v1/organization", admin, nil, 200)
	orgID := org["id"].(string)
	c.call("PUT", "/api/v1/enforcement/token-settings", admin, map[string]any{
		"algorithm": "EdDSA", "defaultTtlSeconds": 900, "maxTtlSeconds": 3600, "audiences": []string{resource}}, 200)
	bundle, _, _ := c.call("POST", "/api/v1/enforcement/bundles/compile", admin, map[string]any{
		"organizationId": orgID, "version": "1.0.0", "environment": "development", "artifacts": []string{"a"}, "controls": []string{"c"}}, 201)
	c.call("POST", "/api/v1/enforcement/bundles/publish", admin, map[string]any{"bundleId": bundle["id"], "signerId": "contract"}, 200)
	c.call("POST", "/api/v1/enforcement/bundles/activate", admin, map[string]any{"bundleId": bundle["id"]}, 200)
	issued, _, _ := c.call("POST", "/api/v1/enforcement/tokens/issue", admin, map[string]any{
		"organizationId": orgID, "agentId": agentID, "loaLevel": 1, "scope": []string{"mcp:read"}}, 201)
	token := issued["token"].(string)

	// Register the gateway; its plugin configuration must start the filter
	// as it comes.
	gw, _, _ := c.call("POST", "/api/v1/gateways", admin, map[string]any{"name": "edge", "environment": "development"}, 201)
	credential := gw["credential"].(string)
	pc, _ := json.Marshal(gw["pluginConfig"])
	if _, err := filter.ParseConfig(pc); err != nil {
		t.Fatalf("the manager's plugin configuration %s does not parse: %v", pc, err)
	}

	opt := proxytest.NewEmulatorOption().WithVMContext(filter.NewVMContext()).WithPluginConfiguration(pc)
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	if host.StartVM() != types.OnVMStartStatusOK || host.StartPlugin() != types.OnPluginStartStatusOK {
		t.Fatalf("the filter refused the manager's configuration: %q", host.GetCriticalLogs())
	}

	// relay performs the filter's pending calls to the manager for real
	// and hands it the answers; it returns the statuses by path.
	relayed := 0
	relay := func() map[string]int {
		t.Helper()
		statuses := map[string]int{}
		calls := host.GetCalloutAttributesFromContext(proxytest.PluginContextID)
		for ; relayed < len(calls); relayed++ {
			call := calls[relayed]
			var method, path string
			var hs []string
			for _, h := range call.Headers {
				switch h[0] {
				case ":method":
					method = h[1]
				case ":path":
					path = h[1]
				case ":authority":
				default:
					hs = append(hs, h[0], h[1])
				}
			}
			req, _ := http.NewRequest(method, m.URL+path, bytes.NewReader(call.Body))
			for i := 0; i < len(hs); i += 2 {
				req.Header.Set(hs[i], hs[i+1])
			}
			if strings.HasPrefix(req.Header.Get("Prefer"), "wait=") {
				req.Header.Set("Prefer", "wait=0") // answer at once: this test drives time
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[path] = resp.StatusCode
			host.CallOnHttpCallResponse(call.CalloutID, [][2]string{{":status", strconv.Itoa(resp.StatusCode)}}, nil, body)
		}
		return statuses
	}
	host.Tick()
	if got := relay(); got["/api/v1/gateway/snapshot"] != 200 {
		t.Fatalf("first poll: %v; manager log:\n%s", got, tailLog(m))
	}
	if logs := host.GetCriticalLogs(); len(logs) > 0 {
		t.Fatalf("the filter rejected the manager's snapshot: %q", logs)
	}

	sent := 0
	send := func(rpc string, tok string) (uint32, *proxytest.LocalHttpResponse) {
		t.Helper()
		sent++
		body := []byte(rpc)
		stamp := time.Now().UTC().Format(time.RFC3339Nano)
		sig, err := sign.Sign(hmacKey, sign.Request{Method: "POST", Target: "/mcp", BodySHA256: sign.BodyDigest(body), Agent: ansName, Timestamp: stamp})
		if err != nil {
			t.Fatal(err)
		}
		id := host.InitializeHttpContext()
		hs := [][2]string{{":method", "POST"}, {":path", "/mcp"}, {":authority", "127.0.0.1:10000"},
			{"authorization", "Bearer " + tok}, {"content-type", "application/json"},
			{"x-knaight-agent", ansName}, {"x-knaight-timestamp", stamp}, {"x-knaight-signature", sig},
			{"x-knaight-key-id", hk["kid"].(string)}, {"content-length", strconv.Itoa(len(body))}}
		host.CallOnRequestHeaders(id, hs, false)
		if host.GetSentLocalResponse(id) == nil {
			host.CallOnRequestBody(id, body, true)
		}
		lr := host.GetSentLocalResponse(id)
		host.CompleteHttpContext(id)
		return id, lr
	}
	reason := func(lr *proxytest.LocalHttpResponse) string {
		if lr == nil {
			return "allowed"
		}
		for _, h := range lr.Headers {
			if h[0] == filter.HeaderReason {
				return fmt.Sprintf("%d %s", lr.StatusCode, h[1])
			}
		}
		return strconv.Itoa(int(lr.StatusCode))
	}

	if _, lr := send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, token); lr != nil {
		t.Fatalf("tools/list: %s %s", reason(lr), lr.Data)
	}
	if _, lr := send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"deploy"}}`, token); reason(lr) != "403 endpoint_not_allowed" {
		t.Fatalf("tools/call by an observer: %s", reason(lr))
	}

	// Revoke the token: the next poll brings the revocation.
	c.call("POST", "/api/v1/enforcement/tokens/revoke", admin, map[string]any{"organizationId": orgID, "tokenId": issued["tokenId"], "reason": "contract test"}, 200)
	deadline := time.Now().Add(30 * time.Second)
	for {
		host.Tick()
		relay()
		if _, lr := send(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, token); reason(lr) == "401 token_revoked" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("still %s 30 s after the revocation", reason(lr))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The decisions reach the manager, each once, in its ledger.
	deadline = time.Now().Add(30 * time.Second)
	var calls map[string]any
	for {
		time.Sleep(1100 * time.Millisecond) // the default flush interval
		host.Tick()
		relay()
		calls, _, _ = c.call("GET", "/api/v1/enforcement/calls?agent="+ansName+"&limit=100", admin, nil, 200)
		if n := len(calls["items"].([]any)); n >= sent || time.Now().After(deadline) {
			break
		}
	}
	items := calls["items"].([]any)
	reasons := map[string]int{}
	seen := map[string]bool{}
	for _, it := range items {
		r := it.(map[string]any)
		if seen[r["id"].(string)] {
			t.Errorf("record %s stored twice", r["id"])
		}
		seen[r["id"].(string)] = true
		reasons[r["reason"].(string)]++
	}
	if len(items) != sent || reasons["allowed"] < 1 || reasons["endpoint_not_allowed"] != 1 || reasons["token_revoked"] != 1 {
		t.Errorf("%d requests, the manager holds %d records: %v", sent, len(items), reasons)
	}
	verify, _, _ := c.call("GET", "/api/v1/audit/verify", admin, nil, 200)
	if verify["ok"] != true {
		t.Errorf("audit verify: %v", verify)
	}
	// A batch sent again (a lost acknowledgement) is stored once.
	batch := map[string]any{"records": []any{}}
	for _, it := range items[:1] {
		r := it.(map[string]any)
		delete(r, "gatewayId")
		delete(r, "receivedAt")
		batch["records"] = append(batch["records"].([]any), r)
	}
	again, _, _ := c.call("POST", "/api/v1/gateway/decisions", credential, batch, 200)
	if again["accepted"] != float64(0) || again["duplicates"] != float64(1) {
		t.Errorf("a repeated record: %v", again)
	}
}

func tailLog(m *managerproc.Manager) string {
	s, _ := managerproc.Tail(m.LogPath, 30)
	return s
}

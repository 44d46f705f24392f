package filter

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// Every test body here runs twice, through vmTest: natively, with the
// filter's Go code behind the SDK's host emulator, and against the compiled
// plugin.wasm, which proxytest runs under wazero behind the same emulator.
// The emulator is process-global and holds a lock from NewHostEmulator until
// its reset, so these tests must not run in parallel.
//
// When running the compiled binary, the emulator keeps views into the
// guest's linear memory instead of copies (log messages, a local response's
// body), which the guest may reuse on its next call. Tests therefore read and
// copy what they check right after the call that produced it.

const validConfig = `{"organization": "acme", "environment": "production"}`

// mcpRequest is the shape of the requests the filter will guard: an MCP
// tools/call over streamable HTTP.
var mcpRequest = [][2]string{
	{":method", "POST"},
	{":path", "/mcp"},
	{":authority", "mcp.internal.example"},
	{"content-type", "application/json"},
	{"authorization", "Bearer kn_gw_example"},
}

func TestValidConfigStarts(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		host := newHost(t, vm, validConfig, nil)
		if got := host.StartPlugin(); got != types.OnPluginStartStatusOK {
			t.Fatalf("StartPlugin = %v, want OK; critical logs: %q", got, host.GetCriticalLogs())
		}
		if logs := host.GetCriticalLogs(); len(logs) != 0 {
			t.Errorf("critical logs on a valid start: %q", logs)
		}
		if !containsLog(host.GetInfoLogs(), `organization "acme", environment "production"`) {
			t.Errorf("info logs do not name the configuration: %q", host.GetInfoLogs())
		}
	})
}

func TestInvalidConfigFailsToStart(t *testing.T) {
	cases := []struct {
		name, config, field string
	}{
		{"empty", "", "configuration: is empty"},
		{"blank", " \n", "configuration: is empty"},
		{"not an object", `["acme"]`, "must be a JSON object"},
		{"unknown field", `{"organization": "acme", "environment": "production", "mode": "allow"}`, `field "mode"`},
		{"differently cased field", `{"Organization": "acme", "environment": "production"}`, `field "Organization"`},
		{"repeated field", `{"organization": "acme", "environment": "development", "environment": "production"}`, `field "environment": appears more than once`},
		{"bad environment", `{"organization": "acme", "environment": "prod"}`, `field "environment"`},
		{"missing environment", `{"organization": "acme"}`, `field "environment": is required`},
		{"missing organization", `{"environment": "staging"}`, `field "organization": is required`},
		{"bad organization slug", `{"organization": "Acme Corp", "environment": "staging"}`, `field "organization"`},
		{"non-string value", `{"organization": 42, "environment": "staging"}`, `field "organization": must be a string`},
		{"trailing data", validConfig + ` {}`, "has data after the JSON object"},
	}
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				host := newHost(t, vm, tc.config, nil)
				if got := host.StartPlugin(); got != types.OnPluginStartStatusFailed {
					t.Fatalf("StartPlugin = %v, want Failed", got)
				}
				if logs := host.GetCriticalLogs(); !containsLog(logs, tc.field) {
					t.Errorf("critical logs %q do not contain %q", logs, tc.field)
				}
			})
		}
	})
}

func TestEveryRequestIsDeniedWith503(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		host := startedHost(t, vm, nil)
		id := host.InitializeHttpContext()
		if got := host.CallOnRequestHeaders(id, mcpRequest, false); got != types.ActionPause {
			t.Fatalf("OnHttpRequestHeaders = %v, want ActionPause", got)
		}
		resp := sentResponse(t, host, id)
		checkDenial(t, resp, ReasonSnapshotUnavailable)
		if resp.message != "gateway has no policy snapshot: failing closed" {
			t.Errorf("JSON-RPC message %q", resp.message)
		}

		// Should the host call on with the body anyway, nothing is forwarded
		// and no second response is sent.
		if got := host.CallOnRequestBody(id, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`), true); got != types.ActionPause {
			t.Errorf("OnHttpRequestBody = %v, want ActionPause", got)
		}
		if again := sentResponse(t, host, id); again.decisionID != resp.decisionID {
			t.Errorf("a second local response was sent (decision %s, then %s)", resp.decisionID, again.decisionID)
		}
		// The local reply itself passes the response callbacks.
		if got := host.CallOnResponseHeaders(id, [][2]string{{":status", "503"}}, false); got != types.ActionContinue {
			t.Errorf("OnHttpResponseHeaders = %v, want ActionContinue", got)
		}
		host.CompleteHttpContext(id)
		if logs := host.GetCriticalLogs(); len(logs) != 0 {
			t.Errorf("critical logs: %q", logs)
		}
	})
}

// Under proxytest's wasm runner the guest's random_get is wazero's default
// source, which is deterministic: every fresh VM yields the same sequence of
// decision ids. Within one VM they still differ, which is what this checks;
// Envoy gives the guest real randomness.
func TestDecisionIDsDiffer(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		host := startedHost(t, vm, nil)
		seen := map[string]bool{}
		for range 2 {
			id := host.InitializeHttpContext()
			host.CallOnRequestHeaders(id, mcpRequest, true)
			resp := sentResponse(t, host, id)
			checkDenial(t, resp, ReasonSnapshotUnavailable)
			if seen[resp.decisionID] {
				t.Fatalf("decision id %s given twice", resp.decisionID)
			}
			seen[resp.decisionID] = true
			host.CompleteHttpContext(id)
		}
	})
}

// TestPanicIsADenial injects panics through testHook. Natively vmTest
// installs the hook directly; against the compiled binary it uses a build
// made with -tags knaight_testhooks, whose hook is the same function. The
// property testPanicProperty names the callback to panic in.
func TestPanicIsADenial(t *testing.T) {
	vmTest(t, true, func(t *testing.T, vm types.VMContext) {
		t.Run("while starting", func(t *testing.T) {
			host := newHost(t, vm, validConfig, map[string]string{testPanicProperty: cbPluginStart})
			if got := host.StartPlugin(); got != types.OnPluginStartStatusFailed {
				t.Fatalf("StartPlugin = %v, want Failed", got)
			}
			if logs := host.GetCriticalLogs(); !containsLog(logs, "panic while starting") {
				t.Errorf("critical logs %q do not report the panic", logs)
			}
		})
		t.Run("in the request headers", func(t *testing.T) {
			host := startedHost(t, vm, map[string]string{testPanicProperty: cbRequestHeaders})
			id := host.InitializeHttpContext()
			if got := host.CallOnRequestHeaders(id, mcpRequest, false); got != types.ActionPause {
				t.Fatalf("OnHttpRequestHeaders = %v, want ActionPause", got)
			}
			if logs := host.GetCriticalLogs(); !containsLog(logs, "panic in request_headers") {
				t.Errorf("critical logs %q do not report the panic", logs)
			}
			resp := sentResponse(t, host, id)
			checkDenial(t, resp, ReasonInternalError)
		})
		t.Run("at the end of the stream", func(t *testing.T) {
			// The VM survives a panic and keeps denying.
			host := startedHost(t, vm, map[string]string{testPanicProperty: cbStreamDone})
			for range 2 {
				id := host.InitializeHttpContext()
				host.CallOnRequestHeaders(id, mcpRequest, true)
				checkDenial(t, sentResponse(t, host, id), ReasonSnapshotUnavailable)
				host.CompleteHttpContext(id)
			}
			if logs := host.GetCriticalLogs(); !containsLog(logs, "panic in stream_done") {
				t.Errorf("critical logs %q do not report the panic", logs)
			}
		})
	})
}

// vmTest runs body natively ("go") and against the compiled plugin
// ("wasm"), each with a fresh VM. With hooks, testHook is installed natively
// and the wasm build carries -tags knaight_testhooks.
func vmTest(t *testing.T, hooks bool, body func(t *testing.T, vm types.VMContext)) {
	t.Helper()
	t.Run("go", func(t *testing.T) {
		if hooks {
			testHook = panicWhenAsked
			t.Cleanup(func() { testHook = nil })
		}
		body(t, NewVMContext())
	})
	t.Run("wasm", func(t *testing.T) {
		wasm := compiledPlugin(t, hooks)
		vm, err := proxytest.NewWasmVMContext(wasm)
		if err != nil {
			t.Fatalf("loading plugin.wasm: %v", err)
		}
		t.Cleanup(func() { _ = vm.Close() })
		body(t, vm)
	})
}

// newHost starts an emulator for vm with the plugin configuration config and
// the given host properties, and starts the VM. It does not start the plugin.
func newHost(t *testing.T, vm types.VMContext, config string, props map[string]string) proxytest.HostEmulator {
	t.Helper()
	opt := proxytest.NewEmulatorOption().WithVMContext(vm).WithPluginConfiguration([]byte(config))
	for k, v := range props {
		opt = opt.WithProperty([]string{k}, []byte(v))
	}
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	if got := host.StartVM(); got != types.OnVMStartStatusOK {
		t.Fatalf("StartVM = %v", got)
	}
	return host
}

// startedHost is newHost with a valid configuration and the plugin started.
func startedHost(t *testing.T, vm types.VMContext, props map[string]string) proxytest.HostEmulator {
	t.Helper()
	host := newHost(t, vm, validConfig, props)
	if got := host.StartPlugin(); got != types.OnPluginStartStatusOK {
		t.Fatalf("StartPlugin = %v; critical logs: %q", got, host.GetCriticalLogs())
	}
	return host
}

// localResponse is a copy of what the filter sent, with the body decoded.
type localResponse struct {
	status     uint32
	headers    [][2]string
	grpcStatus int32
	body       []byte

	reason, decisionID, message string
}

// sentResponse copies the local response sent on stream id and decodes its
// body as a JSON-RPC 2.0 error response, failing the test if there is none
// or the body does not have exactly that shape.
func sentResponse(t *testing.T, host proxytest.HostEmulator, id uint32) localResponse {
	t.Helper()
	r := host.GetSentLocalResponse(id)
	if r == nil {
		t.Fatal("no local response was sent")
	}
	resp := localResponse{status: r.StatusCode, headers: slices.Clone(r.Headers), grpcStatus: r.GRPCStatus, body: bytes.Clone(r.Data)}

	var body struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    struct {
				Reason     string `json:"reason"`
				DecisionID string `json:"decisionId"`
			} `json:"data"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %q is not the expected JSON-RPC error: %v", resp.body, err)
	}
	if body.JSONRPC != "2.0" || string(body.ID) != "null" || body.Error == nil || body.Error.Code != -32603 {
		t.Fatalf("body %q is not a JSON-RPC 2.0 internal error with a null id", resp.body)
	}
	resp.reason, resp.decisionID, resp.message = body.Error.Data.Reason, body.Error.Data.DecisionID, body.Error.Message
	return resp
}

var decisionIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkDenial checks that resp is the filter's 503 denial for reason.
func checkDenial(t *testing.T, resp localResponse, reason Reason) {
	t.Helper()
	if resp.status != 503 {
		t.Errorf("status %d, want 503", resp.status)
	}
	if resp.grpcStatus != -1 {
		t.Errorf("gRPC status %d, want -1 (none)", resp.grpcStatus)
	}
	header := func(name string) string {
		var vals []string
		for _, h := range resp.headers {
			if h[0] == name {
				vals = append(vals, h[1])
			}
		}
		if len(vals) != 1 {
			t.Errorf("header %s: %q, want exactly one value", name, vals)
			return ""
		}
		return vals[0]
	}
	if got := header("content-type"); got != "application/json" {
		t.Errorf("content-type %q", got)
	}
	if got := header("x-knaight-reason"); got != string(reason) {
		t.Errorf("x-knaight-reason %q, want %q", got, reason)
	}
	id := header("x-knaight-decision-id")
	if !decisionIDPattern.MatchString(id) {
		t.Errorf("x-knaight-decision-id %q is not 32 lower-case hex digits", id)
	}
	if resp.reason != string(reason) {
		t.Errorf("body reason %q, want %q", resp.reason, reason)
	}
	if resp.decisionID != id {
		t.Errorf("body decisionId %q differs from the header's %q", resp.decisionID, id)
	}
}

func containsLog(logs []string, substr string) bool {
	return slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, substr) })
}

// builds caches the compiled plugin, once per set of build tags, for the
// whole test binary: building takes seconds (more on a cold cache).
var builds = struct {
	sync.Mutex
	wasm map[bool][]byte
}{wasm: map[bool][]byte{}}

// compiledPlugin builds the plugin's main package exactly as make wasm does
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared), with -tags
// knaight_testhooks if hooks, and returns the binary.
func compiledPlugin(t *testing.T, hooks bool) []byte {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if wasm, ok := builds.wasm[hooks]; ok {
		return wasm
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build plugin.wasm: %v", err)
	}
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if hooks {
		args = append(args, "-tags", "knaight_testhooks")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, append(args, "github.com/knaight/knaight/plugin")...)
	cmd.Dir = ".." // the plugin module, so that its go.mod (or the workspace) applies
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	start := time.Now()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built plugin.wasm (%d bytes, hooks=%v) in %v", len(wasm), hooks, time.Since(start).Round(time.Millisecond))
	builds.wasm[hooks] = wasm
	return wasm
}

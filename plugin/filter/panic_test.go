package filter

import (
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/shared/decision"
)

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
		for _, cb := range []string{cbRequestHeaders, cbRequestBody, cbResponseHeaders} {
			t.Run("in "+cb, func(t *testing.T) {
				g := newGatewayProps(t, vm, validConfig, 1, map[string]string{testPanicProperty: cb})
				r := toolCall(t, "deploy_app")
				res := g.send(r)
				if cb == cbResponseHeaders {
					// The request itself was allowed; the panic comes when
					// the upstream's response passes.
					expectAllowed(t, res)
					id := g.InitializeHttpContext()
					r.ts, r.method, r.body = testNow(), "GET", nil
					if got := g.CallOnRequestHeaders(id, r.headers(t), true); got != types.ActionContinue {
						t.Fatalf("GET stream not allowed: %v", got)
					}
					if got := g.CallOnResponseHeaders(id, [][2]string{{":status", "200"}}, false); got != types.ActionPause {
						t.Errorf("OnHttpResponseHeaders = %v, want ActionPause", got)
					}
					if lr := g.GetSentLocalResponse(id); lr == nil || lr.StatusCode != 500 {
						t.Errorf("local response %+v, want a 500", lr)
					}
				} else {
					expectDenied(t, res, 500, decision.InternalError)
				}
				if logs := g.GetCriticalLogs(); !containsLog(logs, "panic in "+cb) {
					t.Errorf("critical logs %q do not report the panic", logs)
				}
			})
		}
		t.Run("at the end of the stream", func(t *testing.T) {
			// The VM survives a panic and keeps deciding.
			g := newGatewayProps(t, vm, validConfig, 1, map[string]string{testPanicProperty: cbStreamDone})
			for range 2 {
				expectAllowed(t, g.send(toolCall(t, "deploy_app")))
			}
			if logs := g.GetCriticalLogs(); !containsLog(logs, "panic in stream_done") {
				t.Errorf("critical logs %q do not report the panic", logs)
			}
		})
		t.Run("in a tick", func(t *testing.T) {
			// The VM survives; with no snapshot it keeps failing closed.
			g := newGatewayProps(t, vm, validConfig, 0, map[string]string{testPanicProperty: cbTick})
			g.Tick()
			if logs := g.GetCriticalLogs(); !containsLog(logs, "panic in tick") {
				t.Errorf("critical logs %q do not report the panic", logs)
			}
			expectDenied(t, g.send(toolCall(t, "deploy_app")), 503, decision.SnapshotUnavailable)
		})
	})
}

// Under proxytest's wasm runner the guest's random_get is wazero's default
// source, which is deterministic: every fresh VM yields the same sequence of
// decision ids. Within one VM they still differ, which is what this checks;
// Envoy gives the guest real randomness.
func TestDecisionIDsDiffer(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 0)
		seen := map[string]bool{}
		for range 3 {
			body := expectDenied(t, g.send(toolCall(t, "deploy_app")), 503, decision.SnapshotUnavailable)
			if seen[body.Error.Data.DecisionID] {
				t.Fatalf("decision id %s given twice", body.Error.Data.DecisionID)
			}
			seen[body.Error.Data.DecisionID] = true
		}
	})
}

// TestPollerLease checks the election: the first root context takes the
// lease and polls; a worker does not take a live lease; the singleton
// service takes it from a worker.
func TestPollerLease(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 0)
		g.Tick()
		if _, _, ok := g.pendingCall(snapshotPath); !ok {
			t.Fatal("the only root context does not poll")
		}
		cfg, _ := ParseConfig([]byte(validConfig))
		keys := newSharedKeys(cfg)
		p := &pluginContext{config: cfg, keys: keys, poller: newPoller()}
		if p.holdLease(testNow()) {
			t.Error("a second worker took a live lease")
		}
		svc, _ := ParseConfig([]byte(fxConfig(`, "service": true`)))
		s := &pluginContext{config: svc, keys: keys, poller: newPoller()}
		if !s.holdLease(testNow()) {
			t.Error("the service did not take the lease from a worker")
		}
		if p.holdLease(testNow()) {
			t.Error("a worker took the service's live lease")
		}
		if !p.holdLease(testNow().Add(3 * leaseDuration)) {
			t.Error("a worker did not take an expired lease")
		}
	})
}

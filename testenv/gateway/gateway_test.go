package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/plugin/filter"
	"github.com/knaight/knaight/shared/decision"
)

// env is a gateway hosting the real plugin between a fake manager and a
// fake upstream, served over real HTTP.
type env struct {
	g     *Gateway
	front *httptest.Server
	mgr   *manager
	up    *upstream
}

type envOptions struct {
	service   bool
	envoyWASI bool
	workers   int
}

func startEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{mgr: newManager(t), up: newUpstream(t)}
	cfg := Config{
		Wasm:         plugin(t),
		PluginConfig: fxConfig(""),
		Workers:      o.workers,
		Clusters:     map[string]string{"knaight_manager": e.mgr.URL},
		Upstream:     e.up.URL,
		EnvoyWASI:    o.envoyWASI,
	}
	if o.service {
		cfg.ServiceConfig = fxConfig(`, "service": true`)
	}
	g, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.g = g
	e.front = httptest.NewServer(g)
	t.Cleanup(func() {
		e.front.Close()
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			for _, l := range g.Logs() {
				t.Logf("%s %s: %s", l.VM, l.Level, l.Message)
			}
		}
	})
	waitFor(t, 10*time.Second, "the snapshot to be published", func() bool {
		return g.Metrics()["knaight.snapshot.version"] == 1
	})
	return e
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := tryDo(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// tryDo sends req and reads the whole response.
func tryDo(req *http.Request) (*http.Response, []byte, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

var decisionID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// served returns how many streams each worker VM has served.
func (e *env) served() []int64 {
	var n []int64
	for _, v := range e.g.workers {
		n = append(n, v.served.Load())
	}
	return n
}

// changed returns the indexes of the workers whose count moved.
func changed(before, after []int64) []int {
	var out []int
	for i := range before {
		if after[i] != before[i] {
			out = append(out, i)
		}
	}
	return out
}

func TestGatewayEnforcesWithTheRealPlugin(t *testing.T) {
	e := startEnv(t, envOptions{})
	url := e.front.URL + "/mcp"
	var allowedID, deniedID string

	t.Run("polls the snapshot with the gateway credential", func(t *testing.T) {
		polls, _, badAuth := e.mgr.stats()
		if polls == 0 || badAuth != 0 {
			t.Fatalf("manager saw %d snapshot polls and %d bad credentials", polls, badAuth)
		}
	})

	t.Run("forwards an allowed request re-signed for the upstream", func(t *testing.T) {
		resp, body := do(t, signed(t, "POST", url, toolCall("deploy_app")))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"result"`) {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
		seen, badSig := e.up.seen()
		if len(seen) != 1 || len(badSig) != 0 {
			t.Fatalf("upstream saw %d requests, signature errors %v", len(seen), badSig)
		}
		h := seen[0]
		allowedID = h.Get(filter.HeaderDecisionID)
		if !decisionID.MatchString(allowedID) {
			t.Errorf("upstream got decision id %q", allowedID)
		}
		if h.Get("Authorization") != "" {
			t.Error("the client's token reached the upstream")
		}
		if h.Get("X-Knaight-Key-Id") != fxUpKID || h.Get(filter.HeaderTrustLevel) != "L3" {
			t.Errorf("upstream headers %v", h)
		}
		if got := resp.Header.Get(filter.HeaderDecisionID); got != allowedID {
			t.Errorf("response carries decision id %q, upstream got %q", got, allowedID)
		}
	})

	t.Run("answers a denied request locally", func(t *testing.T) {
		req := signed(t, "POST", url, toolCall("deploy_app"))
		req.Header.Del("Authorization")
		resp, body := do(t, req)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(filter.HeaderReason) != string(decision.TokenMissing) {
			t.Fatalf("got %d %s: %s", resp.StatusCode, resp.Header.Get(filter.HeaderReason), body)
		}
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`) {
			t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
		}
		var rpc struct {
			Error struct {
				Data struct {
					DecisionID string `json:"decisionId"`
				} `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &rpc); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		deniedID = resp.Header.Get(filter.HeaderDecisionID)
		if deniedID == "" || rpc.Error.Data.DecisionID != deniedID {
			t.Errorf("decision id %q in headers, %q in body", deniedID, rpc.Error.Data.DecisionID)
		}
		if seen, _ := e.up.seen(); len(seen) != 1 {
			t.Errorf("a denied request reached the upstream (%d requests)", len(seen))
		}
	})

	t.Run("denies a tool the policy does not name, after reading the body", func(t *testing.T) {
		resp, body := do(t, signed(t, "POST", url, toolCall("drop_database")))
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("got %d: %s", resp.StatusCode, body)
		}
	})

	t.Run("refuses a replay on another worker VM", func(t *testing.T) {
		body := toolCall("deploy_app")
		first := signed(t, "POST", url, body)
		replay := first.Clone(t.Context())
		replay.Body = io.NopCloser(bytes.NewReader(body))
		before := e.served()
		resp, body := do(t, first)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("first request: %d %s", resp.StatusCode, body)
		}
		middle := e.served()
		resp, body = do(t, replay)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(filter.HeaderReason) != string(decision.Replay) {
			t.Fatalf("replay: %d %s: %s", resp.StatusCode, resp.Header.Get(filter.HeaderReason), body)
		}
		a, b := changed(before, middle), changed(middle, e.served())
		if len(a) != 1 || len(b) != 1 || a[0] == b[0] {
			t.Fatalf("the request went to worker %v and its replay to worker %v; want two different VMs", a, b)
		}
	})

	t.Run("streams server-sent events through", func(t *testing.T) {
		req := signed(t, "GET", url, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		r := bufio.NewReader(resp.Body)
		first, err := readEvent(r)
		if err != nil || !strings.Contains(first, "data: one") {
			t.Fatalf("first event %q: %v", first, err)
		}
		close(e.up.release) // the upstream sends the second event only now
		second, err := readEvent(r)
		if err != nil || !strings.Contains(second, "data: two") {
			t.Fatalf("second event %q: %v", second, err)
		}
		e.up.mu.Lock()
		timedOut := e.up.timedOut
		e.up.mu.Unlock()
		if timedOut {
			t.Error("the first event reached the client only after the upstream gave up waiting: the gateway buffered the stream")
		}
	})

	t.Run("reports decisions to the manager", func(t *testing.T) {
		var allowed, denied decision.Record
		waitFor(t, 10*time.Second, "the decision records", func() bool {
			var ok1, ok2 bool
			allowed, ok1 = e.mgr.record(allowedID)
			denied, ok2 = e.mgr.record(deniedID)
			return ok1 && ok2
		})
		if !allowed.Allow || allowed.Reason != decision.Allowed || allowed.Agent != fxAgent || allowed.SnapshotVersion != 1 {
			t.Errorf("allowed record %+v", allowed)
		}
		if denied.Allow || denied.Reason != decision.TokenMissing {
			t.Errorf("denied record %+v", denied)
		}
	})

	t.Run("counts decisions in metrics summed over the VMs", func(t *testing.T) {
		m := e.g.Metrics()
		if m["knaight.decisions.allow.allowed"] != 3 || m["knaight.decisions.deny.token_missing"] != 1 ||
			m["knaight.decisions.deny.replay"] != 1 || m["knaight.snapshot.version"] != 1 {
			t.Errorf("metrics %v", m)
		}
	})

	if err := e.g.Health(); err != nil {
		t.Errorf("Health: %v", err)
	}
}

// The poller role: with a service VM, it alone polls; without one, the
// workers elect one through a lease in shared data. The filter lets a
// worker poll until the service VM first ticks (which, in Envoy as here,
// may come after a worker's tick), so the window observed starts once the
// role has settled.
func TestOnePollerPerGateway(t *testing.T) {
	for _, tc := range []struct {
		name    string
		service bool
	}{
		{"the service VM polls and no worker does", true},
		{"one worker VM wins the lease and polls", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, envOptions{service: tc.service, workers: 3})
			if tc.service {
				waitFor(t, 5*time.Second, "the service VM to poll", func() bool { return e.g.service.calls.Load() > 0 })
				for _, v := range e.g.workers {
					if v.calls.Load() > 0 {
						// A worker polled first: let its last long poll end.
						time.Sleep(1500 * time.Millisecond)
						break
					}
				}
			}
			before := map[string]int64{}
			for _, v := range e.g.vms() {
				before[v.name] = v.calls.Load()
			}
			e.mgr.resetStats()
			waitFor(t, 10*time.Second, "two snapshot polls", func() bool {
				polls, _, _ := e.mgr.stats()
				return polls >= 2
			})
			polls, maxInFlight, _ := e.mgr.stats()
			if maxInFlight != 1 {
				t.Errorf("%d snapshot polls were in flight at once (of %d); want one poller", maxInFlight, polls)
			}
			var callers []string
			for _, v := range e.g.vms() {
				if v.calls.Load() > before[v.name] {
					callers = append(callers, v.name)
				}
			}
			if len(callers) != 1 || (tc.service && callers[0] != "service") {
				t.Errorf("VMs that called the manager: %v", callers)
			}
		})
	}
}

func TestCloseLeavesNothingRunning(t *testing.T) {
	wasm := plugin(t)
	before := runtime.NumGoroutine()
	mgr := newManager(t)
	up := newUpstream(t)
	g, err := New(t.Context(), Config{
		Wasm: wasm, PluginConfig: fxConfig(""), ServiceConfig: fxConfig(`, "service": true`),
		Clusters: map[string]string{"knaight_manager": mgr.URL}, Upstream: up.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g)
	waitFor(t, 10*time.Second, "the snapshot", func() bool { return g.Metrics()["knaight.snapshot.version"] == 1 })
	resp, _ := do(t, signed(t, "POST", front.URL+"/mcp", toolCall("deploy_app")))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d", resp.StatusCode)
	}
	front.Close()
	start := time.Now()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s with a long poll in flight", d)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/mcp", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a closed gateway answered %d", rec.Code)
	}
	mgr.Close()
	up.Close()
	http.DefaultClient.CloseIdleConnections()
	waitFor(t, 5*time.Second, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}

func TestNewRefusesAPluginThatRefusesItsConfiguration(t *testing.T) {
	_, err := New(t.Context(), Config{
		Wasm: plugin(t), PluginConfig: []byte(`{"organization": "acme"}`), Upstream: "http://127.0.0.1:1",
	})
	if err == nil || !strings.Contains(err.Error(), `"environment"`) {
		t.Fatalf("New = %v, want ErrPluginRejected naming the field", err)
	}
	if !errors.Is(err, ErrPluginRejected) {
		t.Errorf("error %v is not ErrPluginRejected", err)
	}
}

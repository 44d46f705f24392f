// Package bench measures the whole system as it runs: real PostgreSQL, the
// manager process (one replica or two), the demo upstream MCP server and the
// real plugin.wasm in the testenv gateway (testenv/stack), driven over
// loopback the way agents drive it. It holds benchmarks only: each reports
// its figures with b.ReportMetric for the report generator, and none
// asserts a figure; a benchmark fails only when the system misbehaves
// (a wrong decision, a change that never arrives).
package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/sign"
	"github.com/knaight/knaight/testenv/managerproc"
	"github.com/knaight/knaight/testenv/postgres"
	"github.com/knaight/knaight/testenv/stack"
)

func TestMain(m *testing.M) { os.Exit(postgres.Main(m)) }

// workers is the gateway's worker VMs in every benchmark, the filter's and
// the baseline's alike.
const workers = 2

// startStack starts the whole system on a fresh database for b.
func startStack(b *testing.B, replica bool) *stack.Stack {
	b.Helper()
	st, err := stack.Start(b.Context(), stack.Options{Dir: b.TempDir(), DatabaseURL: postgres.NewDatabase(b), Workers: workers, Replica: replica})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Stop)
	b.Cleanup(func() {
		if !b.Failed() {
			return
		}
		for _, m := range []*managerproc.Manager{st.Manager, st.Replica} {
			if m != nil {
				tail, _ := managerproc.Tail(m.LogPath, 30)
				b.Logf("%s (%s) ends with:\n%s", m.LogPath, m.URL, tail)
			}
		}
	})
	return st
}

// agent is an agent of the demo role as the benchmarks use it.
type agent struct {
	stack.Agent
	st         *stack.Stack
	httpClient *http.Client
	// ids numbers the agent's JSON-RPC calls: two identical bodies signed in
	// the same millisecond would be a replay.
	ids atomic.Uint64
}

// trustedAgent registers an agent of the demo role and records the signals
// of docs/trust.md's worked example, which take it to L3, the level the
// demo policy requires.
func trustedAgent(b *testing.B, st *stack.Stack) *agent {
	b.Helper()
	a, err := st.RegisterAgent(b.Context(), "bench-bot")
	must(b, err)
	must(b, st.AddSignals(b.Context(), a, "bench", append(stack.IdentitySignals, stack.ScorecardSignal)...))
	return &agent{
		Agent: a, st: st,
		// Its own keep-alive connections, so that no other client's traffic
		// closes them.
		httpClient: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 30 * time.Second},
	}
}

// token gets a gateway token as the agent does: OAuth client_credentials
// for the gateway's resource.
func (a *agent) token(ctx context.Context) (string, error) {
	return a.st.Token(ctx, a.httpClient, a.Agent)
}

// allowed is the outcome of a call the gateway let through.
const allowed = "allowed"

// call sends one deploy tools/call through the gateway, freshly signed and
// with a JSON-RPC id of its own, and returns the gateway's decision: its
// X-Knaight-Reason, or allowed.
func (a *agent) call(ctx context.Context, token string) (string, error) {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"deploy","arguments":{"service":"web","version":"1"}}}`, a.ids.Add(1))
	req, err := http.NewRequestWithContext(ctx, "POST", a.st.Resource, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Authorization", "Bearer "+token)
	if err := sign.SignHTTP(req, []byte(body), a.Key, a.ANSName, a.KeyID, time.Now()); err != nil {
		return "", err
	}
	resp, err := a.httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if reason := resp.Header.Get("X-Knaight-Reason"); reason != "" {
		return reason, nil
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("the gateway answered %d without a reason", resp.StatusCode)
	}
	return allowed, nil
}

// awaitAllowed calls until the gateway allows the call, for at most
// settleLimit: how fast a change arrives is measured elsewhere.
func (a *agent) awaitAllowed(ctx context.Context, token string) error {
	deadline := time.Now().Add(settleLimit)
	for {
		reason, err := a.call(ctx, token)
		switch {
		case err != nil:
			return err
		case reason == allowed:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the gateway still answers %q after %s, want it to allow the call", reason, settleLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settleLimit bounds every wait for the system to reach a state; a wait
// that long means something is broken, not slow.
const settleLimit = 30 * time.Second

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(float64(len(sorted))*p/100)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// reportLatencies reports the p50, p99 and, with max, the maximum of
// samples in milliseconds.
func reportLatencies(b *testing.B, samples []time.Duration, withMax bool) {
	if len(samples) == 0 {
		return
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	b.ReportMetric(ms(percentile(s, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(s, 99)), "p99-ms")
	if withMax {
		b.ReportMetric(ms(s[len(s)-1]), "max-ms")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

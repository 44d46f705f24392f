//go:build soak

package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/knaight/knaight/testenv/postgres"
	"github.com/knaight/knaight/testenv/stack"
)

// TestSoakEnvoyWASI runs traffic through the gateway in the Envoy-compatible
// WASI mode (poll_oneoff answers ENOSYS, as Envoy's wasm host does before
// proxy-wasm-cpp-host PR #533) for KNAIGHT_SOAK (default 3m), and reports
// whether the filter's VMs survive: the Go runtime treats that ENOSYS as
// fatal, and in Envoy a Go plugin can die during GC after hours of traffic.
// Run it with make test-soak; it is not part of make test.
func TestSoakEnvoyWASI(t *testing.T) {
	duration := 3 * time.Minute
	if v := os.Getenv("KNAIGHT_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		must(t, err)
		duration = d
	}
	ctx := t.Context()
	st, err := stack.Start(ctx, stack.Options{Dir: t.TempDir(), DatabaseURL: postgres.NewDatabase(t), EnvoyWASI: true})
	must(t, err)
	t.Cleanup(st.Stop)
	a := demoAgent(t, st)
	token := oauthToken(t, st, a)
	deploy := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","arguments":{"service":"web","version":"1"}}}`
	waitFor(t, "allowed", func() string { return rawCall(t, st, a, token, deploy).reason })

	start := time.Now()
	outcomes := map[string]int{}
	var failed error
	for time.Since(start) < duration {
		o := rawCall(t, st, a, token, deploy)
		outcomes[o.reason]++
		if err := st.Gateway.Health(); err != nil {
			failed = err
			break
		}
	}
	elapsed := time.Since(start).Round(time.Second)
	total := 0
	for _, n := range outcomes {
		total += n
	}
	if failed != nil {
		t.Fatalf("a filter VM died after %s and %d requests in the Envoy-compatible WASI mode: %v (outcomes %v)", elapsed, total, failed, outcomes)
	}
	t.Logf("the filter survived %s and %d requests in the Envoy-compatible WASI mode (outcomes %v)", elapsed, total, outcomes)
	if outcomes["allowed"] != total {
		t.Errorf("not every request was allowed: %v", outcomes)
	}
}

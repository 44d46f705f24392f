//go:build soak

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/testenv/postgres"
	"github.com/knaight/knaight/testenv/stack"
)

// TestSoak sends signed MCP calls through the gateway for KNAIGHT_SOAK
// (default 3m) in each of its WASI modes, and reports how the filter's VMs
// fare. Run it with make test-soak; it is not part of make test.
//
//   - "wasi" is a host that implements poll_oneoff, as wazero does and as
//     Envoy does after proxy-wasm-cpp-host PR #533.
//   - "envoy-wasi" answers poll_oneoff with ENOSYS, as Envoy's wasm host
//     did before that fix. The Go runtime treats the error as fatal, and a
//     Go module that ever created a runtime timer calls poll_oneoff in
//     every garbage collection; the filter creates none
//     (plugin/filter/rand_wasip1.go).
//
// In both, every VM must survive and every call be allowed. Should a VM
// die, the run also checks that it died closed: every call allowed by a
// live VM or answered 503 (Envoy's FAIL_CLOSED), none reaching the upstream
// unchecked.
func TestSoak(t *testing.T) {
	duration := 3 * time.Minute
	if v := os.Getenv("KNAIGHT_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		must(t, err)
		duration = d
	}
	for _, mode := range []struct {
		name      string
		envoyWASI bool
	}{{"wasi", false}, {"envoy-wasi", true}} {
		t.Run(mode.name, func(t *testing.T) {
			st, err := stack.Start(t.Context(), stack.Options{Dir: t.TempDir(), DatabaseURL: postgres.NewDatabase(t), EnvoyWASI: mode.envoyWASI})
			must(t, err)
			t.Cleanup(st.Stop)
			a := demoAgent(t, st)
			signal(t, st, a, append(stack.IdentitySignals, stack.ScorecardSignal)...)
			token := oauthToken(t, st, a)
			call := func(id int) outcome {
				// A distinct id per call: two identical bodies signed in the
				// same millisecond would be a replay.
				return rawCall(t, st, a, token, fmt.Sprintf(
					`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"deploy","arguments":{"service":"web","version":"1"}}}`, id))
			}
			waitFor(t, "allowed", func() string { return call(0).reason })

			start := time.Now()
			outcomes := map[string]int{}
			var deaths []string
			failed := map[string]bool{}
			n := 0
			for time.Since(start) < duration {
				n++
				o := call(n)
				outcomes[label(o)]++
				if h := st.Gateway.Health(); h != nil {
					for _, m := range vmFailure.FindAllString(h.Error(), -1) {
						if !failed[m] {
							failed[m] = true
							deaths = append(deaths, fmt.Sprintf("after %s and %d calls: %s", time.Since(start).Round(time.Millisecond), n, m))
						}
					}
				}
			}
			elapsed := time.Since(start).Round(time.Second)
			t.Logf("%d calls in %s: %v", n, elapsed, outcomes)
			for _, d := range deaths {
				t.Logf("VM failure %s", d)
			}
			if len(deaths) > 0 || outcomes["allowed"] != n {
				t.Errorf("the filter must survive and allow every call")
			} else {
				t.Logf("every VM survived %s and %d calls", elapsed, n)
			}
			for l := range outcomes {
				switch l {
				case "allowed", "503 VM failed", string(decision.SnapshotStale), string(decision.SnapshotUnavailable):
					// A live VM allows; a dead one answers 503; a live VM
					// whose poller died fails closed once the snapshot ages.
				default:
					t.Errorf("outcome %q: a failed VM must answer 503, and a live one allow this call", l)
				}
			}
		})
	}
}

// label names an outcome: the filter's reason, or what answered without one.
func label(o outcome) string {
	switch {
	case o.reason != "":
		return o.reason
	case o.status == http.StatusServiceUnavailable:
		return "503 VM failed"
	default:
		return fmt.Sprintf("%d without a reason (the upstream?)", o.status)
	}
}

// vmFailure finds each failed VM, and where, in the gateway's Health.
var vmFailure = regexp.MustCompile(`VM \S+ (?:failed|exited with code \d+) in \S+`)

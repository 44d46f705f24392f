package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/testenv/stack"
)

// BenchmarkRevocationPropagation measures how long a change made through
// the manager's API takes to be enforced by the gateway (budget: p99 under
// one second). Each iteration is one trial: with an allowed call confirmed,
// the change is sent to the API and, from the moment it is sent, the agent
// calls the gateway in a tight loop (a fresh signature and JSON-RPC id per
// call) until the gateway denies with the change's reason; the time to that
// denial is the trial's latency. The state is then restored and the
// gateway seen allowing again, off the clock. It reports p50-ms, p99-ms
// and max-ms of the trials, and api-p50-ms, the median time the API took
// to answer the change; ns/op is the mean latency.
//
//   - token-revoke revokes the agent's token (POST
//     /api/v1/enforcement/tokens/revoke): token_revoked. A new token
//     restores the state.
//   - trust-drop gives the demo role thresholds that its agents' score
//     does not meet (PUT /api/v1/role-templates/{id}/trust-thresholds),
//     which drops the agent from L3 to L2 in the same transaction. Falling
//     below its policy's level also revokes the agent's live tokens in
//     that transaction, and the filter checks revocation before trust, so
//     the denial is token_revoked (trust_below_threshold would do too).
//     Clearing the thresholds and a new token restore the state. The API
//     offers no other way to lower an agent's trust at once: signals cannot
//     be deleted, a new signal never lowers a level (docs/trust.md §11), and
//     an expiring one takes effect only at the manager's next sweep.
//
// With replicas=1 the gateway polls the manager the API call goes to; with
// replicas=2 it polls a second manager process on the same database, so the
// change reaches it through PostgreSQL's LISTEN/NOTIFY.
func BenchmarkRevocationPropagation(b *testing.B) {
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			st := startStack(b, replicas == 2)
			p := &propagation{st: st, a: trustedAgent(b, st)}
			must(b, p.newToken(b.Context()))
			b.Run("token-revoke", func(b *testing.B) {
				p.run(b, p.revokeToken, nil, decision.TokenRevoked)
			})
			b.Run("trust-drop", func(b *testing.B) {
				p.run(b, p.raiseThresholds, p.clearThresholds, decision.TokenRevoked, decision.TrustBelowThreshold)
			})
		})
	}
}

// parkTime is how long a trial waits, off the clock, after the gateway
// allowed the restored state: the poller sends its next long poll only at
// its next tick (100 ms) after taking a snapshot, and a change committed
// before that waits for the tick. In use a change almost always finds the
// long poll parked at the manager, so the trials start from there.
const parkTime = 300 * time.Millisecond

// propagation is one stack's agent and its current token.
type propagation struct {
	st         *stack.Stack
	a          *agent
	token, jti string
}

// run runs b.N trials of change, expecting the gateway to deny with one of
// want, each followed by undo, when not nil, and a new token: both changes
// leave the agent's token revoked.
func (p *propagation) run(b *testing.B, change, undo func(context.Context) error, want ...decision.Reason) {
	ctx := b.Context()
	var latencies, apiTimes []time.Duration
	must(b, p.a.awaitAllowed(ctx, p.token))
	time.Sleep(parkTime)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		apiDone := make(chan error, 1)
		var apiTime time.Duration
		go func() {
			err := change(ctx)
			apiTime = time.Since(start)
			apiDone <- err
		}()
		var latency time.Duration
		for {
			reason, err := p.a.call(ctx, p.token)
			if err != nil {
				b.Fatal(err)
			}
			if slices.Contains(want, decision.Reason(reason)) {
				latency = time.Since(start)
				break
			}
			if reason != allowed {
				b.Fatalf("the gateway answered %q, want %q or one of %q", reason, allowed, want)
			}
			if time.Since(start) > settleLimit {
				b.Fatalf("the gateway still allows %s after the change", settleLimit)
			}
		}
		b.StopTimer()
		must(b, <-apiDone)
		latencies, apiTimes = append(latencies, latency), append(apiTimes, apiTime)
		// Restore even after the last trial: the next sub-benchmark shares
		// the stack. The manager sometimes fails a token request (see
		// retry), which is not what this measures.
		if undo != nil {
			must(b, undo(ctx))
		}
		must(b, retry(b, p.newToken))
		must(b, p.a.awaitAllowed(ctx, p.token))
		time.Sleep(parkTime)
		b.StartTimer()
	}
	reportLatencies(b, latencies, true)
	slices.Sort(apiTimes)
	b.ReportMetric(ms(percentile(apiTimes, 50)), "api-p50-ms")
}

// newToken gets the agent a new token and learns its id.
func (p *propagation) newToken(ctx context.Context) error {
	token, err := p.a.token(ctx)
	if err != nil {
		return err
	}
	var intro struct {
		JTI string `json:"jti"`
	}
	if err := p.st.API.Do(ctx, "POST", "/api/v1/enforcement/tokens/introspect", map[string]any{"token": token}, 200, &intro); err != nil {
		return err
	}
	p.token, p.jti = token, intro.JTI
	return nil
}

func (p *propagation) revokeToken(ctx context.Context) error {
	return p.st.API.Do(ctx, "POST", "/api/v1/enforcement/tokens/revoke", map[string]any{
		"organizationId": p.st.OrganizationID, "tokenId": p.jti, "reason": "benchmark"}, 200, nil)
}

// unreachable are thresholds no agent of the stack meets above L2: L3 and
// up require a perfect score. L2 keeps its default, and every level keeps
// at least L2's identity minimum, as the lattice rule requires.
var unreachable = map[string]any{"levels": map[string]any{
	"L2": map[string]any{"minScore": 15, "dimensions": map[string]float64{"identity": 0.5}},
	"L3": map[string]any{"minScore": 100, "dimensions": map[string]float64{"identity": 0.5}},
	"L4": map[string]any{"minScore": 100, "dimensions": map[string]float64{"identity": 0.5}},
	"L5": map[string]any{"minScore": 100, "dimensions": map[string]float64{"identity": 0.5}},
}}

func (p *propagation) raiseThresholds(ctx context.Context) error {
	return p.st.API.Do(ctx, "PUT", "/api/v1/role-templates/"+p.st.DemoRoleID+"/trust-thresholds", unreachable, 200, nil)
}

func (p *propagation) clearThresholds(ctx context.Context) error {
	return p.st.API.Do(ctx, "DELETE", "/api/v1/role-templates/"+p.st.DemoRoleID+"/trust-thresholds", nil, 204, nil)
}

// retry runs f, which must be safe to repeat, up to three times, logging
// each failure. It is for the untimed restore step only: a token request
// can lose a deadlock in the manager (token issuance locks the
// organization row before the ledger head, decision ingest the other way
// round) and fail with 500 after PostgreSQL's deadlock_timeout.
func retry(b *testing.B, f func(context.Context) error) error {
	var err error
	for range 3 {
		if err = f(b.Context()); err == nil {
			return nil
		}
		b.Logf("restoring the state failed, retrying: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/tokens"
)

const (
	issuePath      = "/api/v1/enforcement/tokens/issue"
	introspectPath = "/api/v1/enforcement/tokens/introspect"
)

// newTokenOrg is a bench organization whose token settings are those of the
// README walkthrough with algorithm alg, and one ACTIVE agent. It returns
// the body the README sends to issue a token for that agent.
func newTokenOrg(b *testing.B, alg string) (*benchOrg, []byte) {
	b.Helper()
	o := newBenchOrg(b)
	ctx := b.Context()
	tmpl, err := agents.RoleTemplateByName(ctx, o.pool, o.org.ID, "assistant")
	if err != nil {
		b.Fatal(err)
	}
	var agent agents.Registered
	err = db.InTx(ctx, o.pool, func(tx pgx.Tx) error {
		settings := tokens.Settings{Algorithm: alg, DefaultTTLSeconds: 900, MaxTTLSeconds: 3600, Audiences: []string{"https://gateway.example/mcp"}}
		if _, err := (tokens.Keys{Sealer: o.sealer}).SetSettings(ctx, tx, o.org.ID, settings, "bench", time.Now()); err != nil {
			return err
		}
		agent, err = agents.Register(ctx, tx, agents.BuiltinRegistry{OrganizationID: o.org.ID, Now: time.Now}, &agents.Keys{Sealer: o.sealer}, o.org.ID, o.org.ANSDomain,
			agents.NewAgent{Name: "deploy-bot", RoleTemplateID: tmpl.ID, Environment: "production", Activate: true}, "bench", time.Now())
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"organizationId": o.org.ID, "agentId": agent.Agent.ID, "loaLevel": 2, "scope": []string{"mcp:read", "mcp:invoke"}})
	return o, body
}

// BenchmarkTokenIssue measures POST /api/v1/enforcement/tokens/issue with
// the README's body, for an organization signing with EdDSA and one with
// HS256, with 4 clients at a time and with 64 (many agents renewing their
// tokens at once: requests that arrive together are issued together). It
// reports tokens/s.
func BenchmarkTokenIssue(b *testing.B) {
	for _, alg := range []string{tokens.EdDSA, tokens.HS256} {
		for _, clients := range []int{4, 64} {
			b.Run(fmt.Sprintf("alg=%s/clients=%d", alg, clients), func(b *testing.B) {
				o, body := newTokenOrg(b, alg)
				srv, client := benchAPI(b, o)
				b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						status, raw, err := post(client, srv.URL, issuePath, o.admin, body)
						if err != nil {
							b.Error(err)
							return
						}
						if status != http.StatusCreated {
							b.Errorf("status %d: %s", status, raw)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}

// BenchmarkTokenIntrospect measures POST
// /api/v1/enforcement/tokens/introspect of live EdDSA tokens,
// GOMAXPROCS*benchPerProc requests at a time. It reports introspections/s.
func BenchmarkTokenIntrospect(b *testing.B) {
	o, body := newTokenOrg(b, tokens.EdDSA)
	srv, client := benchAPI(b, o)
	bodies := make([][]byte, 64)
	for i := range bodies {
		status, raw, err := post(client, srv.URL, issuePath, o.admin, body)
		if err != nil || status != http.StatusCreated {
			b.Fatalf("issue: %d %v: %s", status, err, raw)
		}
		var issued struct{ Token string }
		if err := json.Unmarshal(raw, &issued); err != nil {
			b.Fatal(err)
		}
		bodies[i], _ = json.Marshal(map[string]string{"token": issued.Token})
	}
	active := []byte(`"active":true`)
	b.SetParallelism(benchPerProc)
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		// Each client starts at its own token.
		i := int(next.Add(17))
		for pb.Next() {
			i++
			status, raw, err := post(client, srv.URL, introspectPath, o.admin, bodies[i%len(bodies)])
			if err != nil {
				b.Error(err)
				return
			}
			if status != http.StatusOK || !bytes.Contains(raw, active) {
				b.Errorf("status %d: %s", status, raw)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "introspections/s")
}

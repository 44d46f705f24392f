package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/api"
	"github.com/knaight/knaight/manager/internal/calls"
	"github.com/knaight/knaight/manager/internal/config"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/gateways"
	"github.com/knaight/knaight/manager/internal/orgs"
	"github.com/knaight/knaight/manager/internal/seal"
	"github.com/knaight/knaight/manager/internal/snapshots"
	"github.com/knaight/knaight/manager/internal/tokens"
	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/snapshot"
	"github.com/knaight/knaight/testenv/postgres"
)

// benchOrg is a bootstrapped organization with a production gateway, on
// its own database, for benchmarks (the env harness is for tests).
type benchOrg struct {
	pool    *pgxpool.Pool
	sealer  *seal.Sealer
	org     orgs.Organization
	admin   string // the bootstrap admin API key
	gateway gateways.Authenticated
	cred    string
}

func newBenchOrg(b *testing.B) *benchOrg {
	b.Helper()
	ctx := b.Context()
	// The manager's default pool size.
	pool, err := db.Open(ctx, postgres.NewDatabase(b, migrated), int32(config.Defaults().DBMaxConns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	kek, _ := seal.ParseKEK(testKEK)
	sealer, _ := seal.New(kek)
	now := time.Now()
	boot, err := orgs.Bootstrap(ctx, pool, orgs.New{Name: "Acme", Slug: "acme", ANSDomain: "acme.agents.example"}, "admin", false, "bench", now)
	if err != nil {
		b.Fatal(err)
	}
	o := &benchOrg{pool: pool, sealer: sealer, org: boot.Organization, admin: boot.Token}
	svc := gateways.Service{Sealer: sealer}
	err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
		r, err := svc.Register(ctx, tx, o.org.ID, gateways.NewGateway{Name: "edge", Environment: "production"}, "bench", now)
		o.cred = r.Credential
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if o.gateway, err = svc.Authenticate(ctx, pool, o.cred, now); err != nil {
		b.Fatal(err)
	}
	return o
}

// benchPerProc is how many clients per P the parallel HTTP benchmarks run
// (b.SetParallelism): GOMAXPROCS*2 requests in flight keep the manager busy
// while some wait on the database. Writers of one organization take turns
// on its ledger chain head, so more clients only queue there.
const benchPerProc = 2

// benchAPI serves the real API handler for o on a loopback server and
// returns a client that keeps a connection per concurrent request alive
// (http.DefaultClient keeps two, so parallel benchmarks would measure TCP
// handshakes).
func benchAPI(b *testing.B, o *benchOrg) (*httptest.Server, *http.Client) {
	b.Helper()
	handler, _ := api.New(api.Config{Pool: o.pool, Sealer: o.sealer, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Issuer: "http://manager.example"})
	srv := httptest.NewServer(handler)
	b.Cleanup(srv.Close)
	// Keep a connection per client, up to the most clients a benchmark
	// runs, so that no request pays for a new connection.
	const conns = 64
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns}
	b.Cleanup(tr.CloseIdleConnections)
	return srv, &http.Client{Transport: tr}
}

// post sends body to path with a bearer token (API key or gateway
// credential) and returns the status and response body.
func post(c *http.Client, url, path, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest("POST", url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func benchBatch(start, n int) []decision.Record {
	recs := make([]decision.Record, n)
	for i := range recs {
		recs[i] = record(start+i, i%4 != 0)
	}
	return recs
}

// ingestBatch is the largest batch the filter flushes (flushBatch in
// plugin/filter/poller.go).
const ingestBatch = 500

// postDecisions sends one batch of records as a gateway's flush does.
func postDecisions(c *http.Client, url, cred string, recs []decision.Record) error {
	body, err := json.Marshal(decision.Batch{Records: recs})
	if err != nil {
		return err
	}
	status, raw, err := post(c, url, api.DecisionsPath, cred, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %s", status, raw)
	}
	return nil
}

// BenchmarkIngest measures decision ingest in batches of ingestBatch:
// calls.Ingest in its transaction ("store"), the whole HTTP request
// ("http"), and GOMAXPROCS*2 gateways of one organization flushing at once
// ("http-parallel"). It reports records/s.
func BenchmarkIngest(b *testing.B) {
	const size = ingestBatch
	b.Run("store", func(b *testing.B) {
		o := newBenchOrg(b)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			recs := benchBatch(n, size)
			n += size
			err := db.InTx(b.Context(), o.pool, func(tx pgx.Tx) error {
				_, err := calls.Ingest(b.Context(), tx, o.gateway, recs, time.Now())
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("http", func(b *testing.B) {
		o := newBenchOrg(b)
		srv, client := benchAPI(b, o)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := postDecisions(client, srv.URL, o.cred, benchBatch(n, size)); err != nil {
				b.Fatal(err)
			}
			n += size
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("http-parallel", func(b *testing.B) {
		o := newBenchOrg(b)
		srv, client := benchAPI(b, o)
		// One gateway per goroutine of RunParallel.
		creds := make([]string, benchPerProc*runtime.GOMAXPROCS(0))
		svc := gateways.Service{Sealer: o.sealer}
		err := db.InTx(b.Context(), o.pool, func(tx pgx.Tx) error {
			for i := range creds {
				r, err := svc.Register(b.Context(), tx, o.org.ID, gateways.NewGateway{Name: fmt.Sprintf("edge-%d", i), Environment: "production"}, "bench", time.Now())
				if err != nil {
					return err
				}
				creds[i] = r.Credential
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.SetParallelism(benchPerProc)
		b.ReportAllocs()
		b.ResetTimer()
		var gateway, batches atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			cred := creds[int(gateway.Add(1)-1)%len(creds)]
			for pb.Next() {
				start := int(batches.Add(1)-1) * size
				if err := postDecisions(client, srv.URL, cred, benchBatch(start, size)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(batches.Load()*size)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkBuildSnapshot measures building and signing the snapshot of an
// environment with N active agents and R live token revocations (uncached:
// every iteration reads the database, opens the keys and signs). Agents are
// registered with agents.Register, as the API does; revocations are
// inserted set-based (seedRevocations). It reports payload-bytes, and logs
// how long seeding took.
func BenchmarkBuildSnapshot(b *testing.B) {
	for _, c := range []struct{ agents, revocations int }{{10, 0}, {100, 0}, {1000, 0}, {10000, 100000}} {
		name := fmt.Sprintf("agents=%d", c.agents)
		if c.revocations > 0 {
			name += fmt.Sprintf(",revocations=%d", c.revocations)
		}
		b.Run(name, func(b *testing.B) {
			o := newBenchOrg(b)
			ctx := b.Context()
			start := time.Now()
			seedAgents(b, o, c.agents)
			if c.revocations > 0 {
				seedRevocations(b, o, c.revocations)
				b.Logf("seeded %d agents and %d revocations in %v", c.agents, c.revocations, time.Since(start).Round(time.Millisecond))
			}
			// The planner statistics autovacuum would have gathered by now.
			if _, err := o.pool.Exec(ctx, `ANALYZE`); err != nil {
				b.Fatal(err)
			}
			builder := &snapshots.Builder{Pool: o.pool, Gateways: gateways.Service{Sealer: o.sealer}, AgentKeys: &agents.Keys{Sealer: o.sealer}, Issuer: "http://manager.example",
				TokenKeys: func(context.Context, db.Querier, uuid.UUID, time.Time) ([]snapshot.TokenKey, error) { return nil, nil },
				Settings:  snapshot.Settings{ClockSkewSeconds: 300, MaxStalenessSeconds: 300}}
			b.ReportAllocs()
			var built *snapshots.Built
			for b.Loop() {
				var err error
				if built, err = builder.Build(ctx, o.org.ID, "production", time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			if got := len(built.Snapshot.Agents); got != c.agents {
				b.Fatalf("%d agents in the snapshot, want %d", got, c.agents)
			}
			if got := len(built.Snapshot.Revocations); got != c.revocations {
				b.Fatalf("%d revocations in the snapshot, want %d", got, c.revocations)
			}
			b.ReportMetric(float64(len(built.Payload)), "payload-bytes")
		})
	}
}

// seedAgents registers n ACTIVE production agents with agents.Register, in
// one transaction.
func seedAgents(b *testing.B, o *benchOrg, n int) {
	b.Helper()
	ctx := b.Context()
	tmpl, err := agents.RoleTemplateByName(ctx, o.pool, o.org.ID, "assistant")
	if err != nil {
		b.Fatal(err)
	}
	keys := &agents.Keys{Sealer: o.sealer}
	reg := agents.BuiltinRegistry{OrganizationID: o.org.ID, Now: time.Now}
	err = db.InTx(ctx, o.pool, func(tx pgx.Tx) error {
		for i := range n {
			_, err := agents.Register(ctx, tx, reg, keys, o.org.ID, o.org.ANSDomain,
				agents.NewAgent{Name: fmt.Sprintf("bot-%d", i), RoleTemplateID: tmpl.ID, Environment: "production", Activate: true}, "bench", time.Now())
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// seedRevocations gives the organization an EdDSA signing key and n revoked
// tokens of its agents that expire in 50 to 60 minutes: the rows
// tokens.Issue and then tokens.Revoke leave, written with one INSERT.
func seedRevocations(b *testing.B, o *benchOrg, n int) {
	b.Helper()
	ctx := b.Context()
	now := time.Now().UTC().Truncate(time.Second)
	err := db.InTx(ctx, o.pool, func(tx pgx.Tx) error {
		settings := tokens.Settings{Algorithm: tokens.EdDSA, DefaultTTLSeconds: 900, MaxTTLSeconds: 3600, Audiences: []string{"https://gateway.example/mcp"}}
		if _, err := (tokens.Keys{Sealer: o.sealer}).SetSettings(ctx, tx, o.org.ID, settings, "bench", now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO gateway_tokens (jti, organization_id, agent_id, kid, audience, scopes, loa, issuer_id,
				issued_at, not_before, expires_at, revoked_at, revoked_reason, revoked_by)
			SELECT gen_random_uuid(), $1, a.ids[1 + i % cardinality(a.ids)], k.kid, 'https://gateway.example/mcp', '{mcp:read,mcp:invoke}', 2, 'apikey:bench',
				$2::timestamptz - make_interval(secs => i % 600), $2::timestamptz - make_interval(secs => i % 600),
				$2::timestamptz - make_interval(secs => i % 600) + interval '1 hour', $2, 'revoked by apikey:bench', 'apikey:bench'
			FROM generate_series(0, $3 - 1) i,
				(SELECT array_agg(id ORDER BY id) ids FROM role_agents WHERE organization_id = $1) a,
				(SELECT kid FROM signing_keys WHERE organization_id = $1 AND retired_at IS NULL) k`, o.org.ID, now, n)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

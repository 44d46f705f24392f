package ledger_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/orgs"
	"github.com/knaight/knaight/testenv/postgres"
)

// TestMain starts a throwaway PostgreSQL only when benchmarks were asked
// for: the package has no tests that need one, and `go test` without
// -bench should not pay for a cluster.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	os.Exit(postgres.Main(m))
}

var migrated = postgres.WithTemplate("knaight_manager_ledger", func(ctx context.Context, url string) error {
	_, _, err := db.Migrate(ctx, url)
	return err
})

// seedBatch is how many events each seeding transaction appends.
const seedBatch = 10_000

// seedChain appends n events to a new organization's chain with
// ledger.AppendBatch, seedBatch per transaction, as decision ingest writes
// them: ENFORCEMENT_CALL_ALLOWED and _DENIED events of one gateway, with
// details shaped like calls.Ingest's. It returns the verification of that
// organization's chain.
func seedChain(b *testing.B, n int) func(context.Context) (ledger.Report, error) {
	b.Helper()
	ctx := b.Context()
	pool, err := db.Open(ctx, postgres.NewDatabase(b, migrated), 4)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	boot, err := orgs.Bootstrap(ctx, pool, orgs.New{Name: "Acme", Slug: "acme", ANSDomain: "acme.agents.example"}, "admin", false, "bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	org := boot.Organization.ID
	gateway, agent := uuid.New(), uuid.New()
	actor := "gateway:" + gateway.String()
	decided := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for done := 0; done < n; {
		entries := make([]ledger.Entry, min(seedBatch, n-done))
		for i := range entries {
			seq := done + i
			typ, reason, status, message := "ENFORCEMENT_CALL_ALLOWED", "allowed", 0, ""
			if seq%4 == 0 {
				typ, reason, status, message = "ENFORCEMENT_CALL_DENIED", "trust_below_threshold", 403, "trust L1 below L3"
			}
			details, err := json.Marshal(map[string]any{
				"decisionId": fmt.Sprintf("%032x", seq+1), "reason": reason, "message": message,
				"ansName": "ans://v1.0.0.deploy-bot.acme.agents.example", "method": "POST", "target": "/mcp",
				"source": "gateway", "gatewayId": gateway, "environment": "production",
				"decidedAt": decided.Add(time.Duration(seq) * time.Millisecond), "mcpMethod": "tools/call", "name": "deploy",
				"status": status, "trustLevel": "L3", "trustScore": 71.5, "policyId": "p1", "bundleRevision": "v1",
				"snapshotVersion": 7, "latencyUs": 120,
			})
			if err != nil {
				b.Fatal(err)
			}
			entries[i] = ledger.Entry{OrganizationID: org, Type: typ, Actor: actor, SubjectType: "agent", SubjectID: agent.String(), Details: json.RawMessage(details)}
		}
		err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := ledger.AppendBatch(ctx, tx, org, entries, time.Now())
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		done += len(entries)
	}
	// What autovacuum would have done by the time anyone verifies.
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE ledger_events`); err != nil {
		b.Fatal(err)
	}
	return func(ctx context.Context) (ledger.Report, error) { return ledger.Verify(ctx, pool, org) }
}

// BenchmarkLedgerVerify measures ledger.Verify, what GET
// /api/v1/audit/verify runs, over a chain of N events: one whole
// verification per iteration (run it with -benchtime 1x or 3x). It reports
// events/s, and logs how long seeding took.
func BenchmarkLedgerVerify(b *testing.B) {
	for _, n := range []int{1_000_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			start := time.Now()
			verify := seedChain(b, n)
			b.Logf("seeded %d events in %v", n, time.Since(start).Round(time.Millisecond))
			b.ReportAllocs()
			var r ledger.Report
			for b.Loop() {
				var err error
				if r, err = verify(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			if !r.OK || r.Events < int64(n) {
				b.Fatalf("verify: ok=%v, %d events, first broken %+v", r.OK, r.Events, r.FirstBroken)
			}
			b.ReportMetric(float64(r.Events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

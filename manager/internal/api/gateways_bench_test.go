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
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/api"
	"github.com/knaight/knaight/manager/internal/calls"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/gateways"
	"github.com/knaight/knaight/manager/internal/orgs"
	"github.com/knaight/knaight/manager/internal/seal"
	"github.com/knaight/knaight/manager/internal/snapshots"
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
	gateway gateways.Authenticated
	cred    string
}

func newBenchOrg(b *testing.B) *benchOrg {
	b.Helper()
	ctx := b.Context()
	pool, err := db.Open(ctx, postgres.NewDatabase(b, migrated), 8)
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
	o := &benchOrg{pool: pool, sealer: sealer, org: boot.Organization}
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

func benchBatch(start, n int) []decision.Record {
	recs := make([]decision.Record, n)
	for i := range recs {
		recs[i] = record(start+i, i%4 != 0)
	}
	return recs
}

// BenchmarkIngest measures decision ingest in batches of 500: calls.Ingest
// in its transaction ("store"), and the whole HTTP request ("http"). It
// reports records/s.
func BenchmarkIngest(b *testing.B) {
	const size = 500
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
		handler, _ := api.New(api.Config{Pool: o.pool, Sealer: o.sealer, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Issuer: "http://manager.example"})
		srv := httptest.NewServer(handler)
		b.Cleanup(srv.Close)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			body, _ := json.Marshal(decision.Batch{Records: benchBatch(n, size)})
			n += size
			req, _ := http.NewRequestWithContext(b.Context(), "POST", srv.URL+api.DecisionsPath, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+o.cred)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkBuildSnapshot measures building and signing the snapshot of an
// environment with N active agents (uncached: every iteration reads the
// database, opens the keys and signs).
func BenchmarkBuildSnapshot(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			o := newBenchOrg(b)
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
			builder := &snapshots.Builder{Pool: o.pool, Gateways: gateways.Service{Sealer: o.sealer}, AgentKeys: keys, Issuer: "http://manager.example",
				TokenKeys: func(context.Context, db.Querier, uuid.UUID, time.Time) ([]snapshot.TokenKey, error) { return nil, nil },
				Settings:  snapshot.Settings{ClockSkewSeconds: 300, MaxStalenessSeconds: 300}}
			b.ReportAllocs()
			var size int
			for b.Loop() {
				built, err := builder.Build(ctx, o.org.ID, "production", time.Now())
				if err != nil {
					b.Fatal(err)
				}
				size = len(built.Payload)
			}
			b.ReportMetric(float64(size), "payload-bytes")
		})
	}
}

package api_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/decision"
)

// Token issue and decision ingest write the same organization's ledger at
// once. Every writer must take the ledger head and the organization row in
// one order; when issue locked the organization row FOR UPDATE first, an
// ingest holding the head and waiting for the row's key-share lock (the
// foreign key of its rows) deadlocked with it, and PostgreSQL failed one of
// the two after a second.
func TestTokenIssueAndDecisionIngestDoNotDeadlock(t *testing.T) {
	e := newEnv(t)
	e.withAudience("EdDSA")
	agent := e.registerAgent("deploy-bot", e.templateID("deployer"), "production").str("id")
	_, cred := e.registerGateway("edge", "production")
	e.issue(agent, nil) // the first signing key exists before the race

	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	counts := make([]int, 6)
	for w := range 3 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				r := e.do("POST", "/api/v1/enforcement/tokens/issue", e.admin, map[string]any{
					"organizationId": e.org.ID, "agentId": agent, "loaLevel": 2, "scope": []string{"mcp:invoke"}})
				if r.Status != 201 {
					fail("token issue: %d %s", r.Status, r.Raw)
				}
				counts[w]++
			}
		})
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				recs := make([]decision.Record, 50)
				for i := range recs {
					recs[i] = record(1_000_000*(w+1)+50*n+i, true)
				}
				r := e.do("POST", "/api/v1/gateway/decisions", cred, decision.Batch{Records: recs})
				if r.Status != 200 {
					fail("ingest: %d %s", r.Status, r.Raw)
				}
				counts[3+w]++
			}
		})
	}
	wg.Wait()
	t.Logf("requests per worker (issue x3, ingest x3): %v", counts)
	for _, f := range failures {
		t.Error(f)
	}
	if v := e.must(200, "GET", "/api/v1/audit/verify", e.admin, nil); v.get("ok") != true {
		t.Fatalf("verify: %s", v.Raw)
	}
}

// A gateway's credential rotation locks its row, then appends to the
// ledger; a decision batch from that gateway locks the row's key (the
// foreign key of its records), then the ledger head. When ingest took the
// head first, the two waited on each other and PostgreSQL failed one.
func TestCredentialRotationAndDecisionIngestDoNotDeadlock(t *testing.T) {
	e := newEnv(t)
	id, first := e.registerGateway("edge", "production")
	var mu sync.Mutex
	cred := first
	current := func() string {
		mu.Lock()
		defer mu.Unlock()
		return cred
	}
	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	var rotations, batches, stored int
	wg.Go(func() {
		for time.Now().Before(deadline) {
			r := e.do("POST", "/api/v1/gateways/"+id+"/credential", e.admin, nil)
			if r.Status != 200 {
				fail("rotate: %d %s", r.Status, r.Raw)
				return
			}
			mu.Lock()
			cred = r.str("credential")
			mu.Unlock()
			rotations++
		}
	})
	for w := range 2 {
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				recs := make([]decision.Record, 50)
				for i := range recs {
					recs[i] = record(1_000_000*(w+1)+50*n+i, true)
				}
				// A batch sent with a credential rotated meanwhile is refused;
				// any other answer than 200 or 401 is a failure.
				switch r := e.do("POST", "/api/v1/gateway/decisions", current(), decision.Batch{Records: recs}); r.Status {
				case 200:
					mu.Lock()
					stored++
					mu.Unlock()
				case 401:
				default:
					fail("ingest: %d %s", r.Status, r.Raw)
				}
				mu.Lock()
				batches++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d rotations, %d batches, %d stored", rotations, batches, stored)
	for _, f := range failures {
		t.Error(f)
	}
	if stored == 0 {
		t.Error("no batch was stored")
	}
	if v := e.must(200, "GET", "/api/v1/audit/verify", e.admin, nil); v.get("ok") != true {
		t.Fatalf("verify: %s", v.Raw)
	}
}

// Batches that share records, in different orders (a retry sent while the
// first attempt still runs, or a filter that re-queued a part), store each
// record once, and none of them fails: they store in one order whatever
// their own.
func TestOverlappingBatchesInAnyOrderStoreEachRecordOnce(t *testing.T) {
	e := newEnv(t)
	_, cred := e.registerGateway("edge", "production")
	const records, senders, rounds = 60, 4, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for round := range rounds {
		for s := range senders {
			wg.Go(func() {
				recs := make([]decision.Record, records)
				for i := range recs {
					// Sender s sends the round's records rotated by s*15.
					recs[i] = record(10_000*round+(i+15*s)%records, true)
				}
				r := e.do("POST", "/api/v1/gateway/decisions", cred, decision.Batch{Records: recs})
				mu.Lock()
				defer mu.Unlock()
				if r.Status != 200 {
					t.Errorf("round %d sender %d: %d %s", round, s, r.Status, r.Raw)
					return
				}
				accepted += int(r.get("accepted").(float64))
			})
		}
		wg.Wait()
	}
	if accepted != records*rounds {
		t.Errorf("accepted %d records in all, want each of the %d once", accepted, records*rounds)
	}
	if v := e.must(200, "GET", "/api/v1/audit/verify", e.admin, nil); v.get("ok") != true {
		t.Fatalf("verify: %s", v.Raw)
	}
}

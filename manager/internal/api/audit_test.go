package api_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuditVerifyCatchesEditsAndDeletions(t *testing.T) {
	tests := []struct {
		name   string
		tamper string
		reason string
	}{
		{"edited details", `UPDATE ledger_events SET details = replace(details, 'bot-3', 'bot-9') WHERE seq = $2 AND organization_id = $1`, "edited"},
		{"edited actor", `UPDATE ledger_events SET actor = 'apikey:someone-else' WHERE seq = $2 AND organization_id = $1`, "edited"},
		{"whitespace added to details", `UPDATE ledger_events SET details = details || ' ' WHERE seq = $2 AND organization_id = $1`, "edited"},
		{"deleted event", `DELETE FROM ledger_events WHERE seq = $2 AND organization_id = $1`, "deleted"},
		{"deleted last event", `DELETE FROM ledger_events WHERE seq = (SELECT max(seq) FROM ledger_events WHERE organization_id = $1) AND organization_id = $1 AND $2 > 0`, "deleted"},
		{"rehashed event without relinking", `UPDATE ledger_events SET prev_hash = sha256(prev_hash) WHERE seq = $2 AND organization_id = $1`, "prev_hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tmpl := e.templateID("r")
			for i := range 5 {
				e.registerAgent(fmt.Sprintf("bot-%d", i), tmpl, "staging")
			}
			ok := e.must(200, "GET", "/api/v1/audit/verify", e.admin, nil)
			if ok.Body["ok"] != true {
				t.Fatalf("untouched chain fails: %s", ok.Raw)
			}
			// Find the event that registered bot-3.
			var seq int64
			if err := e.pool.QueryRow(t.Context(), `SELECT seq FROM ledger_events WHERE organization_id = $1 AND details LIKE '%bot-3%'`, e.org.ID).Scan(&seq); err != nil {
				t.Fatal(err)
			}
			if _, err := e.pool.Exec(t.Context(), tc.tamper, e.org.ID, seq); err != nil {
				t.Fatal(err)
			}
			r := e.must(200, "GET", "/api/v1/audit/verify", e.admin, nil)
			if r.Body["ok"] != false {
				t.Fatalf("tampered chain verifies: %s", r.Raw)
			}
			if !strings.Contains(r.str("firstBroken.reason"), tc.reason) {
				t.Fatalf("reason %q does not say %q", r.str("firstBroken.reason"), tc.reason)
			}
			if tc.name != "deleted last event" {
				if got := int64(r.get("firstBroken.seq").(float64)); got != seq {
					t.Fatalf("first broken event %d, want %d", got, seq)
				}
			}
		})
	}
}

func TestConcurrentWritersLeaveOneChain(t *testing.T) {
	e := newEnv(t)
	tmpl := e.templateID("r")
	const writers = 50
	var wg sync.WaitGroup
	errs := make(chan string, writers)
	for i := range writers {
		wg.Go(func() {
			r := e.do("POST", "/api/v1/agents", e.admin, map[string]any{
				"name": fmt.Sprintf("agent-%02d", i), "roleTemplateId": tmpl, "environment": "staging", "activate": true,
			})
			if r.Status != 201 {
				errs <- fmt.Sprintf("writer %d: %d %s", i, r.Status, r.Raw)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r := e.must(200, "GET", "/api/v1/audit/verify", e.admin, nil)
	if r.Body["ok"] != true {
		t.Fatalf("chain after concurrent writes: %s", r.Raw)
	}
	var events, distinctPrev int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT prev_hash) FROM ledger_events WHERE organization_id = $1`, e.org.ID).Scan(&events, &distinctPrev); err != nil {
		t.Fatal(err)
	}
	if events != distinctPrev {
		t.Fatalf("%d events share %d predecessors: the chain forked", events, distinctPrev)
	}
	if n := int(r.get("events").(float64)); n != events {
		t.Fatalf("verify walked %d of %d events", n, events)
	}
	registered := 0
	cursor := ""
	for {
		page := e.must(200, "GET", "/api/v1/audit?type=AGENT_REGISTERED&limit=20"+cursor, e.admin, nil)
		registered += len(page.Body["items"].([]any))
		if page.str("nextCursor") == "" && page.get("nextCursor") == nil {
			break
		}
		cursor = fmt.Sprintf("&cursor=%v", int64(page.get("nextCursor").(float64)))
	}
	if registered != writers {
		t.Fatalf("%d AGENT_REGISTERED events, want %d", registered, writers)
	}
}

func TestAuditListFilters(t *testing.T) {
	e := newEnv(t)
	tmpl := e.templateID("r")
	e.clock.Advance(time.Hour)
	mark := e.clock.Now()
	e.registerAgent("bot", tmpl, "staging")
	items := e.must(200, "GET", "/api/v1/audit?since="+mark.Format(time.RFC3339), e.admin, nil).Body["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["type"] != "AGENT_REGISTERED" {
		t.Fatalf("events since mark: %v", items)
	}
	e.problem(e.do("GET", "/api/v1/audit?since=yesterday", e.admin, nil), 422, "query.since", "")
	e.problem(e.do("GET", "/api/v1/audit?limit=501", e.admin, nil), 422, "query.limit", "")
}

// TestNoSecretInLogsOrLaterResponses drives every secret-bearing path and
// checks that no secret appears in the logs, and that none appears in any
// response but the one that created it.
func TestNoSecretInLogsOrLaterResponses(t *testing.T) {
	e := newEnv(t)
	before := e.bodies.String()
	_ = before
	key := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "ops", "role": "operator"}).str("token")
	reg := e.registerAgent("bot", e.templateID("r"), "staging")
	rot := e.must(201, "POST", "/api/v1/agents/"+reg.str("id")+"/keys", key, nil)
	src := e.must(201, "POST", "/api/v1/trust/sources", e.admin, map[string]any{"name": "isaca", "kinds": []string{"credential.isaca"}})
	secrets := map[string]string{
		"admin key": e.admin, "operator key": key, "first hmac key": reg.str("hmacKey.secret"),
		"rotated hmac key": rot.str("secret"), "webhook secret": src.str("secret"), "KEK": testKEK,
	}
	mark := len(e.bodies.String())

	// Exercise reads and failures that might echo them.
	e.do("GET", "/api/v1/api-keys", e.admin, nil)
	e.do("GET", "/api/v1/agents/"+reg.str("id"), key, nil)
	e.do("GET", "/api/v1/agents/"+reg.str("id")+"/keys", key, nil)
	e.do("GET", "/api/v1/trust/sources", e.admin, nil)
	e.do("GET", "/api/v1/audit?limit=500", e.admin, nil)
	e.do("GET", "/api/v1/organization", key+"x", nil)
	e.do("POST", "/api/v1/bootstrap", e.admin, map[string]any{})

	later := e.bodies.String()[mark:]
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatalf("no request logs captured")
	}
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("%s is empty", name)
		}
		if strings.Contains(logs, s) {
			t.Errorf("%s appears in the logs", name)
		}
		if strings.Contains(later, s) {
			t.Errorf("%s appears in a later response", name)
		}
	}
	var ledgerText string
	if err := e.pool.QueryRow(t.Context(), `SELECT string_agg(details, ' ') FROM ledger_events`).Scan(&ledgerText); err != nil {
		t.Fatal(err)
	}
	for name, s := range secrets {
		if strings.Contains(ledgerText, s) {
			t.Errorf("%s appears in the ledger", name)
		}
	}
}

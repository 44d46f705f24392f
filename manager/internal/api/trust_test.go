package api_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/manager/internal/trust"
)

func (e *env) signal(agent, kind string, value float64, expires *time.Time) response {
	e.t.Helper()
	body := map[string]any{"source": "admin-attestation", "kind": kind, "value": value, "observedAt": e.clock.Now().Format(time.RFC3339),
		"evidence": map[string]any{"note": "checked by hand"}}
	if expires != nil {
		body["expiresAt"] = expires.Format(time.RFC3339)
	}
	return e.must(201, "POST", "/api/v1/agents/"+agent+"/signals", e.admin, body)
}

func TestTrustSignalMovesAgentFromL2ToL3AndItsExpiryBack(t *testing.T) {
	e := newEnv(t)
	// The seeded "assistant" role requires L3 in production.
	tmpl := ""
	for _, it := range e.must(200, "GET", "/api/v1/role-templates", e.admin, nil).Body["items"].([]any) {
		if m := it.(map[string]any); m["name"] == "assistant" {
			tmpl = m["id"].(string)
		}
	}
	agent := e.registerAgent("helper", tmpl, "production").str("id")

	e.signal(agent, "identity.admin_attestation", 1, nil)
	e.signal(agent, "identity.dns_verified", 1, nil)
	if lv := e.signal(agent, "github.org_verified", 1, nil).str("trust.level"); lv != "L2" {
		t.Fatalf("with identity and publisher evidence: %s, want L2", lv)
	}
	sum := e.must(200, "GET", "/api/v1/agents/"+agent+"/trust", e.admin, nil)
	if sum.str("trust.level") != "L2" || sum.get("policy.requiredLevel") != "L3" || sum.get("policy.satisfied") != false {
		t.Fatalf("trust summary before: %s", sum.Raw)
	}

	expires := e.clock.Now().Add(7 * 24 * time.Hour)
	if lv := e.signal(agent, "scorecard.score", 8, &expires).str("trust.level"); lv != "L3" {
		t.Fatalf("after a Scorecard of 8: %s, want L3", lv)
	}
	sum = e.must(200, "GET", "/api/v1/agents/"+agent+"/trust", e.admin, nil)
	if sum.str("trust.level") != "L3" || sum.get("policy.satisfied") != true || sum.str("ans.status") != "ACTIVE" ||
		sum.str("ans.id") != "ans://v1.0.0.helper.acme.agents.example" || sum.str("agentId") != agent {
		t.Fatalf("trust summary after: %s", sum.Raw)
	}
	if n := len(sum.get("trust.sources").([]any)); n != 4 {
		t.Fatalf("%d sources, want 4", n)
	}
	if score, required := sum.get("trust.score").(float64), sum.get("policy.requiredScore").(float64); score < required {
		t.Fatalf("score %v below required %v at L3", score, required)
	}

	e.clock.Advance(7*24*time.Hour + time.Second)
	sum = e.must(200, "GET", "/api/v1/agents/"+agent+"/trust", e.admin, nil)
	if sum.str("trust.level") != "L2" {
		t.Fatalf("after the Scorecard expired: %s, want L2", sum.str("trust.level"))
	}
	// The stored level follows at the next sweep, and the change is audited.
	if err := e.api.SweepOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if lv := e.must(200, "GET", "/api/v1/agents/"+agent, e.admin, nil).str("trust.level"); lv != "L2" {
		t.Fatalf("stored level after sweep: %s", lv)
	}
	changes := e.must(200, "GET", "/api/v1/audit?type=TRUST_LEVEL_CHANGED&subjectId="+agent, e.admin, nil).Body["items"].([]any)
	var path []string
	for i := len(changes) - 1; i >= 0; i-- {
		d := changes[i].(map[string]any)["details"].(map[string]any)
		path = append(path, d["from"].(string)+"->"+d["to"].(string))
	}
	if got := strings.Join(path, " "); got != "L1->L2 L2->L3 L3->L2" {
		t.Fatalf("level changes %q", got)
	}
}

func TestSignalValidation(t *testing.T) {
	e := newEnv(t)
	agent := e.registerAgent("bot", e.templateID("r"), "staging").str("id")
	now := e.clock.Now()
	ok := func(m map[string]any) map[string]any {
		return patched(map[string]any{"source": "github", "kind": "github.org_verified", "value": 1, "observedAt": now.Format(time.RFC3339)}, m)
	}
	tests := []struct {
		name     string
		body     map[string]any
		location string
		msg      string
	}{
		{"unknown kind", ok(map[string]any{"kind": "vibes.good"}), "body.kind", "unknown signal kind"},
		{"value out of range", ok(map[string]any{"kind": "scorecard.score", "value": 11}), "body.value", "range"},
		{"value of wrong type", ok(map[string]any{"value": "high"}), "body.value", "number"},
		{"missing source", ok(map[string]any{"source": nil}), "body", "source"},
		{"observed in the future", ok(map[string]any{"observedAt": now.Add(time.Hour).Format(time.RFC3339)}), "body.observedAt", "future"},
		{"already expired", ok(map[string]any{"expiresAt": now.Add(-time.Minute).Format(time.RFC3339), "observedAt": now.Add(-time.Hour).Format(time.RFC3339)}), "body.expiresAt", "passed"},
		{"evidence not an object", ok(map[string]any{"evidence": []any{1}}), "body.evidence", "object"},
		{"bad timestamp", ok(map[string]any{"observedAt": "yesterday"}), "body.observedAt", "date-time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.problem(e.do("POST", "/api/v1/agents/"+agent+"/signals", e.admin, tc.body), 422, tc.location, tc.msg)
		})
	}
	e.t = t
	e.problem(e.do("POST", "/api/v1/agents/0f8fad5b-d9cb-469f-a165-70867728950e/signals", e.admin, ok(nil)), 404, "", "")
	if n := len(e.must(200, "GET", "/api/v1/agents/"+agent+"/signals", e.admin, nil).Body["items"].([]any)); n != 0 {
		t.Fatalf("rejected signals were stored: %d", n)
	}
}

func TestSignedWebhook(t *testing.T) {
	e := newEnv(t)
	reg := e.registerAgent("bot", e.templateID("r"), "staging")
	agent := reg.str("id")
	src := e.must(201, "POST", "/api/v1/trust/sources", e.admin, map[string]any{"name": "scw", "kinds": []string{"scw.training_score"}})
	secret, err := base64.RawURLEncoding.DecodeString(src.str("secret"))
	if err != nil {
		t.Fatal(err)
	}
	hook := "/api/v1/trust/sources/" + src.str("id") + "/webhook"
	body := []byte(`{"ansName":"` + reg.str("ans.name") + `","kind":"scw.training_score","value":87,"observedAt":"` + e.clock.Now().Format(time.RFC3339) + `","evidence":{"report":"scw-123"}}`)

	send := func(ts string, sig string, b []byte) response {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+hook, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Knaight-Timestamp", ts)
		req.Header.Set("X-Knaight-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return response{Status: resp.StatusCode, Raw: buf.Bytes()}
	}
	now := e.clock.Now().Format(time.RFC3339)
	good := trust.WebhookSignature(secret, now, body)

	tests := []struct {
		name   string
		ts     string
		sig    string
		body   []byte
		status int
	}{
		{"bad signature is rejected", now, trust.WebhookSignature([]byte("wrong"), now, body), body, 401},
		{"signature over another body is rejected", now, good, bytes.Replace(body, []byte("87"), []byte("99"), 1), 401},
		{"stale timestamp is rejected", e.clock.Now().Add(-6 * time.Minute).Format(time.RFC3339), trust.WebhookSignature(secret, e.clock.Now().Add(-6*time.Minute).Format(time.RFC3339), body), body, 401},
		{"future timestamp is rejected", e.clock.Now().Add(6 * time.Minute).Format(time.RFC3339), trust.WebhookSignature(secret, e.clock.Now().Add(6*time.Minute).Format(time.RFC3339), body), body, 401},
		{"malformed timestamp is rejected", "1700000000", trust.WebhookSignature(secret, "1700000000", body), body, 401},
		{"a good delivery is recorded", now, good, body, 201},
		{"its replay is rejected", now, good, body, 409},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := send(tc.ts, tc.sig, tc.body); r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Raw)
			}
		})
	}

	// A kind outside the source's registration is refused.
	other := []byte(`{"agentId":"` + agent + `","kind":"scorecard.score","value":9,"observedAt":"` + now + `"}`)
	if r := send(now, trust.WebhookSignature(secret, now, other), other); r.Status != 422 {
		t.Fatalf("foreign kind: %d %s", r.Status, r.Raw)
	}
	sigs := e.must(200, "GET", "/api/v1/agents/"+agent+"/signals", e.admin, nil).Body["items"].([]any)
	if len(sigs) != 1 {
		t.Fatalf("%d signals, want 1", len(sigs))
	}
	s := sigs[0].(map[string]any)
	if s["source"] != "scw" || s["recordedBy"] != "source:scw" || s["value"].(float64) != 87 {
		t.Fatalf("recorded signal: %v", s)
	}
	// A revoked source can no longer deliver.
	e.must(204, "DELETE", "/api/v1/trust/sources/"+src.str("id"), e.admin, nil)
	fresh := bytes.Replace(body, []byte("87"), []byte("88"), 1)
	if r := send(now, trust.WebhookSignature(secret, now, fresh), fresh); r.Status != 401 {
		t.Fatalf("revoked source: %d", r.Status)
	}
	e.problem(e.do("POST", "/api/v1/trust/sources", e.admin, map[string]any{"name": "x", "kinds": []string{"nope"}}), 422, "body.kinds[0]", "unknown")
}

func TestTrustThresholds(t *testing.T) {
	e := newEnv(t)
	tmpl := e.templateID("r")
	agent := e.registerAgent("bot", tmpl, "staging").str("id")
	e.signal(agent, "identity.admin_attestation", 1, nil)
	e.signal(agent, "identity.dns_verified", 1, nil)
	if lv := e.must(200, "GET", "/api/v1/agents/"+agent, e.admin, nil).str("trust.level"); lv != "L2" {
		t.Fatalf("level %s, want L2", lv)
	}
	def := e.must(200, "GET", "/api/v1/trust/thresholds", e.admin, nil)
	if def.str("scope") != "default" {
		t.Fatalf("scope %s", def.Raw)
	}
	// Raising L2's identity requirement above what the agent has demotes it at once.
	levels := def.get("thresholds.levels").(map[string]any)
	levels["L2"].(map[string]any)["dimensions"].(map[string]any)["identity"] = 0.65
	levels["L3"].(map[string]any)["dimensions"].(map[string]any)["identity"] = 0.65
	e.must(200, "PUT", "/api/v1/role-templates/"+tmpl+"/trust-thresholds", e.admin, map[string]any{"levels": levels})
	if lv := e.must(200, "GET", "/api/v1/agents/"+agent, e.admin, nil).str("trust.level"); lv != "L1" {
		t.Fatalf("after raising L2 for the role: %s, want L1", lv)
	}
	if s := e.must(200, "GET", "/api/v1/role-templates/"+tmpl+"/trust-thresholds", e.admin, nil).str("scope"); s != "role_template" {
		t.Fatalf("role scope %s", s)
	}
	e.must(204, "DELETE", "/api/v1/role-templates/"+tmpl+"/trust-thresholds", e.admin, nil)
	if lv := e.must(200, "GET", "/api/v1/agents/"+agent, e.admin, nil).str("trust.level"); lv != "L2" {
		t.Fatalf("after clearing: %s, want L2", lv)
	}
	// A lattice whose L3 asks less than L2 is refused with the field named.
	levels["L3"].(map[string]any)["minScore"] = 1
	e.problem(e.do("PUT", "/api/v1/trust/thresholds", e.admin, map[string]any{"levels": levels}), 422, "body.levels.L3.minScore", "")
	delete(levels, "L5")
	e.problem(e.do("PUT", "/api/v1/trust/thresholds", e.admin, map[string]any{"levels": levels}), 422, "body.levels.L5", "missing")
	auditor := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "a", "role": "auditor"}).str("token")
	e.problem(e.do("PUT", "/api/v1/trust/thresholds", auditor, map[string]any{"levels": levels}), 403, "", "")
}

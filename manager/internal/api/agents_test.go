package api_test

import (
	"strings"
	"testing"
	"time"
)

func TestRegisterAgentCreatesANSRegistrationAndKey(t *testing.T) {
	e := newEnv(t)
	tmpl := e.templateID("deployer")

	r := e.must(201, "POST", "/api/v1/agents", e.admin, map[string]any{
		"name": "Deploy Bot", "roleTemplateId": tmpl, "environment": "production",
	})
	if got, want := r.str("ans.name"), "ans://v1.0.0.deploy-bot.acme.agents.example"; got != want {
		t.Fatalf("ANS name %q, want %q", got, want)
	}
	if r.str("ans.status") != "PENDING" || r.str("trust.level") != "L1" || r.str("roleTemplate") != "deployer" {
		t.Fatalf("new agent: %s", r.Raw)
	}
	if !strings.HasPrefix(r.str("hmacKey.kid"), "hk_") || len(r.str("hmacKey.secret")) != 43 {
		t.Fatalf("first key: %s", r.Raw)
	}
	id := r.str("id")
	got := e.must(200, "GET", "/api/v1/agents/"+id, e.admin, nil)
	if strings.Contains(string(got.Raw), r.str("hmacKey.secret")) || strings.Contains(string(got.Raw), "secret") {
		t.Fatalf("agent detail shows the key secret: %s", got.Raw)
	}

	t.Run("explicit v2 and draft-00 names are accepted", func(t *testing.T) {
		e.t = t
		v2 := e.must(201, "POST", "/api/v1/agents", e.admin, map[string]any{
			"name": "translator", "roleTemplateId": tmpl, "environment": "staging", "ansName": "ans://v2.1.0.Translator.Acme.Example",
		})
		if v2.str("ans.name") != "ans://v2.1.0.translator.acme.example" {
			t.Fatalf("v2 name not canonical: %s", v2.str("ans.name"))
		}
		d0 := e.must(201, "POST", "/api/v1/agents", e.admin, map[string]any{
			"name": "legacy", "roleTemplateId": tmpl, "environment": "staging", "ansName": "mcp://deployBot.Deploy.Knaight.v1.0",
		})
		if d0.str("ans.name") != "mcp://deployBot.Deploy.Knaight.v1.0" {
			t.Fatalf("draft-00 name: %s", d0.str("ans.name"))
		}
		e.problem(e.do("POST", "/api/v1/agents", e.admin, map[string]any{
			"name": "copycat", "roleTemplateId": tmpl, "environment": "staging", "ansName": "ans://v2.1.0.translator.acme.example",
		}), 409, "", "")
	})
	e.t = t

	bad := []struct {
		name     string
		body     map[string]any
		location string
		msg      string
	}{
		{"missing environment", map[string]any{"name": "x", "roleTemplateId": tmpl}, "body", "environment"},
		{"unknown environment", map[string]any{"name": "x", "roleTemplateId": tmpl, "environment": "prod"}, "body.environment", "expected value to be one of"},
		{"role template of wrong type", map[string]any{"name": "x", "roleTemplateId": 12, "environment": "staging"}, "body.roleTemplateId", "string"},
		{"unknown role template", map[string]any{"name": "x", "roleTemplateId": "0f8fad5b-d9cb-469f-a165-70867728950e", "environment": "staging"}, "body.roleTemplateId", "no such role template"},
		{"bad name", map[string]any{"name": "-x!", "roleTemplateId": tmpl, "environment": "staging"}, "body.name", "letters"},
		{"bad ANS name", map[string]any{"name": "x", "roleTemplateId": tmpl, "environment": "staging", "ansName": "ans://v1.0.localhost"}, "body.ansName", "invalid"},
		{"bad version", map[string]any{"name": "x", "roleTemplateId": tmpl, "environment": "staging", "version": "1.0"}, "body.version", "version"},
		{"expiry in the past", map[string]any{"name": "x", "roleTemplateId": tmpl, "environment": "staging", "ansExpiresAt": "2020-01-01T00:00:00Z"}, "body.ansExpiresAt", "future"},
		{"unknown field", map[string]any{"name": "x", "roleTemplateId": tmpl, "environment": "staging", "trustLevel": "L5"}, "body.trustLevel", "unexpected property"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.problem(e.do("POST", "/api/v1/agents", e.admin, tc.body), 422, tc.location, tc.msg)
		})
	}
	e.t = t
	e.problem(e.do("POST", "/api/v1/agents", e.admin, map[string]any{"name": "Deploy Bot", "roleTemplateId": tmpl, "environment": "staging"}), 409, "", "")
}

func TestANSLifecycle(t *testing.T) {
	e := newEnv(t)
	id := e.must(201, "POST", "/api/v1/agents", e.admin, map[string]any{
		"name": "bot", "roleTemplateId": e.templateID("r"), "environment": "staging",
	}).str("id")
	path := "/api/v1/agents/" + id + "/ans/status"
	steps := []struct {
		name   string
		body   map[string]any
		status int
		want   string
	}{
		{"pending cannot be suspended", map[string]any{"status": "SUSPENDED", "reason": "x"}, 409, ""},
		{"pending becomes active", map[string]any{"status": "ACTIVE"}, 200, "ACTIVE"},
		{"suspension needs a reason", map[string]any{"status": "SUSPENDED"}, 422, ""},
		{"unknown status is refused", map[string]any{"status": "PAUSED", "reason": "x"}, 422, ""},
		{"active is suspended", map[string]any{"status": "SUSPENDED", "reason": "incident 42"}, 200, "SUSPENDED"},
		{"suspended is reactivated", map[string]any{"status": "ACTIVE", "reason": "incident closed"}, 200, "ACTIVE"},
		{"active is revoked", map[string]any{"status": "REVOKED", "reason": "decommissioned"}, 200, "REVOKED"},
		{"revoked is final", map[string]any{"status": "ACTIVE", "reason": "oops"}, 409, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.t = t
			r := e.do("POST", path, e.admin, s.body)
			if r.Status != s.status {
				t.Fatalf("status %d, want %d: %s", r.Status, s.status, r.Raw)
			}
			if s.want != "" && r.str("ans.status") != s.want {
				t.Fatalf("ANS status %q, want %q", r.str("ans.status"), s.want)
			}
		})
	}
	e.t = t
	// A revoked agent gets no new keys.
	e.problem(e.do("POST", "/api/v1/agents/"+id+"/keys", e.admin, map[string]any{}), 409, "", "")

	events := e.must(200, "GET", "/api/v1/audit?type=ANS_STATUS_CHANGED&subjectId="+id, e.admin, nil).Body["items"].([]any)
	if len(events) != 4 {
		t.Fatalf("%d ANS_STATUS_CHANGED events, want 4 (failed attempts record nothing)", len(events))
	}
	latest := events[0].(map[string]any)["details"].(map[string]any)
	if latest["from"] != "ACTIVE" || latest["to"] != "REVOKED" || latest["reason"] != "decommissioned" {
		t.Fatalf("latest event details: %v", latest)
	}
}

func TestANSExpirySweep(t *testing.T) {
	e := newEnv(t)
	id := e.must(201, "POST", "/api/v1/agents", e.admin, map[string]any{
		"name": "temp", "roleTemplateId": e.templateID("r"), "environment": "staging", "activate": true,
		"ansExpiresAt": e.clock.Now().Add(time.Hour).Format(time.RFC3339),
	}).str("id")
	if err := e.api.SweepOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := e.must(200, "GET", "/api/v1/agents/"+id, e.admin, nil).str("ans.status"); s != "ACTIVE" {
		t.Fatalf("before expiry: %s", s)
	}
	e.clock.Advance(time.Hour)
	if err := e.api.SweepOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := e.must(200, "GET", "/api/v1/agents/"+id, e.admin, nil).str("ans.status"); s != "EXPIRED" {
		t.Fatalf("after expiry: %s", s)
	}
}

func TestHMACKeyRotation(t *testing.T) {
	e := newEnv(t)
	reg := e.registerAgent("bot", e.templateID("r"), "staging")
	id, first := reg.str("id"), reg.str("hmacKey.kid")

	e.problem(e.do("POST", "/api/v1/agents/"+id+"/keys", e.admin, map[string]any{"overlapSeconds": -1}), 422, "body.overlapSeconds", ">= 0")
	e.problem(e.do("POST", "/api/v1/agents/"+id+"/keys", e.admin, map[string]any{"overlapSeconds": "soon"}), 422, "body.overlapSeconds", "integer")

	second := e.must(201, "POST", "/api/v1/agents/"+id+"/keys", e.admin, map[string]any{"overlapSeconds": 600})
	if second.str("kid") == first || second.str("secret") == reg.str("hmacKey.secret") {
		t.Fatalf("rotation returned the old key: %s", second.Raw)
	}
	active := func() map[string]bool {
		out := map[string]bool{}
		for _, k := range e.must(200, "GET", "/api/v1/agents/"+id+"/keys", e.admin, nil).Body["items"].([]any) {
			m := k.(map[string]any)
			out[m["kid"].(string)] = m["active"].(bool)
		}
		return out
	}
	if a := active(); !a[first] || !a[second.str("kid")] {
		t.Fatalf("during overlap both keys are active: %v", a)
	}
	e.clock.Advance(601 * time.Second)
	if a := active(); a[first] || !a[second.str("kid")] {
		t.Fatalf("after overlap only the new key is active: %v", a)
	}
	// Without a body the manager's default overlap applies.
	e.must(201, "POST", "/api/v1/agents/"+id+"/keys", e.admin, nil)

	// The secret at rest is sealed: the stored bytes do not contain it.
	var sealed []byte
	if err := e.pool.QueryRow(t.Context(), `SELECT secret_sealed FROM agent_hmac_keys WHERE kid = $1`, second.str("kid")).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), second.str("secret")) || len(sealed) < 32+16 {
		t.Fatalf("key stored in the clear")
	}
}

func TestListAgentsFiltersAndPages(t *testing.T) {
	e := newEnv(t)
	a, b := e.templateID("a"), e.templateID("b")
	for i := range 5 {
		e.registerAgent("a-"+string(rune('0'+i)), a, "staging")
	}
	e.registerAgent("b-0", b, "production")
	if n := len(e.must(200, "GET", "/api/v1/agents?roleTemplateId="+b, e.admin, nil).Body["items"].([]any)); n != 1 {
		t.Fatalf("%d agents of template b", n)
	}
	if n := len(e.must(200, "GET", "/api/v1/agents?environment=staging&status=ACTIVE", e.admin, nil).Body["items"].([]any)); n != 5 {
		t.Fatalf("%d active staging agents", n)
	}
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		r := e.must(200, "GET", "/api/v1/agents?limit=2"+cursor, e.admin, nil)
		for _, it := range r.Body["items"].([]any) {
			seen[it.(map[string]any)["id"].(string)] = true
		}
		next := r.str("nextCursor")
		if next == "" {
			break
		}
		cursor = "&cursor=" + next
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 6 {
		t.Fatalf("paging saw %d agents, want 6", len(seen))
	}
	e.problem(e.do("GET", "/api/v1/agents?environment=prod", e.admin, nil), 422, "query.environment", "")
	e.problem(e.do("GET", "/api/v1/agents?limit=0", e.admin, nil), 422, "query.limit", "")
}

func TestPatchAgent(t *testing.T) {
	e := newEnv(t)
	id := e.registerAgent("bot", e.templateID("r"), "staging").str("id")
	other := e.templateID("other")
	r := e.must(200, "PATCH", "/api/v1/agents/"+id, e.admin, map[string]any{"description": "builds", "roleTemplateId": other})
	if r.str("description") != "builds" || r.str("roleTemplate") != "other" {
		t.Fatalf("patched: %s", r.Raw)
	}
	e.problem(e.do("PATCH", "/api/v1/agents/"+id, e.admin, map[string]any{"roleTemplateId": "0f8fad5b-d9cb-469f-a165-70867728950e"}), 422, "body.roleTemplateId", "no such")
	e.problem(e.do("PATCH", "/api/v1/agents/"+id, e.admin, map[string]any{"environment": "production"}), 422, "body.environment", "unexpected")
}

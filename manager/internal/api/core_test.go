package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestHealthAndReadiness(t *testing.T) {
	e := newBareEnv(t, "")
	e.must(200, "GET", "/healthz", "", nil)
	r := e.must(200, "GET", "/readyz", "", nil)
	if r.str("status") != "ready" || r.str("changeNotifications") != "listening" {
		t.Fatalf("readyz: %s", r.Raw)
	}
	// A schema this binary does not know makes the manager unready.
	if _, err := e.pool.Exec(t.Context(), `UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	r = e.must(503, "GET", "/readyz", "", nil)
	if !strings.Contains(r.str("reason"), "newer than this binary") {
		t.Fatalf("readyz reason: %s", r.Raw)
	}
}

func TestOpenAPIDocumentCoversTheAPI(t *testing.T) {
	e := newBareEnv(t, "")
	r := e.must(200, "GET", "/api/v1/openapi.json", "", nil)
	if v := r.str("openapi"); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi version %q, want 3.1.x", v)
	}
	paths, _ := r.Body["paths"].(map[string]any)
	for _, p := range []string{
		"/api/v1/bootstrap", "/api/v1/organization", "/api/v1/api-keys", "/api/v1/api-keys/{id}",
		"/api/v1/role-templates", "/api/v1/role-templates/{id}", "/api/v1/agents", "/api/v1/agents/{id}",
		"/api/v1/agents/{id}/ans/status", "/api/v1/agents/{id}/keys",
		"/api/v1/audit", "/api/v1/audit/verify",
	} {
		if _, ok := paths[p]; !ok {
			t.Errorf("OpenAPI document lacks %s", p)
		}
	}
}

func TestBootstrapOverHTTP(t *testing.T) {
	body := map[string]any{"organization": map[string]any{"name": "Acme", "slug": "acme", "ansDomain": "agents.acme.example"}}

	t.Run("disabled without a bootstrap token", func(t *testing.T) {
		e := newBareEnv(t, "")
		e.problem(e.do("POST", "/api/v1/bootstrap", testBootstrap, body), 404, "", "")
	})

	e := newBareEnv(t, testBootstrap)
	tests := []struct {
		name     string
		token    string
		body     any
		status   int
		location string
		msg      string
	}{
		{"wrong token is refused", "not-the-token", body, 401, "", ""},
		{"missing organization is refused", testBootstrap, map[string]any{}, 422, "body", "organization"},
		{"bad slug is named", testBootstrap, map[string]any{"organization": map[string]any{"name": "A", "slug": "Not A Slug", "ansDomain": "a.example"}}, 422, "body.organization.slug", "pattern"},
		{"bad ANS domain is named", testBootstrap, map[string]any{"organization": map[string]any{"name": "A", "slug": "a", "ansDomain": "nodots"}}, 422, "body.organization.ansDomain", "DNS name"},
		{"unknown field is refused", testBootstrap, map[string]any{"organization": map[string]any{"name": "A", "slug": "a", "ansDomain": "a.example", "plan": "gold"}}, 422, "body.organization.plan", "unexpected property"},
		{"malformed JSON is refused", testBootstrap, `{"organization": `, 400, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.problem(e.do("POST", "/api/v1/bootstrap", tc.token, tc.body), tc.status, tc.location, tc.msg)
		})
	}
	e.t = t

	r := e.must(201, "POST", "/api/v1/bootstrap", testBootstrap, body)
	token := r.str("apiKey.token")
	if !strings.HasPrefix(token, "knk_") || r.str("apiKey.role") != "admin" {
		t.Fatalf("bootstrap response: %s", r.Raw)
	}
	if got := e.must(200, "GET", "/api/v1/organization", token, nil).str("slug"); got != "acme" {
		t.Fatalf("organization slug %q", got)
	}
	e.problem(e.do("POST", "/api/v1/bootstrap", testBootstrap, body), 409, "", "")

	// Bootstrap seeds role templates and policies, and records all of it.
	templates := e.must(200, "GET", "/api/v1/role-templates", token, nil)
	if n := len(templates.Body["items"].([]any)); n < 2 {
		t.Fatalf("bootstrap seeded %d role templates, want at least 2", n)
	}
	if v := e.must(200, "GET", "/api/v1/audit/verify", token, nil); v.Body["ok"] != true {
		t.Fatalf("ledger after bootstrap: %s", v.Raw)
	}
}

func TestAPIKeysAndRoles(t *testing.T) {
	e := newEnv(t)
	operator := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "ops", "role": "operator"}).str("token")
	auditorResp := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "audit", "role": "auditor"})
	auditor := auditorResp.str("token")

	tests := []struct {
		name   string
		method string
		path   string
		token  string
		body   any
		status int
	}{
		{"no credential is 401", "GET", "/api/v1/organization", "", nil, 401},
		{"a malformed key is 401", "GET", "/api/v1/organization", "knk_nope", nil, 401},
		{"a well-formed unknown key is 401", "GET", "/api/v1/organization", "knk_aaaaaaaaaaaaaaaa_" + strings.Repeat("A", 43), nil, 401},
		{"auditor reads", "GET", "/api/v1/role-templates", auditor, nil, 200},
		{"auditor reads the ledger", "GET", "/api/v1/audit", auditor, nil, 200},
		{"auditor cannot write role templates", "POST", "/api/v1/role-templates", auditor, map[string]any{"name": "x"}, 403},
		{"auditor cannot register agents", "POST", "/api/v1/agents", auditor, map[string]any{}, 403},
		{"auditor cannot create keys", "POST", "/api/v1/api-keys", auditor, map[string]any{"name": "x", "role": "admin"}, 403},
		{"operator writes role templates", "POST", "/api/v1/role-templates", operator, map[string]any{"name": "by-operator"}, 201},
		{"operator cannot create keys", "POST", "/api/v1/api-keys", operator, map[string]any{"name": "x", "role": "admin"}, 403},
		{"operator cannot read the ledger", "GET", "/api/v1/audit", operator, nil, 403},
		{"unknown role is refused", "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "x", "role": "root"}, 422},
		{"missing name is refused", "POST", "/api/v1/api-keys", e.admin, map[string]any{"role": "admin"}, 422},
		{"wrong type is refused", "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": 7, "role": "admin"}, 422},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.do(tc.method, tc.path, tc.token, tc.body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Raw)
			}
			if tc.status >= 400 {
				e.problem(r, tc.status, "", "")
			}
		})
	}
	e.t = t

	list := e.must(200, "GET", "/api/v1/api-keys", e.admin, nil)
	if strings.Contains(string(list.Raw), "token") || strings.Contains(string(list.Raw), auditor) {
		t.Fatalf("key listing shows secrets: %s", list.Raw)
	}
	e.must(200, "DELETE", "/api/v1/api-keys/"+auditorResp.str("id"), e.admin, nil)
	e.problem(e.do("GET", "/api/v1/role-templates", auditor, nil), 401, "", "")
	e.problem(e.do("DELETE", "/api/v1/api-keys/"+auditorResp.str("id"), e.admin, nil), 404, "", "")
}

func TestOversizedBodiesAreRefused(t *testing.T) {
	e := newEnv(t)
	big := fmt.Sprintf(`{"name":"x","description":%q}`, strings.Repeat("a", 70<<10))
	e.problem(e.do("POST", "/api/v1/role-templates", e.admin, big), 413, "", "")
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	tmpl := e.templateID("deployer")
	agent := e.registerAgent("deploy-bot", tmpl, "production").str("id")
	_, other := e.newOrg("globex")

	for _, path := range []string{
		"/api/v1/role-templates/" + tmpl,
		"/api/v1/agents/" + agent,
		"/api/v1/agents/" + agent + "/keys",
	} {
		e.problem(e.do("GET", path, other, nil), 404, "", "")
	}
	e.problem(e.do("POST", "/api/v1/agents/"+agent+"/ans/status", other, map[string]any{"status": "REVOKED", "reason": "x"}), 404, "", "")
	e.problem(e.do("DELETE", "/api/v1/role-templates/"+tmpl, other, nil), 404, "", "")
	// Registering into another organization's role template fails as if it did not exist.
	r := e.do("POST", "/api/v1/agents", other, map[string]any{"name": "spy", "roleTemplateId": tmpl, "environment": "production"})
	e.problem(r, 422, "body.roleTemplateId", "no such role template")

	items := e.must(200, "GET", "/api/v1/agents", other, nil).Body["items"].([]any)
	if len(items) != 0 {
		t.Fatalf("other organization sees %d agents", len(items))
	}
	events := e.must(200, "GET", "/api/v1/audit?subjectId="+agent, other, nil).Body["items"].([]any)
	if len(events) != 0 {
		t.Fatalf("other organization sees %d ledger events of our agent", len(events))
	}
}

func TestRoleTemplates(t *testing.T) {
	e := newEnv(t)
	id := e.templateID("reviewer")
	tests := []struct {
		name     string
		method   string
		path     string
		body     any
		status   int
		location string
		msg      string
	}{
		{"duplicate name conflicts", "POST", "/api/v1/role-templates", map[string]any{"name": "reviewer"}, 409, "", ""},
		{"missing name", "POST", "/api/v1/role-templates", map[string]any{"description": "x"}, 422, "body", "name"},
		{"uppercase name", "POST", "/api/v1/role-templates", map[string]any{"name": "Reviewer"}, 422, "body.name", "pattern"},
		{"name of wrong type", "POST", "/api/v1/role-templates", map[string]any{"name": true}, 422, "body.name", "string"},
		{"unknown id", "GET", "/api/v1/role-templates/0f8fad5b-d9cb-469f-a165-70867728950e", nil, 404, "", ""},
		{"malformed id", "GET", "/api/v1/role-templates/not-a-uuid", nil, 422, "path.id", ""},
		{"rename", "PUT", "/api/v1/role-templates/" + id, map[string]any{"name": "senior-reviewer", "description": "reviews"}, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.do(tc.method, tc.path, e.admin, tc.body)
			if tc.status < 400 {
				if r.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Raw)
				}
				return
			}
			e.problem(r, tc.status, tc.location, tc.msg)
		})
	}
	e.t = t
	if got := e.must(200, "GET", "/api/v1/role-templates/"+id, e.admin, nil).str("name"); got != "senior-reviewer" {
		t.Fatalf("renamed template is %q", got)
	}
	e.registerAgent("bot", id, "staging")
	e.problem(e.do("DELETE", "/api/v1/role-templates/"+id, e.admin, nil), 409, "", "")
	unused := e.templateID("unused")
	e.must(204, "DELETE", "/api/v1/role-templates/"+unused, e.admin, nil)
	e.problem(e.do("GET", "/api/v1/role-templates/"+unused, e.admin, nil), 404, "", "")
}

// decode re-decodes a response body into v.
func decode(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Raw, v); err != nil {
		t.Fatalf("decode %s: %v", r.Raw, err)
	}
}

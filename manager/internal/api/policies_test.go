package api_test

import (
	"strings"
	"testing"
)

func TestPolicies(t *testing.T) {
	e := newEnv(t)
	tmpl := e.templateID("deployer")
	good := func(m map[string]any) map[string]any {
		return patched(map[string]any{
			"roleTemplateId": tmpl, "environment": "production", "minTrustLevel": "L4", "minLoa": 3,
			"requiredScopes":   []string{"mcp:invoke"},
			"allowedEndpoints": []string{"tools/list", "tools/call:deploy_*", "resources/read:file:///runbooks/*"},
			"constraints":      map[string]any{"maxBodyBytes": 65536, "timeWindows": []any{map[string]any{"days": []string{"mon", "tue"}, "start": "08:00", "end": "18:00"}}},
		}, m)
	}
	created := e.must(201, "POST", "/api/v1/policies", e.admin, good(nil))
	id := created.str("id")
	if created.str("minTrustLevel") != "L4" || created.str("roleTemplate") != "deployer" {
		t.Fatalf("created: %s", created.Raw)
	}

	bad := []struct {
		name     string
		body     map[string]any
		status   int
		location string
		msg      string
	}{
		{"duplicate role and environment", good(nil), 409, "", ""},
		{"unknown trust level", good(map[string]any{"environment": "staging", "minTrustLevel": "L9"}), 422, "body.minTrustLevel", "L5"},
		{"trust level of wrong type", good(map[string]any{"environment": "staging", "minTrustLevel": 3}), 422, "body.minTrustLevel", "string"},
		{"LoA out of range", good(map[string]any{"environment": "staging", "minLoa": 5}), 422, "body.minLoa", "<= 4"},
		{"no endpoints", good(map[string]any{"environment": "staging", "allowedEndpoints": []string{}}), 422, "body.allowedEndpoints", ""},
		{"a name on a method that has none", good(map[string]any{"environment": "staging", "allowedEndpoints": []string{"tools/list:x"}}), 422, "body.allowedEndpoints[0]", ""},
		{"duplicate endpoint", good(map[string]any{"environment": "staging", "allowedEndpoints": []string{"ping", "ping"}}), 422, "body.allowedEndpoints[1]", "duplicate"},
		{"scope with a space", good(map[string]any{"environment": "staging", "requiredScopes": []string{"a b"}}), 422, "body.requiredScopes[0]", ""},
		{"time window backwards", good(map[string]any{"environment": "staging", "constraints": map[string]any{"timeWindows": []any{map[string]any{"start": "18:00", "end": "08:00"}}}}), 422, "body.constraints.timeWindows[0].end", "later than start"},
		{"unknown day", good(map[string]any{"environment": "staging", "constraints": map[string]any{"timeWindows": []any{map[string]any{"days": []string{"funday"}, "start": "08:00", "end": "09:00"}}}}), 422, "body.constraints.timeWindows[0].days[0]", ""},
		{"unknown constraint", good(map[string]any{"environment": "staging", "constraints": map[string]any{"maxCalls": 3}}), 422, "body.constraints.maxCalls", "unexpected property"},
		{"unknown role template", good(map[string]any{"environment": "staging", "roleTemplateId": "0f8fad5b-d9cb-469f-a165-70867728950e"}), 422, "body.roleTemplateId", "no such"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.problem(e.do("POST", "/api/v1/policies", e.admin, tc.body), tc.status, tc.location, tc.msg)
		})
	}
	e.t = t

	replaced := e.must(200, "PUT", "/api/v1/policies/"+id, e.admin, good(map[string]any{"minTrustLevel": "L5", "constraints": nil}))
	if replaced.str("minTrustLevel") != "L5" || replaced.str("createdAt") != created.str("createdAt") {
		t.Fatalf("replaced: %s", replaced.Raw)
	}
	list := e.must(200, "GET", "/api/v1/policies?environment=production&roleTemplateId="+tmpl, e.admin, nil).Body["items"].([]any)
	if len(list) != 1 {
		t.Fatalf("%d policies", len(list))
	}
	e.must(204, "DELETE", "/api/v1/policies/"+id, e.admin, nil)
	e.problem(e.do("GET", "/api/v1/policies/"+id, e.admin, nil), 404, "", "")

	var types []string
	for _, ev := range e.must(200, "GET", "/api/v1/audit?subjectId="+id, e.admin, nil).Body["items"].([]any) {
		types = append(types, ev.(map[string]any)["type"].(string))
	}
	if got := strings.Join(types, ","); got != "POLICY_DELETED,POLICY_UPDATED,POLICY_CREATED" {
		t.Fatalf("policy events %s", got)
	}
}

func TestBootstrapSeedsBaselinePolicies(t *testing.T) {
	e := newEnv(t)
	items := e.must(200, "GET", "/api/v1/policies", e.admin, nil).Body["items"].([]any)
	if len(items) != 9 {
		t.Fatalf("%d seeded policies, want 3 role templates x 3 environments", len(items))
	}
	for _, it := range items {
		p := it.(map[string]any)
		if p["roleTemplate"] == "privileged" && p["environment"] == "production" && p["minTrustLevel"] != "L4" {
			t.Fatalf("privileged production policy: %v", p)
		}
	}
}

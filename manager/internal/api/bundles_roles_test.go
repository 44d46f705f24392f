package api_test

import "testing"

func TestBundleWritesNeedOperate(t *testing.T) {
	e := newEnv(t)
	auditor := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "a", "role": "auditor"}).str("token")
	for _, path := range []string{"compile", "publish", "activate", "revoke"} {
		e.problem(e.do("POST", "/api/v1/enforcement/bundles/"+path, auditor, map[string]any{}), 403, "", "")
	}
	e.must(200, "GET", "/api/v1/enforcement/bundles", auditor, nil)
}

// TestCompileMilestone3BodyWithoutEnvironment keeps the Milestone 3 body
// working: the environment follows from the policies it names.
func TestCompileMilestone3BodyWithoutEnvironment(t *testing.T) {
	e := newEnv(t)
	var prod, staging []string
	for _, it := range e.must(200, "GET", "/api/v1/policies", e.admin, nil).Body["items"].([]any) {
		p := it.(map[string]any)
		switch p["environment"] {
		case "production":
			prod = append(prod, p["id"].(string))
		case "staging":
			staging = append(staging, p["id"].(string))
		}
	}
	r := e.must(201, "POST", "/api/v1/enforcement/bundles/compile", e.admin, map[string]any{
		"organizationId": e.org.ID, "version": "1.2.0", "artifacts": []string{"artifact-1"}, "policies": prod, "controls": []string{"control-1"},
	})
	if r.str("environment") != "production" || r.str("status") != "DRAFT" {
		t.Fatalf("compiled: %s", r.Raw)
	}
	e.problem(e.do("POST", "/api/v1/enforcement/bundles/compile", e.admin, map[string]any{
		"organizationId": e.org.ID, "version": "1.3.0", "policies": []string{prod[0], staging[0]},
	}), 422, "body.policies[1]", "staging policy")
	e.problem(e.do("POST", "/api/v1/enforcement/bundles/compile", e.admin, map[string]any{
		"organizationId": e.org.ID, "version": "1.4.0",
	}), 422, "body.environment", "required when no policies")
}

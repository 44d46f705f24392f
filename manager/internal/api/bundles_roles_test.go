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

package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/knaight/knaight/manager/internal/api"
)

// TestEveryBodyEndpointRefusesOversizedAndMalformedBodies walks the OpenAPI
// document, so an endpoint added later is covered without touching this test.
func TestEveryBodyEndpointRefusesOversizedAndMalformedBodies(t *testing.T) {
	e := newEnv(t)
	doc := e.must(200, "GET", "/api/v1/openapi.json", "", nil)
	agent := e.registerAgent("bot", e.templateID("r"), "staging").str("id")
	_, credential := e.registerGateway("edge", "production")
	checked := 0
	for path, item := range doc.Body["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			if _, ok := op.(map[string]any)["requestBody"]; !ok {
				continue
			}
			url := strings.ReplaceAll(path, "{id}", agent)
			method = strings.ToUpper(method)
			// Gateway operations take a gateway credential, and larger bodies.
			token, limit := e.admin, api.DefaultMaxBodyBytes
			if strings.Contains(fmt.Sprint(op.(map[string]any)["security"]), "gatewayCredential") {
				token, limit = credential, api.MaxDecisionsBodyBytes
			}
			big := fmt.Sprintf(`{"name":%q}`, strings.Repeat("a", limit+1))
			t.Run(method+" "+path, func(t *testing.T) {
				e.t = t
				e.problem(e.do(method, url, token, big), 413, "", "")
				if !strings.HasSuffix(path, "/webhook") {
					e.problem(e.do(method, url, token, `{"name": `), 400, "", "")
				}
			})
			checked++
		}
	}
	e.t = t
	if checked < 12 {
		t.Fatalf("only %d operations with bodies found", checked)
	}
}

func TestReadEndpoints(t *testing.T) {
	e := newEnv(t)
	if r := e.must(200, "GET", "/api/v1/organization", e.admin, nil); r.str("slug") != "acme" || r.str("ansDomain") != "acme.agents.example" {
		t.Fatalf("organization: %s", r.Raw)
	}
	kinds := e.must(200, "GET", "/api/v1/trust/kinds", e.admin, nil)
	if kinds.str("modelVersion") != "knaight-trust-v1" || len(kinds.Body["items"].([]any)) < 10 {
		t.Fatalf("kinds: %s", kinds.Raw)
	}
	e.must(201, "POST", "/api/v1/trust/sources", e.admin, map[string]any{"name": "github", "kinds": []string{"github.org_verified"}})
	sources := e.must(200, "GET", "/api/v1/trust/sources", e.admin, nil)
	if items := sources.Body["items"].([]any); len(items) != 1 || strings.Contains(string(sources.Raw), "secret") {
		t.Fatalf("sources: %s", sources.Raw)
	}
	e.problem(e.do("POST", "/api/v1/trust/sources", e.admin, map[string]any{"name": "github", "kinds": []string{"github.org_verified"}}), 409, "", "")
	e.problem(e.do("POST", "/api/v1/trust/sources", e.admin, map[string]any{"name": "x", "kinds": []string{}}), 422, "body.kinds", "")
}

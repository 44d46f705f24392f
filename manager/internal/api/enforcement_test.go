package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const audience = "https://mcp.example.com/mcp"

// withAudience gives the organization a token audience, as an admin would.
func (e *env) withAudience(alg string) {
	e.t.Helper()
	e.must(200, "PUT", "/api/v1/enforcement/token-settings", e.admin, map[string]any{
		"algorithm": alg, "defaultTtlSeconds": 900, "maxTtlSeconds": 3600, "audiences": []string{audience, "https://other.example.com/mcp"},
	})
}

// issue issues a token for agent and returns the response.
func (e *env) issue(agent string, extra map[string]any) response {
	e.t.Helper()
	return e.must(201, "POST", "/api/v1/enforcement/tokens/issue", e.admin, patched(map[string]any{
		"organizationId": e.org.ID, "agentId": agent, "loaLevel": 3, "scope": []string{"mcp:read", "mcp:invoke"},
		"artifactId": "artifact-1", "artifactType": "MCP_POLICY", "issuerId": "issuer-456"}, extra))
}

func (e *env) introspect(token string) response {
	e.t.Helper()
	return e.must(200, "POST", "/api/v1/enforcement/tokens/introspect", e.admin, map[string]any{"token": token})
}

func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	part, _, _ := strings.Cut(token, ".")
	raw, err := decodeSegment(part)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestIssueIntrospectRevoke(t *testing.T) {
	e := newEnv(t)
	e.withAudience("EdDSA")
	reg := e.registerAgent("deploy-bot", e.templateID("r"), "production")
	agent := reg.str("id")

	issued := e.issue(agent, nil)
	token := issued.str("token")
	if h := jwtHeader(t, token); h["alg"] != "EdDSA" || h["typ"] != "at+jwt" || !strings.HasPrefix(h["kid"].(string), "ed_") {
		t.Fatalf("header %v", h)
	}
	if issued.get("expiresIn").(float64) != 900 || issued.str("audience") != audience {
		t.Fatalf("issued: %s", issued.Raw)
	}
	in := e.introspect(token)
	want := map[string]any{
		"active": true, "sub": reg.str("ans.name"), "ans": reg.str("ans.name"), "agent_id": agent, "org": e.org.ID.String(),
		"scope": "mcp:read mcp:invoke", "loa": 3.0, "iss": e.api.Issuer, "jti": issued.str("tokenId"), "token_type": "Bearer",
	}
	for k, v := range want {
		if in.Body[k] != v {
			t.Errorf("introspection %s = %v, want %v", k, in.Body[k], v)
		}
	}
	if aud := in.Body["aud"].([]any); len(aud) != 1 || aud[0] != audience {
		t.Errorf("aud %v", aud)
	}
	if a := in.Body["artifact"].(map[string]any); a["id"] != "artifact-1" || a["type"] != "MCP_POLICY" {
		t.Errorf("artifact %v", a)
	}
	if exp, iat := in.Body["exp"].(float64), in.Body["iat"].(float64); exp-iat != 900 {
		t.Errorf("lifetime %v", exp-iat)
	}

	// The record is kept, the token is not.
	rec := e.must(200, "GET", "/api/v1/enforcement/tokens/"+issued.str("tokenId"), e.admin, nil)
	if strings.Contains(string(rec.Raw), token) || rec.str("issuerId") != "issuer-456" {
		t.Fatalf("record: %s", rec.Raw)
	}
	var stored int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM gateway_tokens t, ledger_events l WHERE strpos(l.details, $1) > 0`, token).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("token found in the ledger (%d, %v)", stored, err)
	}

	e.must(200, "POST", "/api/v1/enforcement/tokens/revoke", e.admin, map[string]any{"tokenId": issued.str("tokenId"), "organizationId": e.org.ID, "reason": "test"})
	if got := strings.TrimSpace(string(e.introspect(token).Raw)); got != `{"active":false}` {
		t.Fatalf("after revoke the introspection says more than {\"active\":false}: %s", got)
	}
	// Revoking again succeeds and changes nothing.
	e.must(200, "POST", "/api/v1/enforcement/tokens/revoke", e.admin, map[string]any{"tokenId": issued.str("tokenId"), "organizationId": e.org.ID})

	// Another organization sees neither the token nor its record.
	other, otherAdmin := e.newOrg("globex")
	if r := e.must(200, "POST", "/api/v1/enforcement/tokens/introspect", otherAdmin, map[string]any{"token": e.issue(agent, nil).str("token")}); r.Body["active"] != false {
		t.Fatalf("foreign organization introspects our token: %s", r.Raw)
	}
	e.problem(e.do("GET", "/api/v1/enforcement/tokens/"+issued.str("tokenId"), otherAdmin, nil), 404, "", "")
	e.problem(e.do("POST", "/api/v1/enforcement/tokens/revoke", otherAdmin, map[string]any{"tokenId": issued.str("tokenId"), "organizationId": other.ID}), 404, "", "")
}

func TestIssueTokenBadInput(t *testing.T) {
	e := newEnv(t)
	tmpl := e.templateID("r")
	agent := e.registerAgent("bot", tmpl, "staging").str("id")
	pending := e.must(201, "POST", "/api/v1/agents", e.admin, map[string]any{"name": "pending", "roleTemplateId": tmpl, "environment": "staging"}).str("id")

	// Without audiences the organization cannot issue tokens that name none.
	e.problem(e.do("POST", "/api/v1/enforcement/tokens/issue", e.admin, map[string]any{"organizationId": e.org.ID, "agentId": agent, "loaLevel": 2, "scope": []string{}}),
		422, "body.audience", "no default audience")
	e.withAudience("EdDSA")

	base := func(m map[string]any) map[string]any {
		return patched(map[string]any{"organizationId": e.org.ID.String(), "agentId": agent, "loaLevel": 2, "scope": []string{"mcp:read"}}, m)
	}
	tests := []struct {
		name     string
		body     map[string]any
		status   int
		location string
		msg      string
	}{
		{"missing agent", base(map[string]any{"agentId": nil}), 422, "body", "agentId"},
		{"unknown agent", base(map[string]any{"agentId": "0f8fad5b-d9cb-469f-a165-70867728950e"}), 422, "body.agentId", "no such agent"},
		{"pending agent", base(map[string]any{"agentId": pending}), 409, "", ""},
		{"LoA zero", base(map[string]any{"loaLevel": 0}), 422, "body.loaLevel", ">= 1"},
		{"LoA five", base(map[string]any{"loaLevel": 5}), 422, "body.loaLevel", "<= 4"},
		{"LoA of wrong type", base(map[string]any{"loaLevel": "high"}), 422, "body.loaLevel", "integer"},
		{"scope with a space", base(map[string]any{"scope": []string{"mcp read"}}), 422, "body.scope[0]", "scope"},
		{"duplicate scope", base(map[string]any{"scope": []string{"a", "a"}}), 422, "body.scope[1]", "duplicate"},
		{"another organization", base(map[string]any{"organizationId": "0f8fad5b-d9cb-469f-a165-70867728950e"}), 422, "body.organizationId", "not the organization"},
		{"audience not configured", base(map[string]any{"audience": "https://evil.example.com/"}), 422, "body.audience", "not one of"},
		{"lifetime over the maximum", base(map[string]any{"ttlSeconds": 7200}), 422, "body.ttlSeconds", "maximum"},
		{"lifetime too short", base(map[string]any{"ttlSeconds": 10}), 422, "body.ttlSeconds", ">= 60"},
		{"unknown field", base(map[string]any{"admin": true}), 422, "body.admin", "unexpected property"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.problem(e.do("POST", "/api/v1/enforcement/tokens/issue", e.admin, tc.body), tc.status, tc.location, tc.msg)
		})
	}
	e.t = t
	e.problem(e.do("POST", "/api/v1/enforcement/tokens/revoke", e.admin, map[string]any{"tokenId": "0f8fad5b-d9cb-469f-a165-70867728950e", "organizationId": e.org.ID}), 404, "", "")
	e.problem(e.do("POST", "/api/v1/enforcement/tokens/revoke", e.admin, map[string]any{"tokenId": "nope", "organizationId": e.org.ID}), 422, "body.tokenId", "")
	e.problem(e.do("POST", "/api/v1/enforcement/tokens/introspect", e.admin, map[string]any{}), 422, "body", "token")
	e.problem(e.do("PUT", "/api/v1/enforcement/token-settings", e.admin, map[string]any{"algorithm": "RS256", "defaultTtlSeconds": 900, "maxTtlSeconds": 600, "audiences": []string{"not a uri", audience + "#frag"}}),
		422, "body.algorithm", "")
	r := e.do("PUT", "/api/v1/enforcement/token-settings", e.admin, map[string]any{"algorithm": "EdDSA", "defaultTtlSeconds": 900, "maxTtlSeconds": 600, "audiences": []string{"not a uri", audience + "#frag"}})
	e.problem(r, 422, "body.defaultTtlSeconds", "maxTtlSeconds")
	e.problem(r, 422, "body.audiences[0]", "absolute URI")
	e.problem(r, 422, "body.audiences[1]", "fragment")
	operator := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "o", "role": "operator"}).str("token")
	e.problem(e.do("POST", "/api/v1/enforcement/signing-keys/rotate", operator, nil), 403, "", "")
}

func TestSigningKeyRotationKeepsOldTokensVerifiableUntilExpiry(t *testing.T) {
	e := newEnv(t)
	e.withAudience("EdDSA")
	agent := e.registerAgent("bot", e.templateID("r"), "staging").str("id")
	first := e.issue(agent, map[string]any{"ttlSeconds": 600}).str("token")
	oldKID := jwtHeader(t, first)["kid"].(string)

	rotated := e.must(201, "POST", "/api/v1/enforcement/signing-keys/rotate", e.admin, nil)
	newKID := rotated.str("kid")
	second := e.issue(agent, map[string]any{"ttlSeconds": 1200}).str("token")
	if jwtHeader(t, second)["kid"] != newKID || newKID == oldKID {
		t.Fatalf("new tokens are not signed with the new key")
	}
	jwks := func() map[string]bool {
		out := map[string]bool{}
		for _, k := range e.must(200, "GET", "/.well-known/jwks.json", "", nil).Body["keys"].([]any) {
			out[k.(map[string]any)["kid"].(string)] = true
		}
		return out
	}
	if k := jwks(); !k[oldKID] || !k[newKID] {
		t.Fatalf("JWKS during overlap: %v", k)
	}
	if e.introspect(first).Body["active"] != true || e.introspect(second).Body["active"] != true {
		t.Fatal("tokens of the retired and the new key must both verify")
	}
	e.clock.Advance(601 * time.Second)
	if k := jwks(); k[oldKID] || !k[newKID] {
		t.Fatalf("JWKS after the last old token expired: %v", k)
	}
	if e.introspect(first).Body["active"] != false || e.introspect(second).Body["active"] != true {
		t.Fatal("after expiry only the new token is active")
	}
	keys := e.must(200, "GET", "/api/v1/enforcement/signing-keys", e.admin, nil).Body["items"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["kid"] != newKID {
		t.Fatalf("signing keys listed: %v", keys)
	}
}

func TestHS256Organization(t *testing.T) {
	e := newEnv(t)
	e.withAudience("HS256")
	agent := e.registerAgent("bot", e.templateID("r"), "staging").str("id")
	token := e.issue(agent, nil).str("token")
	h := jwtHeader(t, token)
	if h["alg"] != "HS256" || !strings.HasPrefix(h["kid"].(string), "hs_") {
		t.Fatalf("header %v", h)
	}
	if e.introspect(token).Body["active"] != true {
		t.Fatal("HS256 token inactive")
	}
	for _, k := range e.must(200, "GET", "/.well-known/jwks.json", "", nil).Body["keys"].([]any) {
		if k.(map[string]any)["kid"] == h["kid"] {
			t.Fatal("an HS256 secret is published in the JWKS")
		}
	}
}

func TestRevocationFollowsTheAgent(t *testing.T) {
	e := newEnv(t)
	e.withAudience("EdDSA")
	assistant := ""
	for _, it := range e.must(200, "GET", "/api/v1/role-templates", e.admin, nil).Body["items"].([]any) {
		if m := it.(map[string]any); m["name"] == "assistant" {
			assistant = m["id"].(string)
		}
	}

	t.Run("suspending the ANS registration deactivates its tokens", func(t *testing.T) {
		e.t = t
		agent := e.registerAgent("suspended-bot", assistant, "staging").str("id")
		a, b := e.issue(agent, nil).str("token"), e.issue(agent, nil).str("token")
		e.must(200, "POST", "/api/v1/agents/"+agent+"/ans/status", e.admin, map[string]any{"status": "SUSPENDED", "reason": "incident"})
		for _, tok := range []string{a, b} {
			if e.introspect(tok).Body["active"] != false {
				t.Fatal("token of a suspended agent is active")
			}
		}
		ev := e.must(200, "GET", "/api/v1/audit?type=TOKENS_REVOKED&subjectId="+agent, e.admin, nil).Body["items"].([]any)
		if len(ev) != 1 || ev[0].(map[string]any)["details"].(map[string]any)["cause"] != "ans_status:SUSPENDED" {
			t.Fatalf("revocation events %v", ev)
		}
		// Reactivated, it needs new tokens: the old ones stay revoked.
		e.must(200, "POST", "/api/v1/agents/"+agent+"/ans/status", e.admin, map[string]any{"status": "ACTIVE", "reason": "resolved"})
		if e.introspect(a).Body["active"] != false {
			t.Fatal("reactivation revived a revoked token")
		}
	})

	t.Run("trust falling below the policy revokes its tokens", func(t *testing.T) {
		e.t = t
		// The assistant's production policy requires L3.
		agent := e.registerAgent("trusted-bot", assistant, "production").str("id")
		for _, k := range []string{"identity.admin_attestation", "identity.dns_verified", "github.org_verified"} {
			e.signal(agent, k, 1, nil)
		}
		expires := e.clock.Now().Add(30 * time.Minute)
		e.signal(agent, "scorecard.score", 8, &expires)
		tok := e.issue(agent, map[string]any{"ttlSeconds": 3600}).str("token")
		if e.introspect(tok).Body["active"] != true {
			t.Fatal("token inactive at L3")
		}
		e.clock.Advance(30*time.Minute + time.Second)
		if err := e.api.SweepOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		if e.introspect(tok).Body["active"] != false {
			t.Fatal("token still active after trust fell to L2 below the policy's L3")
		}
		ev := e.must(200, "GET", "/api/v1/audit?type=TOKENS_REVOKED&subjectId="+agent, e.admin, nil).Body["items"].([]any)
		if len(ev) != 1 || ev[0].(map[string]any)["details"].(map[string]any)["cause"] != "trust_below_policy:L2<L3" {
			t.Fatalf("revocation events %v", ev)
		}
		// A token issued while below the policy is not revoked by staying below.
		below := e.issue(agent, nil).str("token")
		if err := e.api.SweepOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		if e.introspect(below).Body["active"] != true {
			t.Fatal("a token issued below the policy was revoked without a drop")
		}
	})
}

package api_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/sign"
)

// signed builds the signature headers an agent sends, in either form.
func signed(t *testing.T, secret, agent, method, target string, body []byte, ts time.Time, alias bool) map[string]string {
	t.Helper()
	key, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	stamp := ts.UTC().Format(time.RFC3339)
	sig, err := sign.Sign(key, sign.Request{Method: method, Target: target, BodySHA256: sign.BodyDigest(body), Agent: agent, Timestamp: stamp})
	if err != nil {
		t.Fatal(err)
	}
	if alias {
		return map[string]string{"X-SCK-ANS-ID": agent, "X-SCK-Timestamp": stamp, "X-SCK-Signature": sig}
	}
	return map[string]string{"X-Knaight-Agent": agent, "X-Knaight-Timestamp": stamp, "X-Knaight-Signature": sig}
}

// direct posts body to /enforcement/verify with extra headers.
func (e *env) direct(headers map[string]string, body []byte) response {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(e.t.Context(), "POST", e.srv.URL+"/api/v1/enforcement/verify", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.admin)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	decodeInto(e.t, raw, &r.Body)
	return r
}

func TestVerifySignedRequests(t *testing.T) {
	e := newEnv(t)
	tmpl := e.templateID("r")
	reg := e.registerAgent("service", tmpl, "production")
	ans, secret := reg.str("ans.name"), reg.str("hmacKey.secret")
	other := e.registerAgent("other", tmpl, "production")
	now := e.clock.Now()
	body := []byte(`{"action": "invoke"}`)
	const path = "/api/v1/enforcement/verify"

	t.Run("the Milestone 3 form: X-SCK headers on the call itself", func(t *testing.T) {
		e.t = t
		h := signed(t, secret, ans, "POST", path, body, now, true)
		h["X-SCK-Organization"] = "acme"
		r := e.direct(h, body)
		if r.Status != 200 || r.Body["valid"] != true || r.str("reason") != "ok" || r.Body["aliasHeaders"] != true || r.str("kid") != reg.str("hmacKey.kid") {
			t.Fatalf("verify: %d %s", r.Status, r.Raw)
		}
		if r = e.direct(h, body); r.Body["valid"] != false || r.str("reason") != "replayed" {
			t.Fatalf("replay: %s", r.Raw)
		}
	})

	described := func(h map[string]string, m map[string]any) map[string]any {
		return patched(map[string]any{"method": "POST", "target": "/mcp?session=1", "body": string(body), "headers": h}, m)
	}
	good := func() map[string]string { return signed(t, secret, ans, "POST", "/mcp?session=1", body, now, false) }
	otherKey := signed(t, other.str("hmacKey.secret"), ans, "POST", "/mcp?session=1", body, now, false)
	stale := signed(t, secret, ans, "POST", "/mcp?session=1", body, now.Add(-6*time.Minute), false)
	future := signed(t, secret, ans, "POST", "/mcp?session=1", body, now.Add(6*time.Minute), false)
	withKid := good()
	withKid["X-Knaight-Key-Id"] = "hk_notthisagents"
	wrongOrg := good()
	wrongOrg["X-Knaight-Organization"] = "globex"
	conflicting := good()
	conflicting["X-SCK-ANS-ID"] = "ans://v1.0.0.someone.else.example"
	unknown := signed(t, secret, "ans://v1.0.0.ghost.acme.agents.example", "POST", "/mcp?session=1", body, now, false)

	tests := []struct {
		name   string
		call   map[string]any
		valid  bool
		reason string
	}{
		{"a good described request is valid", described(good(), nil), true, "ok"},
		{"a body given as its digest is valid", described(signed(t, secret, ans, "POST", "/mcp?session=1", body, now.Add(time.Second), false), map[string]any{"body": nil, "bodySha256": sha256hex(body)}), true, "ok"},
		{"another body is refused", described(good(), map[string]any{"body": `{"action": "delete"}`}), false, "signature_invalid"},
		{"another method is refused", described(good(), map[string]any{"method": "PUT"}), false, "signature_invalid"},
		{"another target is refused", described(good(), map[string]any{"target": "/mcp?session=2"}), false, "signature_invalid"},
		{"another agent's key is refused: identity is pinned", described(otherKey, nil), false, "signature_invalid"},
		{"a key id the agent does not hold is refused", described(withKid, nil), false, "key_unknown"},
		{"a stale timestamp is refused", described(stale, nil), false, "timestamp_stale"},
		{"a future timestamp is refused", described(future, nil), false, "timestamp_future"},
		{"an unknown agent is refused", described(unknown, nil), false, "agent_unknown"},
		{"another organization is refused", described(wrongOrg, nil), false, "organization_mismatch"},
		{"conflicting alias headers are refused", described(conflicting, nil), false, "signature_malformed"},
		{"missing signature is refused", described(map[string]string{"X-Knaight-Agent": ans}, nil), false, "signature_missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.must(200, "POST", path, e.admin, tc.call)
			if r.Body["valid"] != tc.valid || r.str("reason") != tc.reason {
				t.Fatalf("got valid=%v reason=%s, want %v %s: %s", r.Body["valid"], r.str("reason"), tc.valid, tc.reason, r.Raw)
			}
		})
	}
	e.t = t

	// A suspended agent's signatures no longer verify.
	e.must(200, "POST", "/api/v1/agents/"+reg.str("id")+"/ans/status", e.admin, map[string]any{"status": "SUSPENDED", "reason": "x"})
	r := e.must(200, "POST", path, e.admin, described(signed(t, secret, ans, "POST", "/mcp?session=1", body, now.Add(2*time.Second), false), nil))
	if r.str("reason") != "agent_not_active" {
		t.Fatalf("suspended: %s", r.Raw)
	}

	// Bad descriptions are refused with the field named.
	e.problem(e.do("POST", path, e.admin, described(good(), map[string]any{"method": nil, "target": "mcp"})), 422, "body.method", "required")
	e.problem(e.do("POST", path, e.admin, described(good(), map[string]any{"target": "mcp"})), 422, "body.target", "starting with /")
	e.problem(e.do("POST", path, e.admin, described(good(), map[string]any{"bodySha256": "abc"})), 422, "body.bodySha256", "hexadecimal")
	e.problem(e.do("POST", path, e.admin, described(nil, nil)), 422, "body.headers", "required")
	e.problem(e.do("POST", path, e.admin, `{"method": "POST", "extra": 1}`), 422, "body", "unknown field")

	// Every decision is in the ledger.
	allowed := e.must(200, "GET", "/api/v1/audit?type=ENFORCEMENT_CALL_ALLOWED", e.admin, nil).Body["items"].([]any)
	denied := e.must(200, "GET", "/api/v1/audit?type=ENFORCEMENT_CALL_DENIED", e.admin, nil).Body["items"].([]any)
	if len(allowed) != 3 || len(denied) != 13 {
		t.Fatalf("%d allowed and %d denied enforcement calls recorded, want 3 and 13", len(allowed), len(denied))
	}
}

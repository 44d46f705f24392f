package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/knaight/knaight/shared/policy"
)

const bundlesPath = "/api/v1/enforcement/bundles"

func (e *env) compileBundle(version, environment string, extra map[string]any) response {
	e.t.Helper()
	return e.must(201, "POST", bundlesPath+"/compile", e.admin, patched(map[string]any{"organizationId": e.org.ID, "version": version, "environment": environment,
		"artifacts": []string{"artifact-1"}, "controls": []string{"SOC2-CC6.1"}}, extra))
}

func (e *env) bundleStatus(id string) string {
	e.t.Helper()
	return e.must(200, "GET", bundlesPath+"/"+id, e.admin, nil).str("status")
}

// readBundle reads a tarball with OPA's reader, verifying its signature
// with the organization's published bundle signing key.
func (e *env) readBundle(tarball []byte) (bundle.Bundle, error) {
	e.t.Helper()
	key := e.must(200, "GET", bundlesPath+"/signing-key", e.admin, nil)
	kid := key.str("keyId")
	vc := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{kid: {Key: key.str("publicKey"), Algorithm: key.str("algorithm")}}, kid, "", nil)
	return bundle.NewCustomReader(bundle.NewTarballLoader(bytes.NewReader(tarball))).WithBundleVerificationConfig(vc).Read()
}

// rewrite returns the tarball with one file's content replaced.
func rewrite(t *testing.T, tarball []byte, name string, content []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "/") == name {
			body, found = content, true
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if !found {
		t.Fatalf("no %s in the tarball", name)
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

func TestBundleLifecycle(t *testing.T) {
	e := newEnv(t)
	seeded := e.must(200, "GET", "/api/v1/policies?environment=production", e.admin, nil).get("items").([]any)

	v1 := e.compileBundle("v1", "production", nil)
	if v1.str("status") != "DRAFT" || v1.str("revision") != "v1" || len(v1.get("policyIds").([]any)) != len(seeded) || len(seeded) == 0 {
		t.Fatalf("compiled: %s", v1.Raw)
	}
	id1 := v1.str("id")
	draft := e.must(200, "GET", bundlesPath+"/"+id1+"/tarball", e.admin, nil)
	if ct := draft.Header.Get("Content-Type"); ct != "application/vnd.openpolicyagent.bundles" || sha256hex(draft.Raw) != v1.str("contentHash") {
		t.Fatalf("tarball: content type %q, hash %s vs %s", ct, sha256hex(draft.Raw), v1.str("contentHash"))
	}
	if _, err := e.readBundle(draft.Raw); err == nil {
		t.Fatal("an unsigned DRAFT verified")
	}

	// Wrong transitions of a draft.
	e.problem(e.do("POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": id1}), 409, "", "")

	pub := e.must(200, "POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": id1, "signerId": "alice"})
	if pub.str("status") != "PUBLISHED" || pub.str("signerId") != "alice" || pub.str("signedAt") == "" || pub.str("contentHash") == v1.str("contentHash") {
		t.Fatalf("published: %s", pub.Raw)
	}
	e.problem(e.do("POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": id1, "signerId": "alice"}), 409, "", "")

	signed := e.must(200, "GET", bundlesPath+"/"+id1+"/tarball", e.admin, nil).Raw
	if sha256hex(signed) != pub.str("contentHash") {
		t.Fatal("the served tarball is not the one whose hash is recorded")
	}
	b, err := e.readBundle(signed)
	if err != nil {
		t.Fatalf("verify signed bundle: %v", err)
	}
	if b.Manifest.Revision != "v1" || len(b.Signatures.Signatures) != 1 || len(b.Modules) != 1 || b.Modules[0].Path != "/knaight/policy/policy.rego" {
		t.Fatalf("bundle: manifest %+v, modules %d", b.Manifest, len(b.Modules))
	}
	if _, err := e.readBundle(rewrite(t, signed, "data.json", []byte(`{"knaight":{"policies":[]}}`))); err == nil {
		t.Fatal("a bundle with altered data.json verified")
	}

	// OPA deciding with the bundle agrees with shared/policy on the same policies.
	raw, err := json.Marshal(b.Data["knaight"].(map[string]any)["policies"])
	if err != nil {
		t.Fatal(err)
	}
	var models []policy.Policy
	if err := json.Unmarshal(raw, &models); err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile(models)
	if err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(rego.Query("data.knaight.policy.decision"), rego.Module(b.Modules[0].Path, string(b.Modules[0].Raw)),
		rego.Store(inmem.NewFromObject(b.Data))).PrepareForEval(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, in := range []policy.Input{
		{RoleTemplate: "observer", Environment: "production", TrustLevel: policy.L5, LoA: 4, Scopes: []string{"mcp:read"}, Method: "tools/list", Time: at},
		{RoleTemplate: "observer", Environment: "production", TrustLevel: policy.L5, LoA: 4, Scopes: []string{"mcp:read"}, Method: "tools/call", Name: "deploy", Time: at},
		{RoleTemplate: "privileged", Environment: "production", TrustLevel: policy.L1, LoA: 1, Method: "tools/call", Name: "x", Time: at},
		{RoleTemplate: "nobody", Environment: "production", TrustLevel: policy.L3, LoA: 2, Method: "initialize", Time: at},
	} {
		want := set.Evaluate(&in)
		doc, _ := json.Marshal(in)
		var input any
		json.Unmarshal(doc, &input)
		rs, err := pq.Eval(t.Context(), rego.EvalInput(input))
		if err != nil || len(rs) != 1 {
			t.Fatalf("eval %s: %v %v", doc, rs, err)
		}
		got, _ := json.Marshal(rs[0].Expressions[0].Value)
		wantJSON, _ := json.Marshal(want)
		if !jsonEqual(t, got, wantJSON) {
			t.Errorf("input %s:\n OPA %s\n Go  %s", doc, got, wantJSON)
		}
	}

	// Activation, replacement, rollback.
	e.must(200, "POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": id1})
	e.problem(e.do("POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": id1}), 409, "", "")
	id2 := e.compileBundle("v2", "production", nil).str("id")
	e.must(200, "POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": id2, "signerId": "bob"})
	a2 := e.must(200, "POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": id2})
	if a2.str("status") != "ACTIVE" || a2.str("previousActiveId") != id1 || e.bundleStatus(id1) != "INACTIVE" {
		t.Fatalf("activate v2: %s; v1 %s", a2.Raw, e.bundleStatus(id1))
	}
	// Another environment's active bundle is untouched.
	idS := e.compileBundle("v1", "staging", nil).str("id")
	e.must(200, "POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": idS, "signerId": "bob"})
	e.must(200, "POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": idS})
	if e.bundleStatus(id2) != "ACTIVE" {
		t.Fatal("activating in staging deactivated production")
	}

	r := e.must(200, "POST", bundlesPath+"/revoke", e.admin, map[string]any{"bundleId": id2})
	if r.str("status") != "REVOKED" || r.str("rolledBackTo.id") != id1 || r.str("rolledBackTo.status") != "ACTIVE" || e.bundleStatus(id1) != "ACTIVE" {
		t.Fatalf("revoke v2: %s", r.Raw)
	}
	e.problem(e.do("POST", bundlesPath+"/revoke", e.admin, map[string]any{"bundleId": id2}), 409, "", "")
	e.problem(e.do("POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": id2}), 409, "", "")
	// v1 was active before nothing: revoking it leaves production without a bundle.
	if r := e.must(200, "POST", bundlesPath+"/revoke", e.admin, map[string]any{"bundleId": id1}); r.get("rolledBackTo") != nil {
		t.Fatalf("revoke v1 rolled back: %s", r.Raw)
	}
	if got := e.must(200, "GET", bundlesPath+"?environment=production&status=ACTIVE", e.admin, nil).get("items").([]any); len(got) != 0 {
		t.Fatalf("production still has an active bundle: %v", got)
	}
	if got := e.must(200, "GET", bundlesPath+"?status=REVOKED", e.admin, nil).get("items").([]any); len(got) != 2 {
		t.Fatalf("revoked bundles: %v", got)
	}
	if got := e.must(200, "GET", bundlesPath, e.admin, nil); len(got.get("items").([]any)) != 3 || strings.Contains(string(got.Raw), "tarball") {
		t.Fatalf("list: %s", got.Raw)
	}

	// Every step is in the ledger.
	var types []string
	rows, err := e.pool.Query(t.Context(), `SELECT event_type FROM ledger_events WHERE organization_id = $1 AND event_type LIKE 'BUNDLE_%' ORDER BY seq`, e.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		types = append(types, s)
	}
	want := "BUNDLE_COMPILED BUNDLE_SIGNING_KEY_CREATED BUNDLE_PUBLISHED BUNDLE_ACTIVATED BUNDLE_COMPILED BUNDLE_PUBLISHED BUNDLE_ACTIVATED " +
		"BUNDLE_COMPILED BUNDLE_PUBLISHED BUNDLE_ACTIVATED BUNDLE_REVOKED BUNDLE_ACTIVATED BUNDLE_REVOKED"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("ledger:\n got  %s\n want %s", got, want)
	}

	// Another organization sees none of it.
	_, other := e.newOrg("globex")
	for _, path := range []string{bundlesPath + "/" + id1, bundlesPath + "/" + id1 + "/tarball"} {
		e.problem(e.do("GET", path, other, nil), 404, "", "")
	}
	for _, op := range []string{"activate", "revoke"} {
		e.problem(e.do("POST", bundlesPath+"/"+op, other, map[string]any{"bundleId": idS}), 404, "", "")
	}
	e.problem(e.do("POST", bundlesPath+"/publish", other, map[string]any{"bundleId": idS, "signerId": "x"}), 404, "", "")
	if got := e.must(200, "GET", bundlesPath, other, nil).get("items").([]any); len(got) != 0 {
		t.Fatalf("foreign list: %v", got)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

func TestCompileBundleBadInput(t *testing.T) {
	e := newEnv(t)
	prod := e.must(200, "GET", "/api/v1/policies?environment=production", e.admin, nil).get("items").([]any)
	staging := e.must(200, "GET", "/api/v1/policies?environment=staging", e.admin, nil).get("items").([]any)
	prodID := prod[0].(map[string]any)["id"].(string)
	stagingID := staging[0].(map[string]any)["id"].(string)
	other, _ := e.newOrg("globex")
	e.compileBundle("taken", "production", nil)

	good := func(extra map[string]any) map[string]any {
		return patched(map[string]any{"organizationId": e.org.ID, "version": "v9", "environment": "production"}, extra)
	}
	for _, c := range []struct {
		name     string
		body     map[string]any
		status   int
		location string
		msg      string
	}{
		{"another organization", good(map[string]any{"organizationId": other.ID}), 422, "body.organizationId", "not the organization"},
		{"unknown environment", good(map[string]any{"environment": "prod"}), 422, "body.environment", ""},
		{"empty version", good(map[string]any{"version": ""}), 422, "body.version", ""},
		{"version with a slash", good(map[string]any{"version": "a/b"}), 422, "body.version", ""},
		{"unknown policy", good(map[string]any{"policies": []string{prodID, "00000000-0000-4000-8000-000000000000"}}), 422, "body.policies[1]", "no such policy"},
		{"policy of another environment", good(map[string]any{"policies": []string{stagingID}}), 422, "body.policies[0]", "for staging"},
		{"unknown field", good(map[string]any{"tarball": "x"}), 422, "body.tarball", ""},
		{"version already used", good(map[string]any{"version": "taken"}), 409, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.problem(e.do("POST", bundlesPath+"/compile", e.admin, c.body), c.status, c.location, c.msg)
		})
	}

	// A stored policy that no longer validates is named, not bundled.
	if _, err := e.pool.Exec(t.Context(), `UPDATE mcp_policies SET allowed_endpoints = '{"not an endpoint"}' WHERE id = $1`, prodID); err != nil {
		t.Fatal(err)
	}
	e.problem(e.do("POST", bundlesPath+"/compile", e.admin, good(map[string]any{"policies": []string{prodID}})), 422, "body.policies[0].allowedEndpoints[0]", "policy "+prodID)

	// Operators and admins only; unknown bundles are 404.
	e.problem(e.do("POST", bundlesPath+"/compile", "", good(nil)), 401, "", "")
	e.problem(e.do("POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": "00000000-0000-4000-8000-000000000000", "signerId": "a"}), 404, "", "")
	e.problem(e.do("POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": "00000000-0000-4000-8000-000000000000"}), 422, "body", "signerId")
	e.problem(e.do("GET", bundlesPath+"?status=LIVE", e.admin, nil), 422, "query.status", "")
}

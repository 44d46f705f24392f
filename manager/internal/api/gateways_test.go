package api_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/snapshot"
)

const snapshotPath = "/api/v1/gateway/snapshot"

// registerGateway registers a gateway and returns its id and credential.
func (e *env) registerGateway(name, environment string) (string, string) {
	e.t.Helper()
	r := e.must(201, "POST", "/api/v1/gateways", e.admin, map[string]any{"name": name, "environment": environment})
	return r.str("id"), r.str("credential")
}

// snapshotKeys returns the published snapshot keys by kid.
func (e *env) snapshotKeys() map[string]ed25519.PublicKey {
	e.t.Helper()
	keys := map[string]ed25519.PublicKey{}
	for _, it := range e.must(200, "GET", "/api/v1/gateway/snapshot-keys", e.admin, nil).get("items").([]any) {
		k := it.(map[string]any)
		pub, err := base64.StdEncoding.DecodeString(k["publicKey"].(string))
		if err != nil || len(pub) != ed25519.PublicKeySize {
			e.t.Fatalf("snapshot key %v: %v", k, err)
		}
		keys[k["kid"].(string)] = pub
	}
	return keys
}

// poll asks for the snapshot as a gateway's poller does; it is safe to
// call from any goroutine.
func (e *env) poll(credential, etag string, wait int) (response, error) {
	h := map[string]string{}
	if etag != "" {
		h["If-None-Match"] = etag
	}
	if wait > 0 {
		h["Prefer"] = "wait=" + strconv.Itoa(wait)
	}
	return e.opa("GET", snapshotPath, credential, h, nil)
}

func (e *env) mustPoll(want int, credential, etag string) response {
	e.t.Helper()
	r, err := e.poll(credential, etag, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.Status != want {
		e.t.Fatalf("GET snapshot: status %d, want %d\n%s\n%s", r.Status, want, r.Raw, lastLines(e.logs.String(), 3))
	}
	return r
}

// open verifies and opens a snapshot response as the filter does.
func (e *env) open(r response, credential string) *snapshot.Snapshot {
	e.t.Helper()
	cred, err := snapshot.ParseCredential(credential)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := cred.SealKey()
	if err != nil {
		e.t.Fatal(err)
	}
	o, err := snapshot.Open(r.Raw, cred, key, e.snapshotKeys())
	if err != nil {
		e.t.Fatalf("open snapshot: %v\n%s", err, r.Raw)
	}
	if etag := r.Header.Get("ETag"); etag != `"`+strconv.FormatUint(o.Snapshot.Version, 10)+`"` {
		e.t.Fatalf("ETag %q for version %d", etag, o.Snapshot.Version)
	}
	return o.Snapshot
}

func TestRegisterGatewayShowsTheCredentialOnce(t *testing.T) {
	e := newEnv(t)
	r := e.must(201, "POST", "/api/v1/gateways", e.admin, map[string]any{"name": "edge-1", "environment": "production"})
	id, cred := r.str("id"), r.str("credential")
	parsed, err := snapshot.ParseCredential(cred)
	if err != nil || parsed.GatewayID != id || !strings.HasPrefix(cred, "kngw."+id+".") || len(cred) != len("kngw.")+36+1+43 {
		t.Fatalf("credential %q for gateway %s: %v", cred, id, err)
	}
	keys := r.get("snapshotKeys").([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["active"] != true || keys[0].(map[string]any)["algorithm"] != "Ed25519" {
		t.Fatalf("snapshot keys: %s", r.Raw)
	}
	kid := keys[0].(map[string]any)["kid"].(string)
	pc := r.get("pluginConfig").(map[string]any)
	if pc["organization"] != "acme" || pc["environment"] != "production" || pc["gatewayCredential"] != cred ||
		pc["snapshotKeys"].(map[string]any)[kid] != keys[0].(map[string]any)["publicKey"] ||
		pc["managerCluster"] != "knaight_manager" || pc["managerAuthority"] != strings.TrimPrefix(e.srv.URL, "http://") {
		t.Fatalf("plugin config: %v", pc)
	}
	upstream := r.str("upstreamKey.secret")
	if r.str("upstreamKey.environment") != "production" || len(upstream) != 43 {
		t.Fatalf("first gateway of production must create its upstream key: %s", r.Raw)
	}

	// A second gateway of the environment finds the keys in place.
	second := e.must(201, "POST", "/api/v1/gateways", e.admin, map[string]any{"name": "edge-2", "environment": "production"})
	if second.get("upstreamKey") != nil || len(second.get("snapshotKeys").([]any)) != 1 {
		t.Fatalf("second gateway: %s", second.Raw)
	}
	mark := len(e.bodies.String())

	list := e.must(200, "GET", "/api/v1/gateways", e.admin, nil)
	got := e.must(200, "GET", "/api/v1/gateways/"+id, e.admin, nil)
	if len(list.get("items").([]any)) != 2 || got.str("name") != "edge-1" || got.str("environment") != "production" {
		t.Fatalf("list %s, get %s", list.Raw, got.Raw)
	}
	if ups := e.must(200, "GET", "/api/v1/gateway/upstream-keys", e.admin, nil); len(ups.get("items").([]any)) != 1 || strings.Contains(string(ups.Raw), "secret") {
		t.Fatalf("upstream keys: %s", ups.Raw)
	}
	e.mustPoll(200, cred, "")
	e.must(200, "GET", "/api/v1/audit?limit=500", e.admin, nil)
	later := e.bodies.String()[mark:]
	for name, secret := range map[string]string{"credential": cred, "credential secret": cred[strings.LastIndex(cred, ".")+1:], "upstream secret": upstream} {
		if strings.Contains(later, secret) {
			t.Errorf("the %s appears in a later response", name)
		}
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
	var ledgerText string
	if err := e.pool.QueryRow(t.Context(), `SELECT string_agg(details, ' ') FROM ledger_events`).Scan(&ledgerText); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ledgerText, cred[strings.LastIndex(cred, ".")+1:]) || strings.Contains(ledgerText, upstream) {
		t.Error("a secret appears in the ledger")
	}
	if evs := e.ledgerEvents("GATEWAY_REGISTERED"); len(evs) != 2 || evs[1].SubjectID != id {
		t.Fatalf("GATEWAY_REGISTERED events: %v", evs)
	}
	if len(e.ledgerEvents("SNAPSHOT_KEY_CREATED")) != 1 || len(e.ledgerEvents("UPSTREAM_KEY_CREATED")) != 1 {
		t.Fatal("key creation not recorded once")
	}
	// Only its hash is stored.
	var stored []byte
	if err := e.pool.QueryRow(t.Context(), `SELECT credential_hash FROM gateways WHERE id = $1`, id).Scan(&stored); err != nil || len(stored) != 32 {
		t.Fatalf("stored hash: %x %v", stored, err)
	}

	// Bad input, conflicts and roles.
	e.problem(e.do("POST", "/api/v1/gateways", e.admin, map[string]any{"name": "edge-1", "environment": "production"}), 409, "", "")
	e.problem(e.do("POST", "/api/v1/gateways", e.admin, map[string]any{"name": " bad", "environment": "production"}), 422, "body.name", "")
	e.problem(e.do("POST", "/api/v1/gateways", e.admin, map[string]any{"name": "x", "environment": "prod"}), 422, "body.environment", "")
	op := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "ops", "role": "operator"}).str("token")
	e.problem(e.do("POST", "/api/v1/gateways", op, map[string]any{"name": "x", "environment": "production"}), 403, "", "")
	e.must(200, "GET", "/api/v1/gateways", op, nil)
	e.problem(e.do("GET", "/api/v1/gateways/"+e.org.ID.String(), e.admin, nil), 404, "", "")

	// A revoked gateway's name can be reused.
	e.must(200, "DELETE", "/api/v1/gateways/"+id, e.admin, nil)
	e.problem(e.do("DELETE", "/api/v1/gateways/"+id, e.admin, nil), 409, "", "")
	e.must(201, "POST", "/api/v1/gateways", e.admin, map[string]any{"name": "edge-1", "environment": "staging"})
}

func TestGatewayAuthentication(t *testing.T) {
	e := newEnv(t)
	id, cred := e.registerGateway("edge", "production")
	_, other := e.registerGateway("edge-2", "production")
	wrongSecret := cred[:strings.LastIndex(cred, ".")+1] + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	batch := map[string]any{"records": []any{}}
	for _, c := range []struct{ name, token string }{
		{"no credential", ""},
		{"an API key", e.admin},
		{"a malformed credential", "kngw.nonsense"},
		{"a wrong secret", wrongSecret},
		{"another gateway's id with this secret", other[:strings.LastIndex(other, ".")] + cred[strings.LastIndex(cred, "."):]},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			r, err := e.poll(c.token, "", 0)
			if err != nil || r.Status != 401 {
				t.Fatalf("snapshot: %d %v", r.Status, err)
			}
			e.problem(e.do("POST", "/api/v1/gateway/decisions", c.token, batch), 401, "", "")
		})
	}
	e.t = t
	// A gateway credential is no API key.
	e.problem(e.do("GET", "/api/v1/gateways", cred, nil), 401, "", "")
	e.problem(e.do("GET", "/api/v1/organization", cred, nil), 401, "", "")
	e.mustOPA(401, "GET", "/api/v1/opa/bundles/acme/production", cred, nil, nil)

	// Good credential; then rotated, then revoked.
	e.mustPoll(200, cred, "")
	if r := e.must(200, "POST", "/api/v1/gateway/decisions", cred, batch); r.get("accepted") != 0.0 {
		t.Fatalf("empty batch: %s", r.Raw)
	}
	rot := e.must(200, "POST", "/api/v1/gateways/"+id+"/credential", e.admin, nil)
	fresh := rot.str("credential")
	if fresh == cred || rot.str("pluginConfig.gatewayCredential") != fresh {
		t.Fatalf("rotation: %s", rot.Raw)
	}
	e.mustPoll(401, cred, "")
	s := e.open(e.mustPoll(200, fresh, ""), fresh)
	if s.Organization != "acme" {
		t.Fatalf("snapshot for %q", s.Organization)
	}
	if len(e.ledgerEvents("GATEWAY_CREDENTIAL_ROTATED")) != 1 {
		t.Fatal("rotation not recorded")
	}
	if g := e.must(200, "GET", "/api/v1/gateways/"+id, e.admin, nil); g.str("lastSeenAt") == "" || g.str("credentialRotatedAt") == "" {
		t.Fatalf("gateway: %s", g.Raw)
	}
	e.must(200, "DELETE", "/api/v1/gateways/"+id, e.admin, nil)
	e.mustPoll(401, fresh, "")
	e.problem(e.do("POST", "/api/v1/gateway/decisions", fresh, batch), 401, "", "")
	e.problem(e.do("POST", "/api/v1/gateways/"+id+"/credential", e.admin, nil), 409, "", "")
	if len(e.ledgerEvents("GATEWAY_REVOKED")) != 1 {
		t.Fatal("revocation not recorded")
	}
}

// snapshotFixture is an organization with agents, tokens, an active bundle
// and a production gateway.
type snapshotFixture struct {
	active, pending, staging string // agent ids
	activeKey                string // the active agent's first HMAC secret
	token, revoked           string // token ids
	bundleHash               string
	gateway, credential      string
	upstreamKID, upstream    string
}

func newSnapshotFixture(e *env) snapshotFixture {
	e.t.Helper()
	var f snapshotFixture
	e.withAudience("EdDSA")
	tmpl := e.templateID("deployer")
	reg := e.registerAgent("deploy-bot", tmpl, "production")
	f.active, f.activeKey = reg.str("id"), reg.str("hmacKey.secret")
	f.pending = e.must(201, "POST", "/api/v1/agents", e.admin, map[string]any{"name": "new-bot", "roleTemplateId": tmpl, "environment": "production"}).str("id")
	f.staging = e.registerAgent("stage-bot", tmpl, "staging").str("id")
	f.token = e.issue(f.active, nil).str("tokenId")
	f.revoked = e.issue(f.active, nil).str("tokenId")
	e.must(200, "POST", "/api/v1/enforcement/tokens/revoke", e.admin, map[string]any{"tokenId": f.revoked, "organizationId": e.org.ID})
	f.bundleHash = e.activeBundle("v1")
	r := e.must(201, "POST", "/api/v1/gateways", e.admin, map[string]any{"name": "edge", "environment": "production"})
	f.gateway, f.credential, f.upstreamKID, f.upstream = r.str("id"), r.str("credential"), r.str("upstreamKey.kid"), r.str("upstreamKey.secret")
	return f
}

func TestSnapshotContent(t *testing.T) {
	e := newEnv(t)
	f := newSnapshotFixture(e)
	r := e.mustPoll(200, f.credential, "")
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers: %v", r.Header)
	}
	s := e.open(r, f.credential)

	if s.Organization != "acme" || s.Environment != "production" || s.Issuer != e.srv.URL || s.Schema != snapshot.Schema {
		t.Fatalf("scope: %+v", s)
	}
	if s.Settings.ClockSkewSeconds != 300 || s.Settings.MaxStalenessSeconds != 300 {
		t.Fatalf("settings: %+v", s.Settings)
	}
	// Token keys: the organization's signing key.
	kid := e.must(200, "GET", "/api/v1/enforcement/tokens/"+f.token, e.admin, nil).str("kid")
	if len(s.TokenKeys) != 1 || s.TokenKeys[0].ID != kid || s.TokenKeys[0].Algorithm != snapshot.AlgEdDSA || len(s.TokenKeys[0].Key) != 32 {
		t.Fatalf("token keys: %+v, want %s", s.TokenKeys, kid)
	}
	if len(s.Revocations) != 1 || s.Revocations[0].TokenID != f.revoked || !s.Revocations[0].ExpiresAt.After(e.clock.Now()) {
		t.Fatalf("revocations: %+v, want %s", s.Revocations, f.revoked)
	}
	// Agents: the environment's, keys only for ACTIVE ones.
	if len(s.Agents) != 2 {
		t.Fatalf("agents: %+v", s.Agents)
	}
	byID := map[string]snapshot.Agent{}
	for _, a := range s.Agents {
		byID[a.ID] = a
	}
	act, pend := byID[f.active], byID[f.pending]
	secret, _ := base64.RawURLEncoding.DecodeString(f.activeKey)
	if act.ANSName != "ans://v1.0.0.deploy-bot.acme.agents.example" || act.Status != "ACTIVE" || act.RoleTemplate != "deployer" ||
		act.TrustLevel.String() != "L1" || len(act.Keys) != 1 || string(act.Keys[0].Secret) != string(secret) || act.Keys[0].ExpiresAt != nil {
		t.Fatalf("active agent: %+v", act)
	}
	if pend.Status != "PENDING" || len(pend.Keys) != 0 {
		t.Fatalf("pending agent: %+v", pend)
	}
	if _, ok := byID[f.staging]; ok {
		t.Fatal("a staging agent is in the production snapshot")
	}
	// The bundle: the active one's production policies.
	bundleID := e.must(200, "GET", bundlesPath+"?status=ACTIVE", e.admin, nil).get("items").([]any)[0].(map[string]any)["id"].(string)
	if s.Bundle.ID != bundleID || s.Bundle.Revision != "v1" || len(s.Bundle.Policies) == 0 {
		t.Fatalf("bundle: %s %s, %d policies", s.Bundle.ID, s.Bundle.Revision, len(s.Bundle.Policies))
	}
	var scopes []string
	for _, p := range s.Bundle.Policies {
		if p.Environment != "production" {
			t.Fatalf("policy of %s", p.Environment)
		}
		for _, sc := range p.RequiredScopes {
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	slices.Sort(scopes)
	if !slices.Equal(s.ProtectedResource.ScopesSupported, scopes) || !slices.Equal(s.ProtectedResource.AuthorizationServers, []string{e.srv.URL}) {
		t.Fatalf("protected resource: %+v, scopes %v", s.ProtectedResource, scopes)
	}
	upstream, _ := base64.RawURLEncoding.DecodeString(f.upstream)
	if s.Upstream.ID != f.upstreamKID || string(s.Upstream.Secret) != string(upstream) {
		t.Fatalf("upstream: %s", s.Upstream.ID)
	}

	// A rotated HMAC key stays, with its expiry, during its overlap.
	rot := e.must(201, "POST", "/api/v1/agents/"+f.active+"/keys", e.admin, map[string]any{"overlapSeconds": 600})
	s2 := e.open(e.mustPoll(200, f.credential, ""), f.credential)
	var keys []snapshot.HMACKey
	for _, a := range s2.Agents {
		if a.ID == f.active {
			keys = a.Keys
		}
	}
	slices.SortFunc(keys, func(a, b snapshot.HMACKey) int {
		return strings.Compare(strconv.FormatBool(a.ID != rot.str("kid")), strconv.FormatBool(b.ID != rot.str("kid")))
	})
	if s2.Version <= s.Version || len(keys) != 2 || keys[0].ID != rot.str("kid") || keys[0].ExpiresAt != nil || keys[1].ExpiresAt == nil {
		t.Fatalf("after rotation: version %d -> %d, keys %+v", s.Version, s2.Version, keys)
	}
	// A staging gateway sees the staging agent and no bundle.
	_, stagingCred := e.registerGateway("stage-edge", "staging")
	st := e.open(e.mustPoll(200, stagingCred, ""), stagingCred)
	if len(st.Agents) != 1 || st.Agents[0].ID != f.staging || st.Bundle.ID != "" || len(st.Bundle.Policies) != 0 || st.Upstream.ID == s.Upstream.ID {
		t.Fatalf("staging snapshot: %+v", st)
	}
}

func TestSnapshotConditionalRequests(t *testing.T) {
	e := newEnv(t)
	f := newSnapshotFixture(e)
	r := e.mustPoll(200, f.credential, "")
	etag := r.Header.Get("ETag")
	nm := e.mustPoll(304, f.credential, etag)
	if nm.Header.Get("ETag") != etag || len(nm.Raw) != 0 {
		t.Fatalf("304: etag %q, body %q", nm.Header.Get("ETag"), nm.Raw)
	}
	e.mustPoll(304, f.credential, strings.Trim(etag, `"`))
	e.mustPoll(200, f.credential, `"1"`)

	// Nothing changes: held for the wait, then 304.
	start := time.Now()
	held, err := e.poll(f.credential, etag, 1)
	if err != nil || held.Status != 304 || held.Header.Get("ETag") != etag {
		t.Fatalf("long poll: %d %v", held.Status, err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Fatalf("long poll took %v, want about 1s", d)
	}
	// A changed version answers at once, and versions only grow.
	e.must(201, "POST", "/api/v1/agents/"+f.active+"/keys", e.admin, nil)
	start = time.Now()
	r2, err := e.poll(f.credential, etag, 20)
	if err != nil || r2.Status != 200 || time.Since(start) > 2*time.Second {
		t.Fatalf("poll after a change: %d %v after %v", r2.Status, err, time.Since(start))
	}
	if v1, v2 := e.open(r, f.credential).Version, e.open(r2, f.credential).Version; v2 <= v1 {
		t.Fatalf("version went from %d to %d", v1, v2)
	}
	// Issuing a token changes no snapshot.
	etag = r2.Header.Get("ETag")
	e.issue(f.active, nil)
	e.mustPoll(304, f.credential, etag)
}

// awaitChange holds a long poll on srv and reports when change releases it.
func (e *env) awaitChange(poller *env, credential string, change func()) *snapshot.Snapshot {
	e.t.Helper()
	first, err := poller.poll(credential, "", 0)
	if err != nil || first.Status != 200 {
		e.t.Fatalf("first poll: %d %v", first.Status, err)
	}
	before := e.open(first, credential).Version
	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := poller.poll(credential, first.Header.Get("ETag"), 30)
		done <- result{r, err}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case res := <-done:
		e.t.Fatalf("long poll answered before the change: %d %v", res.r.Status, res.err)
	default:
	}
	start := time.Now()
	change()
	select {
	case res := <-done:
		if res.err != nil || res.r.Status != 200 {
			e.t.Fatalf("released poll: %d %v\n%s", res.r.Status, res.err, res.r.Raw)
		}
		if d := time.Since(start); d > 10*time.Second {
			e.t.Fatalf("released after %v", d)
		}
		s := e.open(res.r, credential)
		if s.Version <= before {
			e.t.Fatalf("version %d after %d", s.Version, before)
		}
		return s
	case <-time.After(15 * time.Second):
		e.t.Fatal("the change did not wake the long poll")
	}
	return nil
}

func TestSnapshotLongPollWokenByEveryKindOfChange(t *testing.T) {
	e := newEnv(t)
	f := newSnapshotFixture(e)
	replica := e.replica()
	for _, c := range []struct {
		name   string
		poller *env
		change func()
		check  func(*snapshot.Snapshot) bool
	}{
		{"token revocation", e, func() {
			e.must(200, "POST", "/api/v1/enforcement/tokens/revoke", e.admin, map[string]any{"tokenId": f.token, "organizationId": e.org.ID})
		}, func(s *snapshot.Snapshot) bool { return len(s.Revocations) == 2 }},
		{"trust change", e, func() {
			e.signal(f.active, "identity.admin_attestation", 1, nil)
			e.signal(f.active, "identity.dns_verified", 1, nil)
		}, func(s *snapshot.Snapshot) bool { return s.Agents[0].TrustScore > 0 }},
		{"agent status change", e, func() {
			e.must(200, "POST", "/api/v1/agents/"+f.active+"/ans/status", e.admin, map[string]any{"status": "SUSPENDED", "reason": "incident 42"})
		}, func(s *snapshot.Snapshot) bool {
			return s.Agents[0].Status == "SUSPENDED" && len(s.Agents[0].Keys) == 0
		}},
		{"bundle activation", e, func() { e.activeBundle("v2") }, func(s *snapshot.Snapshot) bool { return s.Bundle.Revision == "v2" }},
		{"token signing key rotation", e, func() { e.must(201, "POST", "/api/v1/enforcement/signing-keys/rotate", e.admin, nil) },
			func(s *snapshot.Snapshot) bool { return len(s.TokenKeys) == 2 }},
		{"snapshot key rotation", e, func() { e.must(201, "POST", "/api/v1/gateway/snapshot-keys/rotate", e.admin, nil) },
			func(*snapshot.Snapshot) bool { return true }},
		{"upstream key rotation", e, func() {
			e.must(201, "POST", "/api/v1/gateway/upstream-keys", e.admin, map[string]any{"environment": "production"})
		}, func(s *snapshot.Snapshot) bool { return s.Upstream.ID != f.upstreamKID }},
		{"a change through another replica", replica, func() {
			e.must(200, "POST", "/api/v1/agents/"+f.active+"/ans/status", e.admin, map[string]any{"status": "ACTIVE", "reason": "resolved"})
		}, func(s *snapshot.Snapshot) bool { return s.Agents[0].Status == "ACTIVE" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t, replica.t = t, t
			s := e.awaitChange(c.poller, f.credential, c.change)
			if !c.check(s) {
				t.Fatalf("the snapshot does not show the change: %+v", s)
			}
		})
	}
}

func TestOPABundleLongPollWokenThroughAnotherReplica(t *testing.T) {
	e := newEnv(t)
	replica := e.replica()
	hash := e.activeBundle("v1")
	id2 := e.compileBundle("v2", "production", nil).str("id")
	e.must(200, "POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": id2, "signerId": "alice"})
	done := make(chan response, 1)
	go func() {
		r, _ := replica.opa("GET", "/api/v1/opa/bundles/acme/production", e.admin,
			map[string]string{"If-None-Match": `"` + hash + `"`, "Prefer": "modes=snapshot,delta;wait=30"}, nil)
		done <- r
	}()
	time.Sleep(300 * time.Millisecond)
	e.must(200, "POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": id2})
	select {
	case r := <-done:
		if r.Status != 200 || r.Header.Get("ETag") == `"`+hash+`"` {
			t.Fatalf("released poll: %d %s", r.Status, r.Header.Get("ETag"))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the activation did not wake the poll held by the other replica")
	}
}

// record is a valid decision record of the acme production gateway.
func record(i int, allow bool) decision.Record {
	r := decision.Record{
		ID: fmt.Sprintf("%032x", i+1), Kind: decision.KindDecision, Time: time.Date(2026, 11, 2, 9, 0, i%60, 0, time.UTC),
		Organization: "acme", Environment: "production", Agent: "ans://v1.0.0.deploy-bot.acme.agents.example",
		HTTPMethod: "POST", Path: "/mcp", MCPMethod: "tools/call", Name: "deploy", Allow: allow, Reason: decision.Allowed,
		TrustLevel: "L3", TrustScore: 71.5, PolicyID: "p1", BundleRevision: "v1", SnapshotVersion: 7, LatencyMicros: 120,
	}
	if !allow {
		r.Reason, r.Message, r.Status = decision.TrustBelowThreshold, "trust L1 below L3", http.StatusForbidden
	}
	return r
}

func TestDecisionIngest(t *testing.T) {
	e := newEnv(t)
	agent := e.registerAgent("deploy-bot", e.templateID("deployer"), "production").str("id")
	_, cred := e.registerGateway("edge", "production")
	from, to := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 8, 5, 0, 0, time.UTC)
	gap := decision.Record{ID: strings.Repeat("ab", 16), Kind: decision.KindGap, Time: to, Organization: "acme", Environment: "production",
		Lost: 42, LostFrom: &from, LostTo: &to}
	batch := decision.Batch{Records: []decision.Record{record(0, true), record(1, false), gap}}
	before := len(e.ledgerEvents(""))

	r := e.must(200, "POST", "/api/v1/gateway/decisions", cred, batch)
	if r.get("accepted") != 3.0 || r.get("duplicates") != 0.0 {
		t.Fatalf("first ingest: %s", r.Raw)
	}
	allowed, denied, lost := e.ledgerEvents("ENFORCEMENT_CALL_ALLOWED"), e.ledgerEvents("ENFORCEMENT_CALL_DENIED"), e.ledgerEvents("ENFORCEMENT_RECORDS_LOST")
	if len(allowed) != 1 || len(denied) != 1 || len(lost) != 1 {
		t.Fatalf("events: %d allowed, %d denied, %d lost", len(allowed), len(denied), len(lost))
	}
	if allowed[0].SubjectType != "agent" || allowed[0].SubjectID != agent || !strings.Contains(string(allowed[0].Details), `"decisionId":"`+record(0, true).ID+`"`) ||
		!strings.Contains(string(denied[0].Details), `"reason":"trust_below_threshold"`) || !strings.Contains(string(denied[0].Details), `"source":"gateway"`) {
		t.Fatalf("decision events: %+v %s", allowed[0], denied[0].Details)
	}
	if !strings.Contains(string(lost[0].Details), `"lost":42`) || !strings.Contains(string(lost[0].Details), `"lostFrom":"2026-11-02T08:00:00Z"`) {
		t.Fatalf("gap event: %s", lost[0].Details)
	}

	// The same batch again, and a batch repeating a record: nothing twice.
	r = e.must(200, "POST", "/api/v1/gateway/decisions", cred, batch)
	if r.get("accepted") != 0.0 || r.get("duplicates") != 3.0 {
		t.Fatalf("retry: %s", r.Raw)
	}
	r = e.must(200, "POST", "/api/v1/gateway/decisions", cred, decision.Batch{Records: []decision.Record{record(5, true), record(5, true)}})
	if r.get("accepted") != 1.0 || r.get("duplicates") != 1.0 {
		t.Fatalf("repeated record: %s", r.Raw)
	}
	if n := len(e.ledgerEvents("")); n != before+4 {
		t.Fatalf("%d new events, want 4", n-before)
	}
	if v := e.must(200, "GET", "/api/v1/audit/verify", e.admin, nil); v.get("ok") != true {
		t.Fatalf("verify: %s", v.Raw)
	}

	// Listing.
	list := e.must(200, "GET", "/api/v1/enforcement/calls", e.admin, nil)
	if items := list.get("items").([]any); len(items) != 4 || items[0].(map[string]any)["gatewayId"] == nil {
		t.Fatalf("calls: %s", list.Raw)
	}
	if items := e.must(200, "GET", "/api/v1/enforcement/calls?allow=false", e.admin, nil).get("items").([]any); len(items) != 1 ||
		items[0].(map[string]any)["reason"] != "trust_below_threshold" || items[0].(map[string]any)["status"] != 403.0 {
		t.Fatalf("denied calls: %v", items)
	}
	if items := e.must(200, "GET", "/api/v1/enforcement/calls?reason=allowed&limit=1", e.admin, nil); len(items.get("items").([]any)) != 1 || items.get("nextCursor") == nil {
		t.Fatalf("paged calls: %s", items.Raw)
	}
	if items := e.must(200, "GET", "/api/v1/enforcement/calls?agent=nobody", e.admin, nil).get("items").([]any); len(items) != 0 {
		t.Fatalf("calls of nobody: %v", items)
	}

	// Bad records are refused whole, naming the record and field.
	bad := func(i int, mutate func(*decision.Record)) decision.Batch {
		recs := []decision.Record{record(100, true), record(101, false)}
		mutate(&recs[i])
		return decision.Batch{Records: recs}
	}
	okRecord := `{"id":"` + strings.Repeat("0", 31) + `1","kind":"decision","time":"2026-11-02T09:00:00Z","organization":"acme","environment":"production","allow":true,"reason":"allowed"}`
	for _, c := range []struct {
		name, location, message string
		body                    any
	}{
		{name: "bad id", body: bad(0, func(r *decision.Record) { r.ID = "XYZ" }), location: "body.records[0].id"},
		{name: "unknown reason", body: bad(1, func(r *decision.Record) { r.Reason = "because" }), location: "body.records[1].reason"},
		{name: "allow with a denial reason", body: bad(1, func(r *decision.Record) { r.Allow = true }), location: "body.records[1].allow"},
		{name: "another organization", body: bad(1, func(r *decision.Record) { r.Organization = "other" }), location: "body.records[1].organization"},
		{name: "another environment", body: bad(0, func(r *decision.Record) { r.Environment = "staging" }), location: "body.records[0].environment"},
		{name: "gap without a count", body: bad(0, func(r *decision.Record) { r.Kind, r.Allow, r.Reason = decision.KindGap, false, "" }), location: "body.records[0]"},
		{name: "unknown field", body: `{"records":[` + okRecord + `,` + strings.Replace(okRecord, `"allow"`, `"extra":1,"allow"`, 1) + `]}`, location: "body.records[1]", message: `unknown field "extra"`},
		{name: "a value of the wrong type", body: `{"records":[` + strings.Replace(okRecord, `"allow":true`, `"allow":"yes"`, 1) + `]}`, location: "body.records[0].allow", message: "must be true or false, not a JSON string"},
		{name: "unknown batch field", body: `{"records":[` + okRecord + `],"more":1}`, location: "body", message: `unknown field "more"`},
		{name: "no records", body: `{}`, location: "body.records", message: "required"},
		{name: "records not an array", body: `{"records":{}}`, location: "body.records", message: "must be an array, not a JSON object"},
		{name: "data after the batch", body: `{"records":[]} {}`, location: "body", message: "after"},
		{name: "too many records", body: decision.Batch{Records: make([]decision.Record, decision.MaxBatch+1)}, location: "body.records", message: "at most"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.problem(e.do("POST", "/api/v1/gateway/decisions", cred, c.body), 422, c.location, c.message)
		})
	}
	e.t = t
	e.problem(e.do("POST", "/api/v1/gateway/decisions", cred, `{"records":[`+okRecord), 400, "", "")
	e.t = t
	if n := len(e.ledgerEvents("")); n != before+4 {
		t.Fatalf("bad batches recorded %d events", n-before-4)
	}
	var stored int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM enforcement_calls`).Scan(&stored); err != nil || stored != 4 {
		t.Fatalf("%d stored records: %v", stored, err)
	}
}

func TestLedgerAppendBatchKeepsTheChain(t *testing.T) {
	e := newEnv(t)
	entries := make([]ledger.Entry, 50)
	for i := range entries {
		entries[i] = ledger.Entry{OrganizationID: e.org.ID, Type: "TEST_EVENT", Actor: "test", SubjectType: "test", SubjectID: strconv.Itoa(i), Details: map[string]any{"i": i}}
	}
	tx, err := e.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	evs, err := ledger.AppendBatch(t.Context(), tx, e.org.ID, entries, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 50 || evs[49].Seq != evs[0].Seq+49 {
		t.Fatalf("events: %d", len(evs))
	}
	// Single appends continue the chain the batch left.
	e.registerAgent("bot", e.templateID("r"), "production")
	rep, err := ledger.Verify(t.Context(), e.pool, e.org.ID)
	if err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func TestChangeListenerReconnectsAndWakesEveryone(t *testing.T) {
	e := newEnv(t)
	woken := e.changes.Changed(e.org.ID)
	tag, err := e.pool.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'listen %'`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("terminate the listener: %v (%d)", err, tag.RowsAffected())
	}
	select {
	case <-woken: // notifications may have been missed: everyone re-reads
	case <-time.After(15 * time.Second):
		t.Fatal("waiters were not woken after the reconnection")
	}
	for start := time.Now(); !e.changes.Listening(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 15*time.Second {
			t.Fatal("the listener did not reconnect")
		}
	}
	// And it hears changes again.
	woken = e.changes.Changed(e.org.ID)
	e.registerAgent("bot", e.templateID("r"), "production")
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("a change after the reconnection was not heard")
	}
}

func TestSnapshotCarriesHS256Secrets(t *testing.T) {
	e := newEnv(t)
	e.withAudience("HS256")
	_, cred := e.registerGateway("edge", "production")
	s := e.open(e.mustPoll(200, cred, ""), cred)
	if len(s.TokenKeys) != 1 || s.TokenKeys[0].Algorithm != snapshot.AlgHS256 || len(s.TokenKeys[0].Key) != 32 {
		t.Fatalf("token keys: %+v", s.TokenKeys)
	}
}

// The decisions body is read by calls.Decode, not by the generic
// validation, and still documented as the batch it is.
func TestOpenAPIDescribesTheDecisionBatch(t *testing.T) {
	e := newEnv(t)
	doc := e.must(200, "GET", "/api/v1/openapi.json", "", nil)
	op := doc.Body["paths"].(map[string]any)["/api/v1/gateway/decisions"].(map[string]any)["post"].(map[string]any)
	schema := op["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	ref, _ := schema["$ref"].(string)
	name := strings.TrimPrefix(ref, "#/components/schemas/")
	batch, ok := doc.Body["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
	if !ok || batch["properties"].(map[string]any)["records"] == nil {
		t.Fatalf("decisions body schema %v, component %q: %v", schema, name, batch)
	}
}

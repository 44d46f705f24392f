package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/manager/internal/ledger"
)

const opaBundleMedia = "application/vnd.openpolicyagent.bundles"

// opa sends a request the way an OPA sidecar does; it is safe to call from
// any goroutine (it does not fail the test).
func (e *env) opa(method, path, token string, headers map[string]string, body []byte) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		return response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}, err
}

func (e *env) mustOPA(want int, method, path, token string, headers map[string]string, body []byte) response {
	e.t.Helper()
	r, err := e.opa(method, path, token, headers, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d\n%s", method, path, r.Status, want, r.Raw)
	}
	return r
}

// activeBundle compiles, publishes and activates a production bundle and
// returns its content hash.
func (e *env) activeBundle(version string) string {
	e.t.Helper()
	id := e.compileBundle(version, "production", nil).str("id")
	e.must(200, "POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": id, "signerId": "alice"})
	return e.must(200, "POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": id}).str("contentHash")
}

func (e *env) ledgerEvents(typ string) []ledger.Event {
	e.t.Helper()
	evs, err := ledger.List(e.t.Context(), e.pool, e.org.ID, ledger.Filter{Type: typ, Limit: 500})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func TestOPABundleService(t *testing.T) {
	e := newEnv(t)
	path := "/api/v1/opa/bundles/acme/production"
	_, otherKey := e.newOrg("other")

	// Nothing active yet.
	e.mustOPA(404, "GET", path, e.admin, nil, nil)
	hash := e.activeBundle("v1")

	r := e.mustOPA(200, "GET", path, e.admin, nil, nil)
	if ct := r.Header.Get("Content-Type"); ct != opaBundleMedia {
		t.Fatalf("content type %q", ct)
	}
	if r.Header.Get("ETag") != `"`+hash+`"` || sha256hex(r.Raw) != hash {
		t.Fatalf("etag %q, body hash %s, want %s", r.Header.Get("ETag"), sha256hex(r.Raw), hash)
	}
	stored := e.must(200, "GET", bundlesPath+"?status=ACTIVE", e.admin, nil).get("items").([]any)[0].(map[string]any)["id"].(string)
	if tb := e.must(200, "GET", bundlesPath+"/"+stored+"/tarball", e.admin, nil).Raw; !bytes.Equal(tb, r.Raw) {
		t.Fatal("served bytes differ from the stored tarball")
	}
	if b, err := e.readBundle(r.Raw); err != nil || b.Manifest.Revision != "v1" {
		t.Fatalf("served bundle: %v, revision %q", err, b.Manifest.Revision)
	}
	// By organization id too.
	e.mustOPA(200, "GET", "/api/v1/opa/bundles/"+e.org.ID.String()+"/production", e.admin, nil, nil)

	// Conditional.
	nm := e.mustOPA(304, "GET", path, e.admin, map[string]string{"If-None-Match": `"` + hash + `"`}, nil)
	if nm.Header.Get("ETag") != `"`+hash+`"` || len(nm.Raw) != 0 {
		t.Fatalf("304: etag %q, body %q", nm.Header.Get("ETag"), nm.Raw)
	}
	e.mustOPA(200, "GET", path, e.admin, map[string]string{"If-None-Match": `"stale"`}, nil)

	// Authentication and scoping.
	e.mustOPA(401, "GET", path, "", nil, nil)
	e.mustOPA(401, "GET", path, "knk_bogus_token", nil, nil)
	e.mustOPA(404, "GET", path, otherKey, nil, nil)
	e.mustOPA(404, "GET", "/api/v1/opa/bundles/other/production", e.admin, nil, nil)
	e.mustOPA(404, "GET", "/api/v1/opa/bundles/acme/staging", e.admin, nil, nil)
	e.mustOPA(404, "GET", "/api/v1/opa/bundles/acme/nowhere", e.admin, nil, nil)
	e.mustOPA(404, "GET", "/api/v1/opa/bundles/nosuchorg/production", e.admin, nil, nil)

	// Long poll with nothing new: held for the wait, then 304.
	lp := map[string]string{"If-None-Match": `"` + hash + `"`, "Prefer": "modes=snapshot,delta;wait=1"}
	start := time.Now()
	held := e.mustOPA(304, "GET", path, e.admin, lp, nil)
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Fatalf("long poll took %v, want about 1s", d)
	}
	if ct := held.Header.Get("Content-Type"); ct != opaBundleMedia {
		t.Fatalf("long poll 304 content type %q", ct)
	}

	// Long poll released early by an activation.
	id2 := e.compileBundle("v2", "production", nil).str("id")
	hash2 := e.must(200, "POST", bundlesPath+"/publish", e.admin, map[string]any{"bundleId": id2, "signerId": "alice"}).str("contentHash")
	type result struct {
		r   response
		err error
		d   time.Duration
	}
	done := make(chan result, 1)
	lp["Prefer"] = "modes=snapshot,delta;wait=20"
	go func() {
		start := time.Now()
		r, err := e.opa("GET", path, e.admin, lp, nil)
		done <- result{r, err, time.Since(start)}
	}()
	time.Sleep(700 * time.Millisecond)
	select {
	case res := <-done:
		t.Fatalf("long poll answered before the activation: %d %v", res.r.Status, res.err)
	default:
	}
	e.must(200, "POST", bundlesPath+"/activate", e.admin, map[string]any{"bundleId": id2})
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.r.Status != 200 || sha256hex(res.r.Raw) != hash2 || res.r.Header.Get("ETag") != `"`+hash2+`"` || res.r.Header.Get("Content-Type") != opaBundleMedia {
		t.Fatalf("released long poll: %d etag %q type %q", res.r.Status, res.r.Header.Get("ETag"), res.r.Header.Get("Content-Type"))
	}
	if res.d > 10*time.Second {
		t.Fatalf("long poll released after %v", res.d)
	}
}

func TestOPALongPollCancelled(t *testing.T) {
	e := newEnv(t)
	hash := e.activeBundle("v1")
	ctx, cancel := contextWithTimeout(t, 500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/opa/bundles/acme/production", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	req.Header.Set("If-None-Match", `"`+hash+`"`)
	req.Header.Set("Prefer", "modes=snapshot,delta;wait=30")
	start := time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the held request answered before the client gave up")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	// The server goes on serving.
	e.mustOPA(200, "GET", "/api/v1/opa/bundles/acme/production", e.admin, nil, nil)
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOPAStatusAndDecisionLogs(t *testing.T) {
	e := newEnv(t)
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	gzHdr := map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}

	status := []byte(`{"labels":{"id":"opa-1","version":"1.22.2"},"bundles":{"knaight":{"name":"knaight","active_revision":"v1","last_successful_activation":"2026-11-02T10:00:00Z","code":"","message":""}},"plugins":{"bundle":{"state":"OK"}},"metrics":{"prometheus":{}}}`)
	e.mustOPA(401, "POST", "/api/v1/opa/status", "", jsonHdr, status)
	e.mustOPA(204, "POST", "/api/v1/opa/status", e.admin, jsonHdr, status)
	evs := e.ledgerEvents("OPA_STATUS_REPORTED")
	if len(evs) != 1 || evs[0].SubjectID != "opa-1" {
		t.Fatalf("status events: %+v", evs)
	}
	var sd map[string]any
	json.Unmarshal(evs[0].Details, &sd)
	if rev := sd["bundles"].(map[string]any)["knaight"].(map[string]any)["activeRevision"]; rev != "v1" || sd["opaVersion"] != "1.22.2" {
		t.Fatalf("status details: %s", evs[0].Details)
	}

	logs := []byte(`[
		{"labels":{"id":"opa-1"},"decision_id":"d-1","path":"knaight/policy/decision","input":{"secret":"do-not-store"},"result":{"allow":true,"reason":"ok"},"bundles":{"knaight":{"revision":"v1"}},"timestamp":"2026-11-02T10:00:01Z"},
		{"labels":{"id":"opa-1"},"decision_id":"d-2","path":"knaight/policy/decision","input":{},"result":false}
	]`)
	e.mustOPA(401, "POST", "/api/v1/opa/logs", "", gzHdr, gz(t, logs))
	e.mustOPA(204, "POST", "/api/v1/opa/logs", e.admin, gzHdr, gz(t, logs))
	evs = e.ledgerEvents("OPA_DECISION_LOGGED")
	if len(evs) != 2 {
		t.Fatalf("decision events: %d", len(evs))
	}
	byID := map[string]map[string]any{}
	for _, ev := range evs {
		if strings.Contains(string(ev.Details), "do-not-store") {
			t.Fatal("the decision input reached the ledger")
		}
		var d map[string]any
		json.Unmarshal(ev.Details, &d)
		byID[ev.SubjectID] = d
	}
	d1 := byID["d-1"]
	if d1["path"] != "knaight/policy/decision" || d1["result"].(map[string]any)["allow"] != true || d1["bundles"].(map[string]any)["knaight"] != "v1" {
		t.Fatalf("d-1: %v", d1)
	}
	if r := byID["d-2"]["result"].(map[string]any); r["type"] != "boolean" || r["value"] != false {
		t.Fatalf("d-2: %v", byID["d-2"])
	}
	// Uncompressed JSON is accepted too.
	e.mustOPA(204, "POST", "/api/v1/opa/logs", e.admin, jsonHdr, []byte(`[{"decision_id":"d-3","path":"x","result":1}]`))

	// Garbage.
	for _, c := range []struct {
		path string
		hdr  map[string]string
		body []byte
	}{
		{"/api/v1/opa/status", jsonHdr, []byte(`not json`)},
		{"/api/v1/opa/status", jsonHdr, []byte(`[]`)},
		{"/api/v1/opa/status", jsonHdr, []byte(`{}`)},
		{"/api/v1/opa/status", jsonHdr, []byte(`{"bundles":{"knaight":42}}`)},
		{"/api/v1/opa/status", jsonHdr, []byte(``)},
		{"/api/v1/opa/logs", jsonHdr, []byte(`{"decision_id":"x"}`)},
		{"/api/v1/opa/logs", jsonHdr, []byte(`[{"path":"no id"}]`)},
		{"/api/v1/opa/logs", jsonHdr, []byte(`null`)},
		{"/api/v1/opa/logs", gzHdr, []byte(`[{"decision_id":"not gzip"}]`)},
		{"/api/v1/opa/logs", gzHdr, gz(t, []byte(`[{"decision_id":`))},
	} {
		r := e.mustOPA(400, "POST", c.path, e.admin, c.hdr, c.body)
		if r.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %q: content type %q", c.path, c.body, r.Header.Get("Content-Type"))
		}
	}

	// Oversized, after decompression (a small gzip of a large array) and raw.
	big := append([]byte(`[{"decision_id":"big","path":"`), bytes.Repeat([]byte("a"), 9<<20)...)
	big = append(big, `"}]`...)
	e.mustOPA(413, "POST", "/api/v1/opa/logs", e.admin, gzHdr, gz(t, big))
	e.mustOPA(413, "POST", "/api/v1/opa/logs", e.admin, jsonHdr, big)
	e.mustOPA(413, "POST", "/api/v1/opa/status", e.admin, gzHdr, gz(t, big))
	if n := len(e.ledgerEvents("OPA_DECISION_LOGGED")); n != 3 {
		t.Fatalf("%d decision events after rejected uploads, want 3", n)
	}
	// The chain still verifies.
	if v := e.must(200, "GET", "/api/v1/audit/verify", e.admin, nil); !strings.Contains(string(v.Raw), "true") {
		t.Fatalf("verify: %s", v.Raw)
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

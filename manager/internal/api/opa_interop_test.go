package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/testenv/bundletest"
)

// buildOPA builds the OPA binary of the version manager/go.mod pins.
func buildOPA(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "opa")
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/open-policy-agent/opa")
	// The test runs in manager/internal/api; build from the manager module.
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build opa: %v\n%s", err, out)
	}
	t.Logf("built opa in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// opaSidecar is a running `opa run --server`.
type opaSidecar struct {
	url  string
	logs *syncBuffer
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startOPA writes config as the config file and runs OPA until the test ends.
func startOPA(t *testing.T, bin string, config map[string]any) *opaSidecar {
	t.Helper()
	raw, err := json.MarshalIndent(config, "", "  ") // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	o := &opaSidecar{url: "http://" + addr, logs: &syncBuffer{}}
	cmd := exec.Command(bin, "run", "--server", "--addr", addr, "--config-file", file, "--log-level", "error")
	cmd.Stdout, cmd.Stderr = o.logs, o.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("opa at %s logged:\n%s", addr, o.logs.String())
		}
	})
	return o
}

func (o *opaSidecar) get(path string) (int, []byte, error) {
	resp, err := http.Get(o.url + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// healthy reports whether OPA answers 200 to /health?bundles=true.
func (o *opaSidecar) healthy() bool {
	status, _, err := o.get("/health?bundles=true")
	return err == nil && status == 200
}

// decide asks OPA for data.knaight.policy.decision.
func (o *opaSidecar) decide(t *testing.T, in policy.Input) (policy.Decision, error) {
	t.Helper()
	return bundletest.AskOPA(http.DefaultClient, o.url, &in)
}

// revision is the revision of OPA's knaight bundle, "" when none.
func (o *opaSidecar) revision() string {
	status, raw, err := o.get("/v1/data/system/bundles")
	if err != nil || status != 200 {
		return ""
	}
	var out struct {
		Result map[string]struct {
			Manifest struct {
				Revision string `json:"revision"`
			} `json:"manifest"`
		} `json:"result"`
	}
	if json.Unmarshal(raw, &out) != nil {
		return ""
	}
	return out.Result["knaight"].Manifest.Revision
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// activeSet compiles the policies of the bundle the manager serves OPA.
func (e *env) activeSet(token string) (*policy.Set, string) {
	e.t.Helper()
	served := e.mustOPA(200, "GET", "/api/v1/opa/bundles/acme/production", token, nil, nil)
	b, err := e.readBundle(served.Raw)
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := json.Marshal(b.Data["knaight"].(map[string]any)["policies"])
	if err != nil {
		e.t.Fatal(err)
	}
	var models []policy.Policy
	if err := json.Unmarshal(raw, &models); err != nil {
		e.t.Fatal(err)
	}
	set, err := policy.Compile(models)
	if err != nil {
		e.t.Fatal(err)
	}
	return set, b.Manifest.Revision
}

// tarFile returns one file of a bundle tarball.
func tarFile(t *testing.T, tarball []byte, name string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("no %s in the tarball", name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "/") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

func TestRealOPASidecarPullsSignedBundles(t *testing.T) {
	bin := buildOPA(t)
	e := newEnv(t)
	e.activeBundle("v1")
	key := e.must(200, "GET", bundlesPath+"/signing-key", e.admin, nil)
	kid, pem := key.str("keyId"), key.str("publicKey")
	if kid == "" || !strings.Contains(pem, "PUBLIC KEY") || key.str("algorithm") != "ES256" {
		t.Fatalf("signing key: %s", key.Raw)
	}
	auditor := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "opa", "role": "auditor"}).str("token")

	config := func(url string, token string) map[string]any {
		svc := map[string]any{"url": url}
		if token != "" {
			svc["credentials"] = map[string]any{"bearer": map[string]any{"token": token}}
		}
		return map[string]any{
			"services": map[string]any{"knaight": svc},
			"bundles": map[string]any{"knaight": map[string]any{
				"service": "knaight", "resource": "bundles/acme/production",
				"polling": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 2, "long_polling_timeout_seconds": 10},
				"signing": map[string]any{"keyid": kid},
			}},
			"keys": map[string]any{kid: map[string]any{"algorithm": "ES256", "key": pem}},
		}
	}
	start := time.Now()
	opa := startOPA(t, bin, config(e.srv.URL+"/api/v1/opa", auditor))
	waitFor(t, 60*time.Second, "OPA never activated the bundle", opa.healthy)
	t.Logf("OPA healthy after %v", time.Since(start).Round(time.Millisecond))
	if rev := opa.revision(); rev != "v1" {
		t.Fatalf("OPA revision %q, want v1", rev)
	}

	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	observer := policy.Input{RoleTemplate: "observer", Environment: "production", TrustLevel: policy.L2, LoA: 2,
		Scopes: []string{"mcp:read"}, Method: "tools/list", Time: at}
	inputs := []policy.Input{
		observer,
		{RoleTemplate: "privileged", Environment: "production", TrustLevel: policy.L1, LoA: 1, Scopes: []string{"mcp:read"}, Method: "tools/call", Name: "x", Time: at},
		{RoleTemplate: "observer", Environment: "production", TrustLevel: policy.L5, LoA: 4, Scopes: []string{"mcp:read"}, Method: "tools/call", Name: "deploy", Time: at},
		{RoleTemplate: "nobody", Environment: "production", TrustLevel: policy.L3, LoA: 2, Method: "initialize", Time: at},
	}
	compare := func(set *policy.Set) map[string]policy.Decision {
		t.Helper()
		got := map[string]policy.Decision{}
		for _, in := range inputs {
			want := set.Evaluate(&in)
			d, err := opa.decide(t, in)
			if err != nil {
				t.Fatalf("decide %+v: %v", in, err)
			}
			if d.Allow != want.Allow || d.Reason != want.Reason || d.Message != want.Message {
				t.Errorf("input %+v:\n OPA %+v\n Go  %+v", in, d, want)
			}
			got[in.RoleTemplate+" "+in.Method] = d
		}
		return got
	}
	set1, rev1 := e.activeSet(auditor)
	if rev1 != "v1" {
		t.Fatalf("served revision %q", rev1)
	}
	d1 := compare(set1)
	if d := d1["observer tools/list"]; !d.Allow || d.Reason != policy.ReasonAllowed {
		t.Fatalf("observer tools/list under v1: %+v", d)
	}
	if d := d1["privileged tools/call"]; d.Allow || d.Reason != policy.ReasonTrustBelowThreshold {
		t.Fatalf("privileged at L1 under v1: %+v", d)
	}

	// v2 raises the observer's production trust level to L3: the L2 observer
	// is denied once OPA has it.
	var obs map[string]any
	for _, x := range e.must(200, "GET", "/api/v1/policies?environment=production", e.admin, nil).get("items").([]any) {
		if p := x.(map[string]any); p["roleTemplate"] == "observer" {
			obs = p
		}
	}
	if obs == nil {
		t.Fatal("no observer policy in production")
	}
	body := map[string]any{"minTrustLevel": "L3"}
	for _, k := range []string{"roleTemplateId", "environment", "minLoa", "requiredScopes", "allowedEndpoints", "constraints"} {
		if v, ok := obs[k]; ok && v != nil {
			body[k] = v
		}
	}
	e.must(200, "PUT", "/api/v1/policies/"+obs["id"].(string), e.admin, body)
	activated := time.Now()
	e.activeBundle("v2")
	waitFor(t, 30*time.Second, "OPA never picked up v2", func() bool {
		d, err := opa.decide(t, observer)
		return err == nil && d.Reason == policy.ReasonTrustBelowThreshold && opa.revision() == "v2"
	})
	t.Logf("OPA decided with v2 %v after the activation", time.Since(activated).Round(time.Millisecond))
	set2, rev2 := e.activeSet(auditor)
	if rev2 != "v2" {
		t.Fatalf("served revision %q", rev2)
	}
	if d := compare(set2)["observer tools/list"]; d.Allow || d.Reason != policy.ReasonTrustBelowThreshold {
		t.Fatalf("observer at L2 under v2: %+v", d)
	}

	// A tampered copy of the signed bundle (one byte of data.json changed)
	// served by a fixture of our own is never activated.
	signed := e.mustOPA(200, "GET", "/api/v1/opa/bundles/acme/production", auditor, nil, nil).Raw
	data := tarFile(t, signed, "data.json")
	i := bytes.Index(data, []byte(`"L`))
	if i < 0 || data[i+2] < '1' || data[i+2] > '5' {
		t.Fatalf("no trust level in data.json: %s", data)
	}
	altered := bytes.Clone(data)
	if altered[i+2] == '1' {
		altered[i+2] = '2'
	} else {
		altered[i+2] = '1'
	}
	tampered := rewrite(t, signed, "data.json", altered)
	if _, err := e.readBundle(tampered); err == nil {
		t.Fatal("the tampered bundle verified")
	}
	fixture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bundles/acme/production" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", opaBundleMedia)
		w.Write(tampered)
	}))
	t.Cleanup(fixture.Close)
	bad := startOPA(t, bin, config(fixture.URL, ""))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if bad.healthy() {
			t.Fatalf("OPA activated a tampered bundle; logs:\n%s", bad.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if logs := bad.logs.String(); !strings.Contains(logs, "Bundle load failed") || !strings.Contains(logs, "data.json: digest mismatch") {
		t.Fatalf("OPA did not log the failed digest check:\n%s", logs)
	} else {
		t.Logf("tampered bundle rejected: %s", lineWith(logs, "digest mismatch"))
	}
	if rev := bad.revision(); rev != "" {
		t.Fatalf("tampered OPA has revision %q", rev)
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

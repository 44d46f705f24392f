package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/knaight/knaight/manager/internal/api"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/notify"
	"github.com/knaight/knaight/manager/internal/orgs"
	"github.com/knaight/knaight/manager/internal/seal"
	"github.com/knaight/knaight/testenv/postgres"
)

func TestMain(m *testing.M) { os.Exit(postgres.Main(m)) }

// migrated is a template database at the current schema; every test clones it.
var migrated = postgres.WithTemplate("knaight_manager_api", func(ctx context.Context, url string) error {
	_, _, err := db.Migrate(ctx, url)
	return err
})

// clock is a test clock that only moves when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer collects the server's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

const (
	testKEK       = "q83vEjRWeJBCgYqKzN7vEjRWeJBCgYqKzN7vEjRWeJA="
	testBootstrap = "bootstrap-token-for-tests-0123456789abcdef"
)

// env is one manager on its own fresh database, with a bootstrapped
// organization and its admin key.
type env struct {
	t       *testing.T
	url     string
	pool    *pgxpool.Pool
	srv     *httptest.Server
	api     *api.Server
	clock   *clock
	logs    *syncBuffer
	org     orgs.Organization
	admin   string
	bodies  *syncBuffer // every response body, to check for leaked secrets
	changes *notify.Hub
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := newBareEnv(t, testBootstrap)
	e.org, e.admin = e.newOrg("acme")
	return e
}

// newBareEnv is a manager on an empty database, with HTTP bootstrap enabled
// by bootstrapToken (disabled when empty).
func newBareEnv(t *testing.T, bootstrapToken string) *env {
	t.Helper()
	e := &env{t: t, url: postgres.NewDatabase(t, migrated), logs: &syncBuffer{}, bodies: &syncBuffer{},
		clock: &clock{now: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)}}
	e.start(bootstrapToken)
	return e
}

// replica is a second manager on e's database, with its own pool, change
// listener and HTTP server, sharing e's clock, logs, organization and key:
// what a load balancer in front of two replicas would reach.
func (e *env) replica() *env {
	e.t.Helper()
	r := &env{t: e.t, url: e.url, logs: e.logs, bodies: e.bodies, clock: e.clock, org: e.org, admin: e.admin}
	r.start("")
	return r
}

// start opens the manager's pool, runs its change listener and serves its
// API until the test ends.
func (e *env) start(bootstrapToken string) {
	t := e.t
	pool, err := db.Open(t.Context(), e.url, 60)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.pool = pool
	kek, err := seal.ParseKEK(testKEK)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(kek)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.changes = notify.New(log)
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.changes.Run(ctx, func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, e.url) })
	}()
	t.Cleanup(func() { stop(); <-done })
	// The server listens before the API exists, so the issuer is its real URL.
	e.srv = httptest.NewUnstartedServer(nil)
	handler, s := api.New(api.Config{
		Pool: pool, Sealer: sealer, Log: log,
		Now: e.clock.Now, Issuer: "http://" + e.srv.Listener.Addr().String(), BootstrapToken: bootstrapToken, KeyOverlap: time.Hour, WebhookWindow: 5 * time.Minute,
		Changes: e.changes,
	})
	e.api = s
	e.srv.Config.Handler = handler
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	// Wait for the listener, so that no change of the test is missed.
	for start := time.Now(); !e.changes.Listening(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the change listener did not connect")
		}
	}
}

// newOrg creates an organization the way the CLI does and returns its
// admin token.
func (e *env) newOrg(slug string) (orgs.Organization, string) {
	e.t.Helper()
	b, err := orgs.Bootstrap(e.t.Context(), e.pool, orgs.New{Name: strings.ToUpper(slug), Slug: slug, ANSDomain: slug + ".agents.example"}, "admin", false, "test", e.clock.Now())
	if err != nil {
		e.t.Fatalf("bootstrap %s: %v", slug, err)
	}
	return b.Organization, b.Token
}

// response is a decoded HTTP response.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

// str returns the string at a dotted path of the body ("ans.status").
func (r response) str(path string) string {
	v := r.get(path)
	s, _ := v.(string)
	return s
}

func (r response) get(path string) any {
	var cur any = r.Body
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// do sends a request; body may be nil, a string (sent as is) or a value
// (sent as JSON).
func (e *env) do(method, path, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.bodies.Write(raw)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &r.Body); err != nil && raw[0] == '{' {
			e.t.Fatalf("%s %s: response is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

// must sends a request and fails the test unless it answers want.
func (e *env) must(want int, method, path, token string, body any) response {
	e.t.Helper()
	r := e.do(method, path, token, body)
	if r.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d\n%s", method, path, r.Status, want, r.Raw)
	}
	return r
}

// problem checks an RFC 9457 response: status, content type, and that one
// of its errors is at location with a message containing msg.
func (e *env) problem(r response, status int, location, msg string) {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d\n%s", r.Status, status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		e.t.Fatalf("content type %q, want application/problem+json\n%s", ct, r.Raw)
	}
	if got := int(r.Body["status"].(float64)); got != status {
		e.t.Fatalf("problem status %d, want %d", got, status)
	}
	if location == "" {
		return
	}
	errs, _ := r.Body["errors"].([]any)
	for _, x := range errs {
		d := x.(map[string]any)
		if d["location"] == location && strings.Contains(d["message"].(string), msg) {
			return
		}
	}
	e.t.Fatalf("no error at %q containing %q in\n%s", location, msg, r.Raw)
}

// templateID creates a role template and returns its id.
func (e *env) templateID(name string) string {
	e.t.Helper()
	return e.must(201, "POST", "/api/v1/role-templates", e.admin, map[string]any{"name": name}).str("id")
}

// registerAgent registers an agent (ACTIVE) and returns the response.
func (e *env) registerAgent(name, templateID, envName string) response {
	e.t.Helper()
	return e.must(201, "POST", "/api/v1/agents", e.admin, map[string]any{
		"name": name, "roleTemplateId": templateID, "environment": envName, "activate": true,
	})
}

func parseUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatalf("not a uuid: %q", s)
	}
	return id
}

// decodeSegment decodes one base64url segment of a JWT.
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

func decodeInto(t *testing.T, raw []byte, v any) {
	t.Helper()
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("response is not JSON: %v\n%s", err, raw)
		}
	}
}

func sha256hex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// patched returns base with changes applied: a nil value removes the key.
// Bad-input rows are written as changes to one good body.
func patched(base, changes map[string]any) map[string]any {
	for k, v := range changes {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	return base
}

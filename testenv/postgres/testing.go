package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDatabaseURLEnv names the environment variable that, when set, makes
// Main use that existing server (a postgres:// superuser URL) instead of
// starting a throwaway one.
const TestDatabaseURLEnv = "KNAIGHT_TEST_DATABASE_URL"

// mainServer is the server set up by Main for NewDatabase.
var mainServer atomic.Pointer[Server]

// procToken makes database names unique to this process, so test binaries
// sharing one server (KNAIGHT_TEST_DATABASE_URL) do not collide.
var procToken = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

var dbSeq atomic.Uint64

// Main runs a package's tests against a PostgreSQL server; call it from
// TestMain as os.Exit(postgres.Main(m)). It connects to
// $KNAIGHT_TEST_DATABASE_URL if set, else starts a throwaway cluster, runs
// the tests, and stops the server. If no server can be had it prints why to
// stderr and returns 1: the tests fail, they are never skipped. On SIGINT or
// SIGTERM it stops the server before exiting.
func Main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var srv *Server
	var err error
	if u := os.Getenv(TestDatabaseURLEnv); u != "" {
		srv, err = Connect(ctx, u)
	} else {
		srv, err = Start(ctx, Options{})
	}
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: no PostgreSQL server for the tests: %v\n", err)
		return 1
	}
	mainServer.Store(srv)
	defer mainServer.Store(nil)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "postgres: %v: stopping the test server\n", sig)
			if err := srv.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			os.Exit(1)
		case <-done:
		}
	}()

	code := m.Run()

	signal.Stop(sigs)
	close(done)
	if srv.r == nil {
		// A shared server outlives us: drop our templates.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, db := range builtTemplates() {
			if err := srv.DropDatabase(ctx, db); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
		cancel()
	}
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// DBOption configures NewDatabase.
type DBOption func(*dbConfig)

type dbConfig struct {
	template *templateSpec
}

type templateSpec struct {
	name  string
	setup func(ctx context.Context, url string) error
}

// WithTemplate makes NewDatabase clone a template database instead of
// creating an empty one. The first use in the process creates the template
// (named after name, plus a per-process suffix) and runs setup against its
// URL, e.g. to apply migrations; every later NewDatabase with the same name
// clones it with CREATE DATABASE ... TEMPLATE, which is fast. setup runs
// once per name and process even if it fails: its error is remembered and
// fails every test that asks for the template. The setup func of the first
// use wins. Sessions that setup leaves open on the template are terminated
// before cloning, and the template then refuses connections.
func WithTemplate(name string, setup func(ctx context.Context, url string) error) DBOption {
	return func(c *dbConfig) { c.template = &templateSpec{name: name, setup: setup} }
}

// NewDatabase creates a fresh, uniquely named database on the server set up
// by Main and returns its URL; the database is dropped when the test ends.
// It fails the test if Main is not in use or the database cannot be made.
func NewDatabase(t testing.TB, opts ...DBOption) string {
	t.Helper()
	srv := mainServer.Load()
	if srv == nil {
		t.Fatalf("postgres.NewDatabase: no server: call os.Exit(postgres.Main(m)) from TestMain")
	}
	var cfg dbConfig
	for _, o := range opts {
		o(&cfg)
	}
	template := ""
	if cfg.template != nil {
		var err error
		if template, err = cfg.template.ensure(srv); err != nil {
			t.Fatalf("postgres.NewDatabase: %v", err)
		}
	}
	name := uniqueName("t_", t.Name())
	if err := srv.CreateDatabase(t.Context(), name, template); err != nil {
		t.Fatalf("postgres.NewDatabase: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.DropDatabase(ctx, name); err != nil {
			t.Errorf("postgres.NewDatabase cleanup: %v", err)
		}
	})
	return srv.URL(name)
}

// templateState is the once-per-process build of one template.
type templateState struct {
	once  sync.Once
	db    string
	err   error
	built atomic.Bool
}

var (
	templatesMu sync.Mutex
	templates   = map[string]*templateState{}
)

func builtTemplates() []string {
	templatesMu.Lock()
	defer templatesMu.Unlock()
	var dbs []string
	for _, st := range templates {
		if st.built.Load() {
			dbs = append(dbs, st.db)
		}
	}
	return dbs
}

// ensure builds the template on first use and returns its database name.
func (ts *templateSpec) ensure(srv *Server) (string, error) {
	templatesMu.Lock()
	st := templates[ts.name]
	if st == nil {
		st = &templateState{}
		templates[ts.name] = st
	}
	templatesMu.Unlock()
	st.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		st.db = uniqueName("", ts.name)
		st.built.Store(true)
		if err := srv.buildTemplate(ctx, st.db, ts.setup); err != nil {
			st.err = fmt.Errorf("template %q: %w", ts.name, err)
		}
	})
	return st.db, st.err
}

// buildTemplate creates db, runs setup on it and makes it ready to be
// cloned: no sessions left and no new ones allowed.
func (s *Server) buildTemplate(ctx context.Context, db string, setup func(ctx context.Context, url string) error) error {
	if err := s.DropDatabase(ctx, db); err != nil {
		return err
	}
	if err := s.CreateDatabase(ctx, db, ""); err != nil {
		return err
	}
	if setup != nil {
		if err := setup(ctx, s.URL(db)); err != nil {
			_ = s.DropDatabase(ctx, db)
			return fmt.Errorf("setup: %w", err)
		}
	}
	lit := "'" + strings.ReplaceAll(db, "'", "''") + "'"
	return s.admin(ctx,
		"ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" WITH ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "+lit+" AND pid <> pg_backend_pid()",
	)
}

// uniqueName returns prefix + a sanitized form of base + a process-unique
// suffix, within PostgreSQL's 63-byte identifier limit.
func uniqueName(prefix, base string) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.ToLower(base) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			underscore = false
		} else if !underscore && b.Len() > 0 {
			b.WriteByte('_')
			underscore = true
		}
	}
	suffix := fmt.Sprintf("_%s_%d", procToken, dbSeq.Add(1))
	name := strings.TrimRight(b.String(), "_")
	if max := 63 - len(prefix) - len(suffix); len(name) > max {
		name = strings.TrimRight(name[:max], "_")
	}
	return prefix + name + suffix
}

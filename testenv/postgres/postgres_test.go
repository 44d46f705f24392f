package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const orphanEnv = "KNAIGHT_PG_TEST_ORPHAN"

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) != "" {
		orphan()
		return
	}
	os.Exit(Main(m))
}

// orphan is the body of the helper process of TestServerDiesWithProcess: it
// starts a server, says where, and waits to be killed.
func orphan() {
	srv, err := Start(context.Background(), Options{})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(srv.AdminURL())
	fmt.Println(srv.clusterDir)
	time.Sleep(time.Hour)
}

// sharedDir returns a fresh directory that the postgres system user can
// reach when the tests run as root. t.TempDir is not usable for that: it
// lives in a 0700 directory of root's.
func sharedDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(os.TempDir(), "knaight-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func dbExists(t *testing.T, srv *Server, name string) bool {
	t.Helper()
	conn := connect(t, srv.AdminURL())
	return queryInt(t, conn, "SELECT count(*) FROM pg_database WHERE datname = $1", name) == 1
}

func TestStartCreateQueryDropStop(t *testing.T) {
	ctx := t.Context()
	var log syncBuffer
	began := time.Now()
	srv, err := Start(ctx, Options{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %v at %s", time.Since(began).Round(time.Millisecond), srv.AdminURL())
	t.Cleanup(func() { _ = srv.Stop() })
	dir := srv.clusterDir
	if _, err := os.Stat(filepath.Join(srv.dataDir, "PG_VERSION")); err != nil {
		t.Fatalf("no cluster: %v", err)
	}
	if !strings.HasPrefix(srv.AdminURL(), "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(srv.AdminURL(), "/postgres?sslmode=disable") {
		t.Errorf("AdminURL = %q", srv.AdminURL())
	}

	if err := srv.CreateDatabase(ctx, "app-db", ""); err != nil {
		t.Fatal(err)
	}
	url := srv.URL("app-db")
	if want := strings.Replace(srv.AdminURL(), "/postgres?", "/app-db?", 1); url != want {
		t.Errorf("URL = %q, want %q", url, want)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var db, user string
	var settings string
	if err := conn.QueryRow(ctx, `SELECT current_database(), current_user,
		current_setting('fsync') || ',' || current_setting('max_connections') || ',' || current_setting('listen_addresses')`).Scan(&db, &user, &settings); err != nil {
		t.Fatal(err)
	}
	if db != "app-db" || user != "postgres" || settings != "off,200,127.0.0.1" {
		t.Errorf("got db=%q user=%q settings=%q", db, user, settings)
	}
	// DropDatabase disconnects sessions (WITH (FORCE)).
	if err := srv.DropDatabase(ctx, "app-db"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if dbExists(t, srv, "app-db") {
		t.Error("app-db still exists after DropDatabase")
	}
	if err := srv.DropDatabase(ctx, "app-db"); err != nil {
		t.Errorf("dropping a missing database: %v", err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s not removed: %v", dir, err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := ping(ctx, srv.AdminURL()); err == nil {
		t.Error("server still answers after Stop")
	}
	if !strings.Contains(string(log.Bytes()), "database system is ready to accept connections") {
		t.Errorf("Options.Log got no server log:\n%s", log.Bytes())
	}
}

func TestPersistentDir(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(sharedDir(t), "pgdata")

	srv, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	if err := srv.CreateDatabase(ctx, "dev", ""); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, srv.URL("dev"))
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Fatalf("data dir not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres.log")); err != nil {
		t.Errorf("no server log in the data dir: %v", err)
	}

	began := time.Now()
	srv2, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() { _ = srv2.Stop() })
	var v string
	if err := connect(t, srv2.URL("dev")).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("after restart: v=%q err=%v", v, err)
	}
	if err := srv2.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Errorf("data dir not kept after second Stop: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := t.Context()

	t.Run("port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		before := tempClusters(t)
		srv, err := Start(ctx, Options{Port: l.Addr().(*net.TCPAddr).Port})
		if err == nil {
			_ = srv.Stop()
			t.Fatal("Start succeeded on a port in use")
		}
		t.Log(err)
		if !strings.Contains(err.Error(), "did not start") || !portTaken(err.Error()) {
			t.Errorf("error lacks what failed or the server log: %v", err)
		}
		for _, d := range tempClusters(t) {
			if !slices.Contains(before, d) {
				t.Errorf("temp cluster dir %s left behind", d)
			}
		}
	})

	t.Run("free port taken meanwhile", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		taken := l.Addr().(*net.TCPAddr).Port
		orig := freePort
		t.Cleanup(func() { freePort = orig })
		calls := 0
		freePort = func() (int, error) {
			if calls++; calls == 1 {
				return taken, nil
			}
			return orig()
		}
		srv, err := Start(ctx, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop()
		if calls != 2 || strings.Contains(srv.AdminURL(), fmt.Sprintf(":%d/", taken)) {
			t.Errorf("calls=%d url=%s: no retry on another port", calls, srv.AdminURL())
		}
		if err := ping(ctx, srv.AdminURL()); err != nil {
			t.Error(err)
		}
	})

	t.Run("dir not a cluster", func(t *testing.T) {
		dir := sharedDir(t)
		if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		srv, err := Start(ctx, Options{Dir: dir})
		if err == nil {
			_ = srv.Stop()
			t.Fatal("Start succeeded on a non-empty non-cluster dir")
		}
		t.Log(err)
		if !strings.Contains(err.Error(), "initdb") || !strings.Contains(err.Error(), "not empty") {
			t.Errorf("error lacks what failed or initdb's output: %v", err)
		}
	})

	if os.Geteuid() == 0 {
		t.Run("dir unreachable by postgres user", func(t *testing.T) {
			_, err := Start(ctx, Options{Dir: filepath.Join(t.TempDir(), "pgdata")})
			if err == nil || !strings.Contains(err.Error(), "cannot be searched") {
				t.Errorf("want an error naming the unreachable directory, got %v", err)
			}
		})
	}
}

func tempClusters(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConnect(t *testing.T) {
	ctx := t.Context()
	shared := mainServer.Load()
	srv, err := Connect(ctx, shared.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.URL("other"), shared.URL("other"); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if err := srv.CreateDatabase(ctx, "via_connect", ""); err != nil {
		t.Fatal(err)
	}
	if !dbExists(t, shared, "via_connect") {
		t.Error("database not created")
	}
	if err := srv.DropDatabase(ctx, "via_connect"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, shared.AdminURL()); err != nil {
		t.Errorf("Stop of a Connect-ed server stopped it: %v", err)
	}
	if _, err := Connect(ctx, "host=127.0.0.1 user=postgres"); err == nil {
		t.Error("Connect accepted a non-URL")
	}
}

func TestNewDatabase(t *testing.T) {
	var names []string
	for range 2 {
		conn := connect(t, NewDatabase(t))
		var name string
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), "CREATE TABLE t (id int)"); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if names[0] == names[1] || !strings.HasPrefix(names[0], "t_testnewdatabase_") {
		t.Errorf("names = %v", names)
	}

	// The databases are dropped when the test that made them ends.
	var inner string
	t.Run("sub", func(t *testing.T) {
		u := NewDatabase(t)
		inner = u[strings.LastIndex(u, "/")+1 : strings.Index(u, "?")]
	})
	if dbExists(t, mainServer.Load(), inner) {
		t.Errorf("%s not dropped at the end of its test", inner)
	}
}

func TestTemplate(t *testing.T) {
	var setups atomic.Int32
	setup := func(ctx context.Context, url string) error {
		setups.Add(1)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		// Deliberately left open: NewDatabase must cope with it.
		_, err = conn.Exec(ctx, "CREATE TABLE widgets (id serial PRIMARY KEY, name text); INSERT INTO widgets (name) VALUES ('seed')")
		return err
	}
	for i := range 12 {
		t.Run(fmt.Sprintf("clone_%d", i), func(t *testing.T) {
			t.Parallel()
			conn := connect(t, NewDatabase(t, WithTemplate("widgets", setup)))
			ctx := t.Context()
			if n := queryInt(t, conn, "SELECT count(*) FROM widgets WHERE name = 'seed'"); n != 1 {
				t.Errorf("seed rows = %d", n)
			}
			if _, err := conn.Exec(ctx, "INSERT INTO widgets (name) VALUES ($1)", t.Name()); err != nil {
				t.Fatal(err)
			}
			// Clones are independent of each other.
			if n := queryInt(t, conn, "SELECT count(*) FROM widgets"); n != 2 {
				t.Errorf("rows = %d, want 2", n)
			}
		})
	}
	t.Cleanup(func() {
		if n := setups.Load(); n != 1 {
			t.Errorf("setup ran %d times, want 1", n)
		}
	})
}

func TestTemplateSetupErrorRemembered(t *testing.T) {
	srv := mainServer.Load()
	var calls atomic.Int32
	spec := &templateSpec{name: "broken", setup: func(ctx context.Context, url string) error {
		calls.Add(1)
		return errors.New("migration 3 failed")
	}}
	for range 2 {
		if _, err := spec.ensure(srv); err == nil || !strings.Contains(err.Error(), "migration 3 failed") {
			t.Errorf("ensure error = %v", err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("setup ran %d times, want 1", calls.Load())
	}
}

func TestUniqueName(t *testing.T) {
	long := strings.Repeat("Abc/", 40)
	for _, in := range []string{"TestX/sub_case#01", long, "", "é"} {
		got := uniqueName("t_", in)
		if len(got) > 63 || strings.Trim(got, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Errorf("uniqueName(%q) = %q", in, got)
		}
	}
	if a, b := uniqueName("t_", "x"), uniqueName("t_", "x"); a == b {
		t.Errorf("not unique: %q", a)
	}
	if got := uniqueName("t_", "TestX/sub_case#01"); !strings.HasPrefix(got, "t_testx_sub_case_01_") {
		t.Errorf("got %q", got)
	}
}

// A process killed without calling Stop must not leak its server, and the
// next Start sweeps its directory away.
func TestServerDiesWithProcess(t *testing.T) {
	ctx := t.Context()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "postgres://") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper did not start a server: %q", lines)
	}
	url, dir := lines[0], lines[1]
	if err := ping(ctx, url); err != nil {
		t.Fatalf("helper's server not up: %v", err)
	}
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _, _ := strings.Cut(string(pidFile), "\n")
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	// The postmaster goes away, down to its process table entry: once
	// orphaned, it is reaped by init.
	killed := time.Now()
	for ping(ctx, url) == nil || postmasterAlive(filepath.Join(dir, "data")) || exists("/proc/"+pid) {
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("server %s (pid %s) still there after its process was killed", url, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("server gone %v after its process was killed", time.Since(killed).Round(time.Millisecond))

	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("expected the killed process's dir to remain: %v", err)
	}
	sweepStale()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("sweep removed a recent dir: %v", err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	sweepStale()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale dir %s not swept: %v", dir, err)
	}
	// A live server's directory is never swept.
	live := mainServer.Load()
	if live.clusterDir == "" { // Main connected to an existing server
		if live, err = Start(ctx, Options{}); err != nil {
			t.Fatal(err)
		}
		defer live.Stop()
	}
	if err := os.Chtimes(live.clusterDir, old, old); err != nil {
		t.Fatal(err)
	}
	sweepStale()
	if err := ping(ctx, live.AdminURL()); err != nil {
		t.Fatalf("sweep broke a live server: %v", err)
	}
	if _, err := os.Stat(live.clusterDir); err != nil {
		t.Fatalf("sweep removed a live server's dir: %v", err)
	}
}

const blockEnv = "KNAIGHT_PG_TEST_BLOCK"

// TestHelperBlock is the body of the helper process of
// TestMainStopsServerOnSignal; run normally it does nothing.
func TestHelperBlock(t *testing.T) {
	if os.Getenv(blockEnv) == "" {
		return
	}
	srv := mainServer.Load()
	fmt.Println(srv.AdminURL())
	fmt.Println(srv.clusterDir)
	time.Sleep(time.Hour)
}

// Ctrl-C during a test run stops Main's server and removes its directory.
func TestMainStopsServerOnSignal(t *testing.T) {
	ctx := t.Context()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperBlock$")
	// The helper must start its own server, whatever this run uses.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, TestDatabaseURLEnv+"=")
	}), blockEnv+"=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	defer func() {
		if t.Failed() {
			t.Logf("helper stderr:\n%s", stderr.Bytes())
		}
	}()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "postgres://") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper did not report its server: %q", lines)
	}
	url, dir := lines[0], lines[1]
	if err := ping(ctx, url); err != nil {
		t.Fatalf("helper's server not up: %v", err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("helper exit: %v, want exit status 1", err)
	}
	if err := ping(ctx, url); err == nil {
		t.Error("server still answers after SIGINT")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster dir %s not removed: %v", dir, err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

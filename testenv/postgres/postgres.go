// Package postgres is the throwaway PostgreSQL server used by Knaight's tests
// and by `make run`.
//
// Start runs a private cluster from the machine's own PostgreSQL server
// binaries (no containers): initdb into a temporary or given directory, then
// postgres listening only on 127.0.0.1 with durability switched off, which
// starts in about two seconds. Connect wraps a server that already runs.
//
// For tests, call Main from TestMain and NewDatabase from each test:
//
//	func TestMain(m *testing.M) { os.Exit(postgres.Main(m)) }
//
//	func TestX(t *testing.T) {
//		url := postgres.NewDatabase(t, postgres.WithTemplate("migrated", migrate))
//		...
//	}
//
// The server binaries are looked up in $KNAIGHT_PG_BIN, else next to initdb
// on PATH, else in the highest /usr/lib/postgresql/*/bin. When the process
// runs as root, the binaries run as the "postgres" system user (initdb
// refuses root), so the cluster directory must be reachable by that user.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Options configures Start.
type Options struct {
	// Dir, if set, is the cluster's data directory, kept after Stop
	// (persistent dev data). It is created and initialized when it does
	// not hold a cluster yet. If empty, a temporary directory is used and
	// removed on Stop.
	Dir string
	// Port is the TCP port on 127.0.0.1 to listen on; 0 picks a free one.
	Port int
	// Log receives the server's log output, written from another goroutine
	// until Stop returns. If nil, the log is appended to postgres.log in the
	// cluster directory (Dir itself when Dir is set).
	Log io.Writer
}

// Server is a running PostgreSQL server: one started by Start, or an
// existing one wrapped by Connect.
type Server struct {
	adminURL string
	base     *url.URL // adminURL parsed; URL swaps its database

	// Fields below are unset for a server wrapped by Connect.
	r          *runner
	clusterDir string // working directory, socket directory, log file
	dataDir    string
	removeDir  bool     // clusterDir is ours: remove it on Stop
	lock       *os.File // flock on clusterDir/.lock while it is in use
	logFile    *os.File
	cmd        *exec.Cmd
	exited     chan struct{} // closed once the server process has exited
	waitErr    error         // the process's exit status, set before exited is closed
	tail       *tailBuffer   // end of the current server process's output

	cloneMu  sync.Mutex // serializes CREATE DATABASE ... TEMPLATE
	stopOnce sync.Once
	stopErr  error
}

const (
	// startTimeout bounds how long Start waits for the server to accept
	// connections, on top of the caller's context.
	startTimeout = 60 * time.Second
	// startAttempts is how often Start tries a new free port when the one
	// it picked was taken in the meantime.
	startAttempts = 5
	// logLines is how many lines of server output error messages carry.
	logLines = 30
)

// Start starts a throwaway PostgreSQL server from the machine's binaries and
// waits until it accepts connections. If opts.Dir already holds a cluster
// (PG_VERSION exists), that cluster is started as is; otherwise initdb
// creates one first. The superuser is "postgres" with trust authentication;
// the server listens on 127.0.0.1 only, with max_connections=200 and
// durability off (fsync, synchronous_commit and full_page_writes off,
// wal_level=minimal): fine for tests and dev data, not for anything else.
//
// The caller must call Stop. If the process dies without it, the server
// shuts down by itself (parent-death signal) and a later Start removes the
// temporary directory left behind.
func Start(ctx context.Context, opts Options) (*Server, error) {
	r, err := newRunner()
	if err != nil {
		return nil, err
	}
	s := &Server{r: r}
	if err := s.prepare(ctx, opts.Dir); err != nil {
		s.removeCluster()
		return nil, err
	}
	if err := s.start(ctx, opts); err != nil {
		s.removeCluster()
		return nil, err
	}
	return s, nil
}

// prepare creates the cluster directory and runs initdb if needed.
func (s *Server) prepare(ctx context.Context, dir string) error {
	if dir == "" {
		sweepStale()
		base, err := os.MkdirTemp(os.TempDir(), tempPrefix)
		if err != nil {
			return fmt.Errorf("postgres: create temp dir: %w", err)
		}
		s.clusterDir, s.dataDir, s.removeDir = base, filepath.Join(base, "data"), true
		if s.lock, err = lockDir(base); err != nil {
			return err
		}
		// 0755 so the postgres user (when we are root) can reach the socket
		// and data directories; the data directory itself is 0700.
		if err := s.r.prepareDir(base, 0o755); err != nil {
			return err
		}
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		s.clusterDir, s.dataDir = abs, abs
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return fmt.Errorf("postgres: create data dir: %w", err)
		}
		if initialized(abs) {
			return s.r.checkTraversable(abs)
		}
		if err := s.r.prepareDir(abs, 0o700); err != nil {
			return err
		}
	}
	if initialized(s.dataDir) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := s.r.run(ctx, s.clusterDir, "initdb",
		"-D", s.dataDir, "-U", pgUser, "-A", "trust", "--no-sync",
		"-E", "UTF8", "--locale=C")
	if err != nil {
		return fmt.Errorf("postgres: initdb -D %s failed: %w\ninitdb output (tail):\n%s", s.dataDir, err, lastLines(string(out), logLines))
	}
	return nil
}

func initialized(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "PG_VERSION"))
	return err == nil
}

// start runs the server process and waits for it, trying other free ports
// if the chosen one turns out to be taken.
func (s *Server) start(ctx context.Context, opts Options) error {
	var dest io.Writer = opts.Log
	if dest == nil {
		f, err := os.OpenFile(filepath.Join(s.clusterDir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("postgres: open server log: %w", err)
		}
		s.logFile, dest = f, f
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				break
			}
		}
		if err = s.launch(port, dest); err != nil {
			break
		}
		if err = s.waitReady(ctx); err == nil {
			return nil
		}
		log := s.tail.String()
		_ = s.shutdown()
		err = fmt.Errorf("postgres: server in %s (port %d) did not start: %w\nserver log (tail):\n%s", s.dataDir, port, err, lastLines(log, logLines))
		if opts.Port != 0 || ctx.Err() != nil || !portTaken(log) {
			break
		}
	}
	s.closeLog()
	return err
}

// launch starts the postgres process on port.
func (s *Server) launch(port int, dest io.Writer) error {
	s.base = &url.URL{
		Scheme:   "postgres",
		User:     url.User(pgUser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	s.adminURL = s.base.String()
	s.tail = &tailBuffer{}
	s.cmd = s.r.command(s.clusterDir, "postgres",
		"-D", s.dataDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.clusterDir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		// No WAL beyond crash safety: makes CREATE DATABASE (the default
		// WAL_LOG strategy copies the template page by page) much cheaper.
		"-c", "wal_level=minimal",
		"-c", "max_wal_senders=0",
		"-c", "wal_init_zero=off",
	)
	w := &logWriter{dest: dest, tail: s.tail}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	// A process group of its own keeps a terminal's Ctrl-C from reaching the
	// server directly: Main stops it in order instead. Pdeathsig stops it if
	// this process dies without calling Stop. runuser forwards SIGTERM to
	// postgres (smart shutdown); postgres itself gets SIGINT (fast shutdown).
	sig := syscall.SIGINT
	if s.r.asRoot() {
		sig = syscall.SIGTERM
	}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
	s.cmd.WaitDelay = 10 * time.Second

	exited := make(chan struct{})
	started := make(chan error, 1)
	cmd := s.cmd
	go func() {
		// Pdeathsig fires when the thread that started the child exits, not
		// the process: pin this goroutine to its thread for the server's
		// lifetime. The thread is discarded when the goroutine returns.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("postgres: start %s: %w", cmd.Path, err)
	}
	s.exited = exited
	return nil
}

// waitReady pings the server until it answers, it exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	var last error
	for {
		// Give up on the attempt as soon as the process exits: if the port
		// is taken, whatever holds it may accept and never answer.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		go func() {
			select {
			case <-s.exited:
				cancel()
			case <-pctx.Done():
			}
		}()
		last = ping(pctx, s.adminURL)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%w (%v)", errExited, s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections: %w (last attempt: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, connURL string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// A variable so tests can make it collide.
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("postgres: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portTaken(log string) bool {
	return strings.Contains(log, "could not bind") ||
		strings.Contains(log, "Address already in use") ||
		strings.Contains(log, "could not create any TCP/IP sockets") ||
		strings.Contains(log, "already running on port")
}

// Connect wraps an already running server given by a postgres:// URL for a
// superuser (or a role allowed to create databases). The URL's database is
// used as the maintenance database for CREATE and DROP DATABASE. Stop does
// nothing for such a server.
func Connect(ctx context.Context, adminURL string) (*Server, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("postgres: Connect needs a postgres:// URL")
	}
	if err := ping(ctx, adminURL); err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", u.Redacted(), err)
	}
	return &Server{adminURL: adminURL, base: u}, nil
}

// AdminURL returns the URL of the server's maintenance database, connecting
// as the superuser.
func (s *Server) AdminURL() string { return s.adminURL }

// URL returns the URL for connecting to database as the admin user: for a
// started server postgres://postgres@127.0.0.1:PORT/DATABASE?sslmode=disable,
// for a Connect-ed one the admin URL with its database swapped.
func (s *Server) URL(database string) string {
	u := *s.base
	u.Path = "/" + database
	u.RawPath = ""
	return u.String()
}

// CreateDatabase creates database name, copied from template, or from the
// server's default template when template is "". Clones of a template are
// serialized, and retried briefly while the template is still in use.
func (s *Server) CreateDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template == "" {
		return s.admin(ctx, sql)
	}
	sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	s.cloneMu.Lock()
	defer s.cloneMu.Unlock()
	for attempt := 1; ; attempt++ {
		err := s.admin(ctx, sql)
		// 55006: "source database ... is being accessed by other users".
		// The server already waits up to 5 s for such sessions to go away.
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || attempt == 3 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DropDatabase drops database name if it exists, disconnecting its sessions
// (DROP DATABASE ... WITH (FORCE)).
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	return s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// admin runs statements on the maintenance database in one session.
func (s *Server) admin(ctx context.Context, sql ...string) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return fmt.Errorf("postgres: connect to maintenance database: %w", err)
	}
	defer conn.Close(context.Background())
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgres: %s: %w", q, err)
		}
	}
	return nil
}

// Stop stops a server started by Start (pg_ctl stop -m fast) and removes its
// temporary directory; a directory given in Options.Dir is kept. It is a
// no-op for a server wrapped by Connect. Stop may be called more than once,
// also concurrently: later calls return the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.r == nil {
			return
		}
		s.stopErr = s.shutdown()
		s.closeLog()
		if err := s.removeCluster(); err != nil && s.stopErr == nil {
			s.stopErr = err
		}
	})
	return s.stopErr
}

// shutdown stops the server process: pg_ctl stop -m fast, and if the
// process still runs after that, signals to its process group.
func (s *Server) shutdown() error {
	if s.exited == nil || s.isExited() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := s.r.run(ctx, s.clusterDir, "pg_ctl", "stop", "-D", s.dataDir, "-m", "fast", "-w", "-t", "60")
	if s.waitExit(30 * time.Second) {
		return nil
	}
	// pg_ctl failed (e.g. no postmaster.pid yet) or the process lingers:
	// postgres quits on SIGQUIT, then SIGKILL for the whole group.
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGQUIT)
	if !s.waitExit(5 * time.Second) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		s.waitExit(15 * time.Second)
	}
	if err == nil {
		err = errors.New("server still running afterwards")
	}
	return fmt.Errorf("postgres: pg_ctl stop -D %s: %w\n%s\nserver log (tail):\n%s", s.dataDir, err, lastLines(string(out), logLines), lastLines(s.tail.String(), logLines))
}

func (s *Server) isExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

func (s *Server) waitExit(d time.Duration) bool {
	select {
	case <-s.exited:
		return true
	case <-time.After(d):
		return false
	}
}

func (s *Server) closeLog() {
	if s.logFile != nil {
		_ = s.logFile.Close()
		s.logFile = nil
	}
}

// removeCluster removes the cluster directory if it is a temporary one.
func (s *Server) removeCluster() error {
	if !s.removeDir || s.clusterDir == "" {
		return nil
	}
	if s.exited != nil && !s.isExited() {
		return fmt.Errorf("postgres: not removing %s: the server is still running", s.clusterDir)
	}
	if err := os.RemoveAll(s.clusterDir); err != nil {
		return fmt.Errorf("postgres: remove cluster dir: %w", err)
	}
	s.removeDir = false
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
	return nil
}

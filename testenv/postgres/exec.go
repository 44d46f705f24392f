package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// binEnv names the environment variable that points at a directory holding
// the PostgreSQL server binaries (initdb, pg_ctl, postgres).
const binEnv = "KNAIGHT_PG_BIN"

// pgUser is both the system user the server runs as when we are root and
// the cluster's superuser name.
const pgUser = "postgres"

// runner runs the PostgreSQL server binaries, as the postgres system user
// when this process is root (initdb and postgres refuse to run as root).
type runner struct {
	bin     string // directory with initdb, pg_ctl and postgres
	runuser string // path of runuser when running as root, else ""
	uid     int    // uid of the postgres system user (root only)
	gid     int    // primary gid of the postgres system user (root only)
	gids    []int  // all groups of the postgres system user (root only)
}

func newRunner() (*runner, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	r := &runner{bin: bin, uid: -1, gid: -1}
	if os.Geteuid() != 0 {
		return r, nil
	}
	u, err := user.Lookup(pgUser)
	if err != nil {
		return nil, fmt.Errorf("postgres: running as root, so the server must run as the %q system user, but looking it up failed: %w", pgUser, err)
	}
	if r.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("postgres: uid of %q: %w", pgUser, err)
	}
	if r.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, fmt.Errorf("postgres: gid of %q: %w", pgUser, err)
	}
	r.gids = []int{r.gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil {
				r.gids = append(r.gids, n)
			}
		}
	}
	if r.runuser, err = exec.LookPath("runuser"); err != nil {
		return nil, fmt.Errorf("postgres: running as root, so the server must run as %q via runuser, which was not found: %w", pgUser, err)
	}
	return r, nil
}

// findBinDir locates the server binaries: $KNAIGHT_PG_BIN, else the directory
// of initdb on PATH (symlinks resolved), else the highest version under
// /usr/lib/postgresql/*/bin.
func findBinDir() (string, error) {
	if d := os.Getenv(binEnv); d != "" {
		if err := checkBinDir(d); err != nil {
			return "", fmt.Errorf("postgres: %s=%s: %w", binEnv, d, err)
		}
		return d, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if d := filepath.Dir(p); checkBinDir(d) == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
	})
	for _, d := range dirs {
		if checkBinDir(d) == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("postgres: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: set %s, put initdb on PATH, or install the PostgreSQL server package", binEnv)
}

func checkBinDir(d string) error {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(d, name))
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", filepath.Join(d, name))
		}
	}
	return nil
}

// versionLess compares dotted numeric versions such as "9.6" and "15".
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func (r *runner) asRoot() bool { return r.runuser != "" }

// command builds the command for one of the server binaries, run as the
// postgres user when we are root. dir is the working directory: it must be
// accessible to that user.
func (r *runner) command(dir, name string, args ...string) *exec.Cmd {
	prog := filepath.Join(r.bin, name)
	var cmd *exec.Cmd
	if r.asRoot() {
		cmd = exec.Command(r.runuser, append([]string{"-u", pgUser, "--", prog}, args...)...)
	} else {
		cmd = exec.Command(prog, args...)
	}
	cmd.Dir = dir
	// English, locale-independent messages: errors are matched on them.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	return cmd
}

// run runs a short-lived binary (initdb, pg_ctl) and returns its output.
func (r *runner) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := r.command(dir, name, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-ctx.Done():
		// runuser forwards SIGTERM to its child.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return out.Bytes(), ctx.Err()
	}
}

// prepareDir makes dir usable by the user the server runs as: owned by it
// and reachable through every parent directory.
func (r *runner) prepareDir(dir string, mode os.FileMode) error {
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if !r.asRoot() {
		return nil
	}
	if err := os.Chown(dir, r.uid, r.gid); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return r.checkTraversable(filepath.Dir(dir))
}

// checkTraversable reports an error naming the first ancestor (dir included)
// that the postgres system user cannot search. A temp dir made with
// t.TempDir, for example, sits in a root-only 0700 directory.
func (r *runner) checkTraversable(dir string) error {
	if !r.asRoot() {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && !r.canSearch(fi.Mode(), int(st.Uid), int(st.Gid)) {
			return fmt.Errorf("postgres: directory %s (mode %v) cannot be searched by the %q system user that the server runs as (this process is root); "+
				"use a directory whose parents are all world-searchable, e.g. one made with os.MkdirTemp under %s and chmod 0755", d, fi.Mode().Perm(), pgUser, os.TempDir())
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

func (r *runner) canSearch(mode os.FileMode, uid, gid int) bool {
	if uid == r.uid {
		return mode&0o100 != 0
	}
	for _, g := range r.gids {
		if g == gid {
			return mode&0o010 != 0
		}
	}
	return mode&0o001 != 0
}

// syncBuffer is a bytes buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// tailBuffer keeps the last tailMax bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 16 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*tailMax {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// logWriter copies server output to the log destination and the tail
// buffer. It never fails, so a broken destination cannot stall the server.
type logWriter struct {
	dest io.Writer
	tail *tailBuffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	_, _ = w.tail.Write(p)
	if w.dest != nil {
		_, _ = w.dest.Write(p)
	}
	return len(p), nil
}

// lastLines returns the last n lines of s, indented for inclusion in an
// error message.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "\t(empty)"
	}
	return "\t" + strings.Join(lines, "\n\t")
}

var errExited = errors.New("server process exited")

// tempPrefix starts the names of temporary cluster directories.
const tempPrefix = "knaight-pg-"

// lockName is the file in a temporary cluster directory that its owner
// holds an flock on; the lock dies with the owning process.
const lockName = ".lock"

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("postgres: lock %s: %w", dir, err)
	}
	return f, nil
}

// sweepStale removes temporary cluster directories left behind by processes
// that died without Stop (killed test binaries): those whose lock is free
// and whose server is not running. Recent directories are left alone, as
// their owner may not have locked them yet.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, d := range dirs {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		f, err := os.Open(filepath.Join(d, lockName))
		if err != nil {
			continue // not one of ours
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil && !postmasterAlive(filepath.Join(d, "data")) {
			_ = os.RemoveAll(d)
		}
		f.Close()
	}
}

// postmasterAlive reports whether dataDir's postmaster.pid names a live
// process.
func postmasterAlive(dataDir string) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return true // unreadable: be safe
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

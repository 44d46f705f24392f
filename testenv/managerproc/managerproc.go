// Package managerproc runs the real manager binary outside production: it
// builds cmd/knaight-manager, migrates a database, bootstraps an
// organization and serves, as make run and the tests that need a real
// manager process do.
package managerproc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Build compiles the manager into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, "knaight-manager"))
	if err != nil {
		return "", err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/knaight/knaight/manager/cmd/knaight-manager")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build manager: %w\n%s", err, out)
	}
	return bin, nil
}

// Options say how to run the manager.
type Options struct {
	// Binary is the manager binary (from Build).
	Binary string
	// DatabaseURL is an empty database the manager migrates.
	DatabaseURL string
	// Listen is host:port; empty picks a free loopback port.
	Listen string
	// LogPath receives the manager's log.
	LogPath string
	// Env adds KNAIGHT_* settings.
	Env []string
}

// Manager is a running manager process.
type Manager struct {
	// URL is the manager's base URL.
	URL string
	// AdminKey is the bootstrap organization's admin API key.
	AdminKey string
	// LogPath is where the manager logs.
	LogPath string

	binary string
	cmd    *exec.Cmd
	env    []string
	exited chan error
}

// Start migrates the database, bootstraps the organization "demo" (ANS
// domain agents.demo.example) and serves until Stop.
func Start(ctx context.Context, o Options) (*Manager, error) {
	if o.Listen == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		o.Listen = ln.Addr().String()
		ln.Close()
	}
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	env := append(append(os.Environ(),
		"KNAIGHT_DATABASE_URL="+o.DatabaseURL,
		"KNAIGHT_KEK="+base64.StdEncoding.EncodeToString(kek),
		"KNAIGHT_LISTEN="+o.Listen,
		"KNAIGHT_LOG_FORMAT=json",
	), o.Env...)
	m := &Manager{URL: "http://" + o.Listen, LogPath: o.LogPath, binary: o.Binary, env: env}
	run := func(args ...string) ([]byte, error) {
		c := exec.CommandContext(ctx, o.Binary, args...)
		c.Env = env
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			return nil, fmt.Errorf("knaight-manager %s: %w\n%s", args[0], err, stderr.Bytes())
		}
		return out, nil
	}
	if _, err := run("migrate"); err != nil {
		return nil, err
	}
	out, err := run("bootstrap", "--org-name", "Demo", "--org-slug", "demo", "--ans-domain", "agents.demo.example", "--key-name", "bootstrap")
	if err != nil {
		return nil, err
	}
	var b struct {
		APIKey struct{ Token string } `json:"apiKey"`
	}
	if err := json.Unmarshal(out, &b); err != nil || b.APIKey.Token == "" {
		return nil, fmt.Errorf("bootstrap printed no admin key: %v", err)
	}
	m.AdminKey = b.APIKey.Token
	if err := m.serve(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// StartReplica starts another "knaight-manager serve" of m's binary on
// m's database, with m's KEK and issuer, on a free loopback port and
// logging to logPath: a second replica of the same deployment, as a
// horizontally scaled manager runs behind one public URL. Tokens it issues
// and snapshots it serves are interchangeable with m's, and a change made
// on one replica reaches the other's long polls only through PostgreSQL
// (LISTEN/NOTIFY). The replica shares m's AdminKey; Stop it on its own.
func (m *Manager) StartReplica(ctx context.Context, logPath string) (*Manager, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	listen := ln.Addr().String()
	ln.Close()
	// exec uses the last of duplicate variables, so these override m's.
	env := append(slices.Clone(m.env), "KNAIGHT_LISTEN="+listen)
	if !slices.ContainsFunc(m.env, func(kv string) bool { return strings.HasPrefix(kv, "KNAIGHT_ISSUER=") }) {
		// m's issuer defaults to its own URL: keep it, so that the tokens
		// either replica issues carry one issuer.
		env = append(env, "KNAIGHT_ISSUER="+m.URL)
	}
	r := &Manager{URL: "http://" + listen, AdminKey: m.AdminKey, LogPath: logPath, binary: m.binary, env: env}
	if err := r.serve(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// serve starts "knaight-manager serve" and waits until it is ready.
func (m *Manager) serve(ctx context.Context) error {
	logFile, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	m.cmd = exec.Command(m.binary, "serve")
	m.cmd.Env = m.env
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	// If this process dies without stopping it, the manager stops too.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := m.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start manager: %w", err)
	}
	m.exited = make(chan error, 1)
	go func() { m.exited <- m.cmd.Wait(); logFile.Close() }()
	if err := m.waitReady(ctx); err != nil {
		m.Stop()
		tail, _ := Tail(m.LogPath, 20)
		return fmt.Errorf("%w\n%s", err, tail)
	}
	return nil
}

// Exited is closed (receives the exit error) when the process ends.
func (m *Manager) Exited() <-chan error { return m.exited }

// Stop ends the manager with SIGTERM (a graceful shutdown), killing it
// after 20 seconds.
func (m *Manager) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	Terminate(m.cmd.Process, m.exited, 20*time.Second)
	m.cmd = nil
}

// Terminate asks the process to exit (SIGTERM) and kills it if it has not
// within grace; exited receives its Wait result.
func Terminate(p *os.Process, exited <-chan error, grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
	}
}

// Restart starts the manager again after Stop, on the same address and
// database.
func (m *Manager) Restart(ctx context.Context) error {
	return m.serve(ctx)
}

func (m *Manager) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-m.exited:
			return fmt.Errorf("manager exited during start: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(m.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("manager not ready within 60s")
}

// Tail returns the last n lines of the file at path.
func Tail(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(l + "\n")
	}
	return buf.String(), nil
}

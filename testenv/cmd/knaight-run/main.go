// Command knaight-run is `make run`: it starts the whole system locally for
// a first look — a throwaway PostgreSQL from the machine's binaries, the
// manager migrated and bootstrapped with a demo organization — prints where
// everything listens and the admin key, and stops it all cleanly on Ctrl-C.
// Nothing outlives it: the database is deleted on exit.
//
// With DATABASE_URL set it uses that server instead of starting one (and
// creates a fresh database on it, dropped on exit).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/knaight/knaight/testenv/postgres"
)

func main() {
	listen := flag.String("listen", envOr("KNAIGHT_LISTEN", "127.0.0.1:8080"), "address the manager serves on [KNAIGHT_LISTEN]")
	dir := flag.String("dir", ".run", "folder for binaries and logs (git-ignored)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "knaight-run:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, listen, dir string) error {
	if ln, err := net.Listen("tcp", listen); err != nil {
		return fmt.Errorf("%s is not free (set KNAIGHT_LISTEN=host:port): %w", listen, err)
	} else {
		ln.Close()
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	manager, err := filepath.Abs(filepath.Join(dir, "bin", "knaight-manager"))
	if err != nil {
		return err
	}
	step("building the manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", manager, "github.com/knaight/knaight/manager/cmd/knaight-manager")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build manager: %w", err)
	}

	var srv *postgres.Server
	if url := os.Getenv("DATABASE_URL"); url != "" {
		step("using the PostgreSQL server at DATABASE_URL")
		srv, err = postgres.Connect(ctx, url)
	} else {
		step("starting a throwaway PostgreSQL")
		srv, err = postgres.Start(ctx, postgres.Options{})
	}
	if err != nil {
		return err
	}
	defer srv.Stop()
	dbName := fmt.Sprintf("knaight_run_%d", time.Now().Unix())
	if err := srv.CreateDatabase(ctx, dbName, ""); err != nil {
		return err
	}
	defer srv.DropDatabase(context.WithoutCancel(ctx), dbName)
	dbURL := srv.URL(dbName)

	kek := make([]byte, 32)
	rand.Read(kek)
	env := append(os.Environ(),
		"KNAIGHT_DATABASE_URL="+dbURL,
		"KNAIGHT_KEK="+base64.StdEncoding.EncodeToString(kek),
		"KNAIGHT_LISTEN="+listen,
		"KNAIGHT_LOG_FORMAT=json",
	)
	cmd := func(args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, manager, args...)
		c.Env = env
		return c
	}

	step("migrating the database")
	if out, err := cmd("migrate").CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %w\n%s", err, out)
	}
	step("bootstrapping the demo organization")
	var stderr bytes.Buffer
	boot := cmd("bootstrap", "--org-name", "Demo", "--org-slug", "demo", "--ans-domain", "agents.demo.example", "--key-name", "make-run")
	boot.Stderr = &stderr
	out, err := boot.Output()
	if err != nil {
		return fmt.Errorf("bootstrap: %w\n%s", err, stderr.Bytes())
	}
	var b struct {
		APIKey struct{ Token string } `json:"apiKey"`
	}
	if err := json.Unmarshal(out, &b); err != nil || b.APIKey.Token == "" {
		return fmt.Errorf("bootstrap printed no admin key: %v", err)
	}

	logPath := filepath.Join(dir, "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	serve := exec.Command(manager, "serve")
	serve.Env = env
	serve.Stdout, serve.Stderr = logFile, logFile
	// If this process dies without stopping it, the manager stops too.
	serve.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := serve.Start(); err != nil {
		return fmt.Errorf("start manager: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	stopManager := func() {
		serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			serve.Process.Kill()
			<-exited
		}
	}

	base := "http://" + listen
	if err := waitReady(ctx, base+"/readyz", exited); err != nil {
		stopManager()
		return fmt.Errorf("%w (see %s)", err, logPath)
	}
	fmt.Printf(`
Knaight is running.

  manager API   %[1]s/api/v1   (OpenAPI: %[1]s/api/v1/openapi.json)
  health        %[1]s/healthz  %[1]s/readyz
  manager log   %[2]s
  database      %[3]s

The bootstrap admin key is shown only now. In another shell:

export KNAIGHT_URL=%[1]s
export KNAIGHT_KEY=%[4]s

then follow "Walkthrough" in README.md. Ctrl-C stops everything and deletes the database.
`, base, logPath, dbURL, b.APIKey.Token)

	select {
	case <-ctx.Done():
		step("stopping")
		stopManager()
	case err := <-exited:
		tail, _ := tailFile(logPath, 20)
		return fmt.Errorf("manager exited: %v\n%s", err, tail)
	}
	return nil
}

func waitReady(ctx context.Context, url string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("manager exited during start: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("manager not ready within 60s")
}

func tailFile(path string, n int) (string, error) {
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

package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeWalkthroughAgainstMakeRun starts the system the way `make run`
// does and runs README.md's walkthrough block, exactly as printed, against
// it; then stops it with Ctrl-C and checks that it exits cleanly.
func TestReadmeWalkthroughAgainstMakeRun(t *testing.T) {
	walkthrough, err := readWalkthrough()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "knaight-run")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, bin, "-listen", addr, "-gateway-listen", free(), "-upstream-listen", free(), "-dir", filepath.Join(dir, "run"))
	run.Env = withoutEnv(os.Environ(), "DATABASE_URL")
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var printed bytes.Buffer
	env := map[string]string{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			printed.WriteString(line + "\n")
			if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && strings.HasPrefix(line, "export KNAIGHT_") {
				env[k] = v
				if k == "KNAIGHT_KEY" {
					close(ready)
				}
			}
		}
		exited <- run.Wait()
	}()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("knaight-run exited before it was ready: %v\n%s\n%s", err, printed.String(), stderr.String())
	case <-ctx.Done():
		t.Fatalf("knaight-run not ready in time\n%s\n%s", printed.String(), stderr.String())
	}
	if env["KNAIGHT_URL"] != "http://"+addr || !strings.HasPrefix(env["KNAIGHT_KEY"], "knk_") || !strings.HasSuffix(env["KNAIGHT_GATEWAY"], "/mcp") {
		t.Fatalf("printed environment: %v", env)
	}

	sh := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", walkthrough)
	sh.Env = append(os.Environ(), "KNAIGHT_URL="+env["KNAIGHT_URL"], "KNAIGHT_KEY="+env["KNAIGHT_KEY"], "KNAIGHT_GATEWAY="+env["KNAIGHT_GATEWAY"])
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	t.Logf("walkthrough output:\n%s", out)
	for _, want := range []string{`"required": "L3"`, `"satisfied": true`, `"level": "L3"`, `"location": "body.value"`, `"SUSPENDED"`, `"ok": true`, "ANS_STATUS_CHANGED", `"token_type": "Bearer"`, `{"active":false}`, "TOKENS_REVOKED", `"loa": 2`,
		"X-Knaight-Reason: trust_below_threshold", "deployed web 1.2.3", "X-Knaight-Reason: token_revoked", "tools/call deploy allowed"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("walkthrough output lacks %s:\n%s", want, out)
		}
	}

	run.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("knaight-run did not stop cleanly: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("knaight-run did not stop within 60s of Ctrl-C")
	}
	if !strings.Contains(printed.String(), walkthrough) {
		t.Errorf("knaight-run did not print the walkthrough it was tested with:\n%s", printed.String())
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the manager still listens after Ctrl-C")
	}
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

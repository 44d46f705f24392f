package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/knaight/knaight/testenv/envoyconfig"
	"github.com/knaight/knaight/testenv/managerproc"
)

// EnvoyBinary is the Envoy the stack runs instead of the testenv gateway:
// ENVOY_BIN when set, else envoy on PATH, else "" (none).
func EnvoyBinary() string {
	if bin := os.Getenv("ENVOY_BIN"); bin != "" {
		return bin
	}
	bin, _ := exec.LookPath("envoy")
	return bin
}

// RepoRoot is the repository root: the working directory or the nearest of
// its parents that holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run from the repository")
		}
		dir = parent
	}
}

// envoyProc is a running Envoy.
type envoyProc struct {
	cmd    *exec.Cmd
	exited chan error
	log    string
}

// startEnvoy runs bin with envoy/envoy.yaml, rendered for this stack
// (envoyconfig.Render): listening on listen, the filter and its poller
// service on the module at wasm with the given plugin configurations, the
// clusters on upstream and the manager. It returns once Envoy's admin
// interface reports it ready.
func startEnvoy(ctx context.Context, bin, dir, listen, upstream, managerURL, wasm string, filterConfig, serviceConfig []byte, workers int) (*envoyProc, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if wasm, err = filepath.Abs(wasm); err != nil {
		return nil, err
	}
	doc, err := os.ReadFile(filepath.Join(root, "envoy", "envoy.yaml"))
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	m, err := url.Parse(managerURL)
	if err != nil {
		return nil, err
	}
	cfg, err := envoyconfig.Render(doc, envoyconfig.Local{
		Listen: listen, Admin: admin, Upstream: upstream, Manager: m.Host, Wasm: wasm,
		FilterConfig: filterConfig, ServiceConfig: serviceConfig,
	})
	if err != nil {
		return nil, fmt.Errorf("render envoy/envoy.yaml: %w", err)
	}
	cfgPath := filepath.Join(dir, "envoy.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	if workers <= 0 {
		workers = 2
	}
	p := &envoyProc{log: filepath.Join(dir, "envoy.log"), exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, "-c", cfgPath, "--concurrency", strconv.Itoa(workers),
		"--disable-hot-restart", "--log-path", p.log)
	p.cmd.Dir = root
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { p.exited <- p.cmd.Wait() }()

	ready := time.NewTicker(200 * time.Millisecond)
	defer ready.Stop()
	deadline := time.After(time.Minute)
	for {
		select {
		case err := <-p.exited:
			tail, _ := managerproc.Tail(p.log, 30)
			return nil, fmt.Errorf("envoy exited: %v\n%s", err, tail)
		case <-deadline:
			p.stop()
			tail, _ := managerproc.Tail(p.log, 30)
			return nil, fmt.Errorf("envoy not ready within a minute\n%s", tail)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-ready.C:
			if resp, err := http.Get("http://" + admin + "/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p, nil
				}
			}
		}
	}
}

// stop asks Envoy to exit, and kills it if it has not within 10 s.
func (p *envoyProc) stop() {
	managerproc.Terminate(p.cmd.Process, p.exited, 10*time.Second)
}

// freeAddr is a loopback host:port nothing listens on at the moment.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

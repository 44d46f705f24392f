// Package stack starts the whole system on one machine, the way make run
// and the end-to-end suite need it: a PostgreSQL database, the manager
// process, the demo upstream MCP server, and the gateway (the real
// plugin.wasm in the testenv gateway, or in Envoy with envoy/envoy.yaml when
// Options.Envoy names one) in front of it, configured through
// the manager's own API as an operator would: a gateway registered, its
// plugin configuration used as returned, and a demo role whose policy is in
// an active bundle.
package stack

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/knaight/knaight/testenv/gateway"
	"github.com/knaight/knaight/testenv/managerproc"
	"github.com/knaight/knaight/testenv/mcpdemo"
)

// Environment is the environment the stack's gateway enforces.
const Environment = "production"

// DemoRole is the role template the stack creates, and DemoEndpoints what
// its policy allows: discovery, reading, the echo and deploy tools, at L3
// with a verified token (LoA 2) carrying mcp:invoke. The demo upstream's
// time tool is outside it on purpose.
const DemoRole = "deployer"

// DemoEndpoints are the demo role's allowed endpoints.
var DemoEndpoints = []string{
	"initialize", "ping", "notifications/*", "transport/stream", "transport/close",
	"tools/list", "resources/list", "resources/read", "prompts/list", "prompts/get",
	"tools/call:echo", "tools/call:deploy",
}

// Options say where the stack listens and what it runs.
type Options struct {
	// Dir holds the binaries and logs.
	Dir string
	// DatabaseURL is an empty database for the manager.
	DatabaseURL string
	// ManagerListen, GatewayListen and UpstreamListen are host:port; empty
	// picks free loopback ports.
	ManagerListen, GatewayListen, UpstreamListen string
	// Workers is the gateway's worker VMs (default 2).
	Workers int
	// MaxStaleness is the gateways' fail-closed limit (default 5 minutes).
	MaxStaleness time.Duration
	// EnvoyWASI runs the testenv gateway in the Envoy-compatible WASI mode.
	EnvoyWASI bool
	// Envoy is an Envoy binary to run as the gateway, configured from
	// envoy/envoy.yaml, instead of the testenv gateway; see EnvoyBinary.
	Envoy string
	// Replica starts a second manager process on the same database and
	// points the gateway's manager cluster at it, while API keeps calling
	// the first: a change made through API then reaches the gateway only
	// through PostgreSQL's LISTEN/NOTIFY between the replicas.
	Replica bool
	// Logger receives the gateway's and the upstream's logs.
	Logger *slog.Logger
}

// Stack is the running system.
type Stack struct {
	Manager *managerproc.Manager
	// Replica is the second manager process the gateway polls, when
	// Options.Replica asked for one; nil otherwise.
	Replica *managerproc.Manager
	// Gateway is the testenv gateway; nil when Envoy runs instead.
	Gateway *gateway.Gateway
	// GatewayLog is the gateway's log file, when it writes one (Envoy).
	GatewayLog string
	// GatewayURL and UpstreamURL are base URLs; Resource is the protected
	// MCP resource behind the gateway, the audience of gateway tokens.
	GatewayURL, UpstreamURL, Resource string
	// OrganizationID is the demo organization's id; GatewayID the
	// registered gateway's; DemoRoleID the demo role template's.
	OrganizationID, GatewayID, DemoRoleID string
	// API calls the manager with the admin key.
	API *Client
	// UpstreamKeyID and UpstreamKey are the gateway's upstream key, the
	// one the demo upstream accepts: what the filter signs forwarded
	// requests with, and what a client reaching the upstream without the
	// filter (a baseline) must sign with instead.
	UpstreamKeyID string
	UpstreamKey   []byte

	gatewaySrv, upstreamSrv *http.Server
	envoy                   *envoyProc
}

// Start builds and starts everything; Stop undoes it.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxStaleness == 0 {
		o.MaxStaleness = 5 * time.Minute
	}
	bin := filepath.Join(o.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	managerBin, err := managerproc.Build(ctx, bin)
	if err != nil {
		return nil, err
	}
	wasm, err := BuildPlugin(ctx, bin)
	if err != nil {
		return nil, err
	}
	gwLn, err := listen(o.GatewayListen)
	if err != nil {
		return nil, err
	}
	upLn, err := listen(o.UpstreamListen)
	if err != nil {
		gwLn.Close()
		return nil, err
	}
	s := &Stack{GatewayURL: "http://" + gwLn.Addr().String(), UpstreamURL: "http://" + upLn.Addr().String()}
	s.Resource = s.GatewayURL + "/mcp"
	defer func() {
		if err != nil {
			gwLn.Close()
			upLn.Close()
			s.Stop()
		}
	}()

	s.Manager, err = managerproc.Start(ctx, managerproc.Options{
		Binary: managerBin, DatabaseURL: o.DatabaseURL, Listen: o.ManagerListen,
		LogPath: filepath.Join(o.Dir, "manager.log"),
		Env:     []string{"KNAIGHT_GATEWAY_MAX_STALENESS=" + o.MaxStaleness.String()},
	})
	if err != nil {
		return nil, err
	}
	s.API = &Client{Base: s.Manager.URL, Key: s.Manager.AdminKey}
	polled := s.Manager.URL
	if o.Replica {
		if s.Replica, err = s.Manager.StartReplica(ctx, filepath.Join(o.Dir, "manager-replica.log")); err != nil {
			return nil, fmt.Errorf("start the manager replica: %w", err)
		}
		polled = s.Replica.URL
	}
	pluginConfig, upstreamKID, upstreamKey, err := s.configure(ctx)
	if err != nil {
		return nil, err
	}
	s.UpstreamKeyID, s.UpstreamKey = upstreamKID, upstreamKey

	upstream := mcpdemo.NewHandler(mcpdemo.Options{UpstreamKeys: map[string][]byte{upstreamKID: upstreamKey}, Logger: o.Logger})
	s.upstreamSrv = newServer(upstream)
	go s.upstreamSrv.Serve(upLn)

	service := withField(pluginConfig, "service", true)
	if o.Envoy != "" {
		// Envoy binds the gateway's address itself.
		addr := gwLn.Addr().String()
		gwLn.Close()
		s.envoy, err = startEnvoy(ctx, o.Envoy, o.Dir, addr, upLn.Addr().String(), polled,
			filepath.Join(bin, "plugin.wasm"), pluginConfig, service, o.Workers)
		if err != nil {
			return nil, err
		}
		s.GatewayLog = s.envoy.log
		return s, nil
	}
	s.Gateway, err = gateway.New(ctx, gateway.Config{
		Wasm: wasm, PluginConfig: pluginConfig, ServiceConfig: service, Workers: o.Workers,
		Clusters: map[string]string{"knaight_manager": polled},
		Upstream: s.UpstreamURL, EnvoyWASI: o.EnvoyWASI, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("start the gateway: %w", err)
	}
	s.gatewaySrv = newServer(s.Gateway)
	go s.gatewaySrv.Serve(gwLn)
	return s, nil
}

// configure sets the organization up through the API: token audience, the
// demo role, its policy in an active bundle, and the gateway. It returns
// the gateway's plugin configuration and the upstream key.
func (s *Stack) configure(ctx context.Context) (pluginConfig []byte, upstreamKID string, upstreamKey []byte, err error) {
	var org struct{ ID string }
	if err := s.API.Do(ctx, "GET", "/api/v1/organization", nil, 200, &org); err != nil {
		return nil, "", nil, err
	}
	s.OrganizationID = org.ID
	if err := s.API.Do(ctx, "PUT", "/api/v1/enforcement/token-settings", map[string]any{
		"algorithm": "EdDSA", "defaultTtlSeconds": 900, "maxTtlSeconds": 3600, "audiences": []string{s.Resource}}, 200, nil); err != nil {
		return nil, "", nil, err
	}
	var role struct{ ID string }
	if err := s.API.Do(ctx, "POST", "/api/v1/role-templates", map[string]any{
		"name": DemoRole, "description": "Deploys through the demo upstream's deploy tool."}, 201, &role); err != nil {
		return nil, "", nil, err
	}
	s.DemoRoleID = role.ID
	if err := s.API.Do(ctx, "POST", "/api/v1/policies", map[string]any{
		"roleTemplateId": role.ID, "environment": Environment, "minTrustLevel": "L3", "minLoa": 2,
		"requiredScopes": []string{"mcp:invoke"}, "allowedEndpoints": DemoEndpoints}, 201, nil); err != nil {
		return nil, "", nil, err
	}
	var bundle struct{ ID string }
	if err := s.API.Do(ctx, "POST", "/api/v1/enforcement/bundles/compile", map[string]any{
		"organizationId": org.ID, "version": "1.0.0", "environment": Environment}, 201, &bundle); err != nil {
		return nil, "", nil, err
	}
	if err := s.API.Do(ctx, "POST", "/api/v1/enforcement/bundles/publish", map[string]any{"bundleId": bundle.ID, "signerId": "stack"}, 200, nil); err != nil {
		return nil, "", nil, err
	}
	if err := s.API.Do(ctx, "POST", "/api/v1/enforcement/bundles/activate", map[string]any{"bundleId": bundle.ID}, 200, nil); err != nil {
		return nil, "", nil, err
	}
	var gw struct {
		ID          string
		UpstreamKey *struct {
			KID    string `json:"kid"`
			Secret string `json:"secret"`
		} `json:"upstreamKey"`
		PluginConfig json.RawMessage `json:"pluginConfig"`
	}
	if err := s.API.Do(ctx, "POST", "/api/v1/gateways", map[string]any{"name": "local", "environment": Environment}, 201, &gw); err != nil {
		return nil, "", nil, err
	}
	if gw.UpstreamKey == nil {
		return nil, "", nil, errors.New("the gateway's registration created no upstream key")
	}
	key, err := base64.RawURLEncoding.DecodeString(gw.UpstreamKey.Secret)
	if err != nil {
		return nil, "", nil, fmt.Errorf("upstream key: %w", err)
	}
	s.GatewayID = gw.ID
	// A short long poll and flush interval keep the demo lively.
	pc := withField(gw.PluginConfig, "pollWaitSeconds", 20)
	pc = withField(pc, "flushIntervalMillis", 200)
	return pc, gw.UpstreamKey.KID, key, nil
}

// Stop stops everything Start started.
func (s *Stack) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.gatewaySrv != nil {
		_ = s.gatewaySrv.Shutdown(ctx)
	}
	if s.Gateway != nil {
		_ = s.Gateway.Close()
	}
	if s.envoy != nil {
		s.envoy.stop()
	}
	if s.upstreamSrv != nil {
		_ = s.upstreamSrv.Shutdown(ctx)
	}
	if s.Replica != nil {
		s.Replica.Stop()
	}
	if s.Manager != nil {
		s.Manager.Stop()
	}
}

// BuildPlugin compiles the filter as make wasm does and returns it; the
// binary is also left in dir as plugin.wasm.
func BuildPlugin(ctx context.Context, dir string) ([]byte, error) {
	return buildWasm(ctx, dir, "plugin.wasm", "github.com/knaight/knaight/plugin")
}

// BuildNoopPlugin compiles plugin/internal/noop, the filter that lets
// every request through untouched, the baseline of the filter's
// benchmarks, and returns it; the binary is also left in dir as noop.wasm.
func BuildNoopPlugin(ctx context.Context, dir string) ([]byte, error) {
	return buildWasm(ctx, dir, "noop.wasm", "github.com/knaight/knaight/plugin/internal/noop")
}

// buildWasm compiles the proxy-wasm module pkg into dir/name.
func buildWasm(ctx context.Context, dir, name, pkg string) ([]byte, error) {
	out, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %w\n%s", name, err, msg)
	}
	return os.ReadFile(out)
}

func listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return net.Listen("tcp", addr)
}

// newServer is an http.Server with every timeout set; the write timeout
// leaves room for event streams.
func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: 10 * time.Minute, IdleTimeout: 2 * time.Minute}
}

// withField returns the JSON object obj with key set to value.
func withField(obj []byte, key string, value any) []byte {
	var m map[string]any
	_ = json.Unmarshal(obj, &m)
	m[key] = value
	out, _ := json.Marshal(m)
	return out
}

// Client calls the manager's API with an API key.
type Client struct {
	Base, Key string
}

// Do sends body as JSON and decodes the answer into out, which must come
// with status want.
func (c *Client) Do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

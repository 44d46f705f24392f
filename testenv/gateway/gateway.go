// Package gateway runs Knaight's real filter, the compiled plugin.wasm, the
// way Envoy runs it: a reverse proxy (an http.Handler) that hosts the module
// under wazero, so that end-to-end tests and the local stack exercise the
// very binary Envoy loads rather than a native stand-in or the SDK's
// single-VM emulator.
//
// Where the filter can tell, it behaves like Envoy with the filter in its
// HTTP filter chain: several worker VMs and an optional singleton service VM
// instantiated from one compiled module, each with its own linear memory and
// Go runtime; shared data (with Envoy's compare-and-swap) and shared queues
// common to all of them; ticks per VM; dispatch_http_call performed for real
// over HTTP to named clusters; local responses; header and body mutation;
// bodies buffered while the filter pauses; response bodies (Server-Sent
// Events included) streamed chunk by chunk. Config.EnvoyWASI additionally
// reproduces a WASI defect of Envoy's wasm host (see wasi.go).
//
// What it does not emulate: HTTP/2 specifics, gRPC calls and streams,
// network (L4) filters, request trailers towards the upstream, Envoy's
// buffer limits, and Envoy's own headers beyond x-request-id and
// x-forwarded-proto.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
)

// Config configures a Gateway. The zero value of every optional field is
// usable.
type Config struct {
	// Wasm is the compiled filter (GOOS=wasip1 GOARCH=wasm go build
	// -buildmode=c-shared). Required.
	Wasm []byte
	// PluginConfig is the plugin configuration of the worker VMs: what Envoy
	// hands the filter as its configuration (for Knaight, the filter's JSON).
	PluginConfig []byte
	// ServiceConfig, when not nil, starts one more VM from the same module
	// with this plugin configuration, as Envoy's envoy.bootstrap.wasm
	// service with singleton: true does. It serves no requests: it only
	// ticks, makes HTTP calls and receives queue notifications. For
	// Knaight it is the filter's configuration with "service": true.
	ServiceConfig []byte
	// Workers is the number of worker VMs, one per Envoy worker thread.
	// Zero means 2.
	Workers int
	// Clusters maps the cluster names the plugin passes to
	// dispatch_http_call to base URLs ("http://127.0.0.1:8080", optionally
	// with a path prefix). A call to an unknown cluster fails with
	// BadArgument, as in Envoy.
	Clusters map[string]string
	// Upstream is the base URL requests are forwarded to when the filter
	// lets them through. Required.
	Upstream string
	// EnvoyWASI makes WASI poll_oneoff answer ENOSYS, as Envoy's wasm host
	// (proxy-wasm-cpp-host) does before its PR #533. The Go runtime treats
	// that answer as fatal, so this mode reproduces the crash a Go plugin
	// can suffer in such an Envoy. See wasi.go.
	EnvoyWASI bool
	// VMID is the vm_id of every VM: shared data and shared queues are
	// scoped by it. One Gateway is one proxy, so all its VMs share it.
	VMID string
	// Properties answers proxy_get_property, by path with the path's
	// elements joined with "." (for example "knaight_test_panic"). Paths
	// not here and not built in (see property) are NotFound.
	Properties map[string]string
	// Logger receives the plugin's logs (proxy_log) and its standard output
	// and error, with the VM's name. Nil discards them; Logs keeps them
	// either way.
	Logger *slog.Logger
	// TickOverride, when positive, replaces every tick period the plugin
	// asks for with proxy_set_tick_period_milliseconds, so that a test can
	// speed the plugin's timers up. A VM that asks for no ticks gets none.
	TickOverride time.Duration
}

// defaultWorkers is the number of worker VMs when Config.Workers is zero.
const defaultWorkers = 2

// maxLogs bounds the entries Logs keeps; the oldest go first.
const maxLogs = 10000

// validate checks c and fills in the defaults, naming the field at fault.
func (c *Config) validate() error {
	if len(c.Wasm) == 0 {
		return errors.New("gateway: Config.Wasm is required: the compiled plugin")
	}
	if c.Workers < 0 {
		return fmt.Errorf("gateway: Config.Workers is %d, want at least 1 (0 means %d)", c.Workers, defaultWorkers)
	}
	if c.Workers == 0 {
		c.Workers = defaultWorkers
	}
	if _, err := parseBase(c.Upstream); err != nil {
		return fmt.Errorf("gateway: Config.Upstream: %w", err)
	}
	for name, base := range c.Clusters {
		if _, err := parseBase(base); err != nil {
			return fmt.Errorf("gateway: Config.Clusters[%q]: %w", name, err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// parseBase parses a base URL: absolute http(s), no query or fragment.
func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL without query or fragment", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

// ErrPluginRejected means a VM's plugin refused to start (proxy_on_vm_start
// or proxy_on_configure returned false), as Envoy would reject the
// configuration: fix the plugin configuration the error's logs name.
var ErrPluginRejected = errors.New("gateway: the plugin refused to start")

// LogEntry is one line the plugin logged, or wrote to standard output or
// error.
type LogEntry struct {
	Time time.Time
	// VM is the VM's name: "service" or "worker-<n>".
	VM string
	// Level is the proxy-wasm log level ("trace", "debug", "info", "warn",
	// "error", "critical"), or "stdout" or "stderr".
	Level   string
	Message string
}

// Gateway is the reverse proxy hosting the plugin. Create it with New, serve
// it as an http.Handler, and Close it.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	upstream *url.URL
	clusters map[string]*url.URL
	client   *http.Client

	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	service  *vm
	workers  []*vm
	next     atomic.Uint64

	shared  sharedData
	queues  sharedQueues
	metrics metricStore

	logMu sync.Mutex
	logs  []LogEntry

	// ctx is cancelled by Close: it stops the VMs' loops and aborts HTTP
	// calls and upstream requests in flight.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the VMs' loops and the HTTP calls in flight.
	wg sync.WaitGroup
	// inflight counts ServeHTTP calls; closed refuses new ones.
	mu        sync.Mutex
	closed    bool
	inflight  sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// compilationCache keeps the machine code of the modules this process
// compiled, so that the tests' many gateways compile plugin.wasm once.
var compilationCache = wazero.NewCompilationCache()

// New compiles cfg.Wasm once and starts the VMs from it: the service VM
// first when cfg.ServiceConfig is set, then cfg.Workers worker VMs. Each is
// its own module instance (its own memory and Go runtime) with the real
// clocks and crypto/rand, started as Envoy starts a VM: _initialize, then
// proxy_on_context_create for the root context, proxy_on_vm_start and
// proxy_on_configure. A VM whose plugin refuses to start makes New fail
// with ErrPluginRejected and the plugin's critical logs.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, clusters: map[string]*url.URL{}}
	g.upstream, _ = parseBase(cfg.Upstream)
	for name, base := range cfg.Clusters {
		g.clusters[name], _ = parseBase(base)
	}
	g.client = &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			// Envoy passes bodies through as they are encoded.
			DisableCompression: true,
		},
		// Envoy's router does not follow redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	g.shared.init()
	g.queues.init()
	g.metrics.init()
	g.ctx, g.cancel = context.WithCancel(context.Background())

	g.runtime = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compilationCache))
	fail := func(err error) (*Gateway, error) {
		g.cancel()
		g.wg.Wait()
		_ = g.runtime.Close(context.Background())
		return nil, err
	}
	var err error
	if g.compiled, err = g.runtime.CompileModule(ctx, cfg.Wasm); err != nil {
		return fail(fmt.Errorf("gateway: compile the plugin: %w", err))
	}
	if err := instantiateWASI(ctx, g.runtime, cfg.EnvoyWASI); err != nil {
		return fail(fmt.Errorf("gateway: instantiate WASI: %w", err))
	}
	if err := g.instantiateHost(ctx); err != nil {
		return fail(fmt.Errorf("gateway: instantiate the proxy-wasm host: %w", err))
	}
	if cfg.ServiceConfig != nil {
		if g.service, err = g.startVM(ctx, "service", cfg.ServiceConfig); err != nil {
			return fail(err)
		}
	}
	for i := range cfg.Workers {
		v, err := g.startVM(ctx, fmt.Sprintf("worker-%d", i), cfg.PluginConfig)
		if err != nil {
			return fail(err)
		}
		g.workers = append(g.workers, v)
	}
	return g, nil
}

// vms returns every VM, the service first.
func (g *Gateway) vms() []*vm {
	if g.service == nil {
		return g.workers
	}
	return append([]*vm{g.service}, g.workers...)
}

// Close stops the gateway as Envoy stops: it refuses new requests, aborts
// the upstream requests and HTTP calls in flight, waits for the requests
// being served and the VMs' loops to end, gives each root context
// proxy_on_done and proxy_on_delete, and closes the runtime. It is safe to
// call more than once.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		g.cancel()
		g.inflight.Wait()
		g.wg.Wait()
		for _, v := range g.vms() {
			v.mu.Lock()
			v.invoke(exportOnDone, v.rootID, uint64(v.rootID))
			v.invoke(exportOnDelete, v.rootID, uint64(v.rootID))
			v.mu.Unlock()
		}
		g.client.CloseIdleConnections()
		g.closeErr = g.runtime.Close(context.Background())
	})
	return g.closeErr
}

// enter admits one request unless the gateway is closed.
func (g *Gateway) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.inflight.Add(1)
	return true
}

// Metrics returns the plugin's metrics by the names it defined them with
// (Envoy shows them with a "wasmcustom." prefix). As in Envoy, a name is
// one stat shared by every VM: a counter is the sum of every VM's
// increments and a gauge the last value any VM left.
func (g *Gateway) Metrics() map[string]int64 {
	return g.metrics.snapshot()
}

// Logs returns what the plugin logged, oldest first (at most the last
// 10,000 entries).
func (g *Gateway) Logs() []LogEntry {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	return slices.Clone(g.logs)
}

// Health returns nil while every VM runs, and otherwise why each failed
// one failed (a trap, or the Go runtime exiting). Requests that land on a
// failed worker VM are answered 503, as Envoy's FAIL_CLOSED policy does.
func (g *Gateway) Health() error {
	var errs []error
	for _, v := range g.vms() {
		v.mu.Lock()
		if v.failed != nil {
			errs = append(errs, v.failed)
		}
		v.mu.Unlock()
	}
	return errors.Join(errs...)
}

// record keeps a log entry and passes it to the logger.
func (g *Gateway) record(vmName, level, msg string) {
	g.logMu.Lock()
	if len(g.logs) >= maxLogs {
		g.logs = slices.Delete(g.logs, 0, len(g.logs)-maxLogs+1)
	}
	g.logs = append(g.logs, LogEntry{Time: time.Now(), VM: vmName, Level: level, Message: msg})
	g.logMu.Unlock()
	lvl := slog.LevelInfo
	switch level {
	case "trace", "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error", "critical", "stderr":
		lvl = slog.LevelError
	}
	g.log.Log(context.Background(), lvl, msg, "vm", vmName, "plugin_level", level)
}

// criticalLogs returns the critical log lines and standard error of one VM.
func (g *Gateway) criticalLogs(vmName string) []string {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	var out []string
	for _, e := range g.logs {
		if e.VM == vmName && (e.Level == "critical" || e.Level == "stderr") {
			out = append(out, e.Message)
		}
	}
	return out
}

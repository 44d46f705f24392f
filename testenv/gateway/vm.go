package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// The functions the module exports and the host calls (proxy-wasm 0.2.1).
const (
	exportInitialize       = "_initialize"
	exportAllocate         = "proxy_on_memory_allocate"
	exportMalloc           = "malloc"
	exportContextCreate    = "proxy_on_context_create"
	exportVMStart          = "proxy_on_vm_start"
	exportConfigure        = "proxy_on_configure"
	exportTick             = "proxy_on_tick"
	exportQueueReady       = "proxy_on_queue_ready"
	exportHTTPCallResponse = "proxy_on_http_call_response"
	exportRequestHeaders   = "proxy_on_request_headers"
	exportRequestBody      = "proxy_on_request_body"
	exportRequestTrailers  = "proxy_on_request_trailers"
	exportResponseHeaders  = "proxy_on_response_headers"
	exportResponseBody     = "proxy_on_response_body"
	exportResponseTrailers = "proxy_on_response_trailers"
	exportOnDone           = "proxy_on_done"
	exportOnLog            = "proxy_on_log"
	exportOnDelete         = "proxy_on_delete"
)

// vm is one instance of the module: one Envoy worker thread's VM, or the
// service VM. A VM is single-threaded, as in Envoy: every call into it,
// whichever goroutine makes it, holds mu, and host functions run inside
// such a call, so they read and change the VM's state without further
// locking. Work that arrives from elsewhere (ticks, HTTP call responses,
// queue notifications) is posted to the VM's loop, which runs it after the
// current call returns: nothing calls into a VM re-entrantly except the
// memory allocation Envoy's host makes too.
type vm struct {
	g      *Gateway
	name   string
	config []byte
	// ctx is passed to every call into the module, so that host
	// functions find the VM (vmFrom).
	ctx   context.Context
	mod   api.Module
	fns   map[string]api.Function
	alloc api.Function

	mu sync.Mutex
	// Guarded by mu.
	rootID, lastID uint32
	// cur is the context the current call is for: proxy_set_effective_context
	// changes it.
	cur        uint32
	streams    map[uint32]*stream
	call       *callResponse // during proxy_on_http_call_response only
	metricIDs  map[uint32]*metric
	nextMetric uint32
	nextCall   uint32
	props      map[string][]byte // set_property on the root context
	failed     error

	tickPeriod atomic.Int64 // asked for by the plugin; 0 is none
	tickSet    chan struct{}
	taskMu     sync.Mutex
	tasks      []func()
	taskReady  chan struct{}

	stdout, stderr *lineWriter

	// Counters the tests read: streams served and HTTP calls dispatched.
	served, calls atomic.Int64
}

type vmKey struct{}

// vmFrom returns the VM a host function is called for.
func vmFrom(ctx context.Context) *vm {
	v, _ := ctx.Value(vmKey{}).(*vm)
	return v
}

// startVM instantiates and starts one VM and its loop.
func (g *Gateway) startVM(ctx context.Context, name string, config []byte) (*vm, error) {
	v := &vm{
		g: g, name: name, config: config,
		fns:       map[string]api.Function{},
		streams:   map[uint32]*stream{},
		metricIDs: map[uint32]*metric{},
		props:     map[string][]byte{},
		tickSet:   make(chan struct{}, 1),
		taskReady: make(chan struct{}, 1),
	}
	v.stdout = &lineWriter{g: g, vm: name, level: "stdout"}
	v.stderr = &lineWriter{g: g, vm: name, level: "stderr"}
	v.ctx = context.WithValue(context.Background(), vmKey{}, v)
	mc := wazero.NewModuleConfig().
		WithName(name).
		WithStartFunctions(). // _initialize is called below, under the lock
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithStdout(v.stdout).
		WithStderr(v.stderr)
	mod, err := g.runtime.InstantiateModule(v.ctx, g.compiled, mc)
	if err != nil {
		return nil, fmt.Errorf("gateway: instantiate VM %s: %w", name, err)
	}
	v.mod = mod
	for _, n := range []string{
		exportInitialize, exportContextCreate, exportVMStart, exportConfigure, exportTick, exportQueueReady,
		exportHTTPCallResponse, exportRequestHeaders, exportRequestBody, exportRequestTrailers,
		exportResponseHeaders, exportResponseBody, exportResponseTrailers, exportOnDone, exportOnLog, exportOnDelete,
	} {
		if f := mod.ExportedFunction(n); f != nil {
			v.fns[n] = f
		}
	}
	if v.alloc = mod.ExportedFunction(exportAllocate); v.alloc == nil {
		v.alloc = mod.ExportedFunction(exportMalloc)
	}
	if v.alloc == nil {
		return nil, fmt.Errorf("gateway: VM %s: the module exports neither %s nor %s", name, exportAllocate, exportMalloc)
	}

	v.mu.Lock()
	err = v.start()
	v.mu.Unlock()
	if err != nil {
		return nil, err
	}
	g.wg.Add(1)
	go v.loop()
	return v, nil
}

// start runs the module's initialization and starts the root context, in
// Envoy's order. v.mu must be held.
func (v *vm) start() error {
	if _, ok := v.invoke(exportInitialize, 0); !ok {
		return fmt.Errorf("gateway: VM %s: %w", v.name, v.failed)
	}
	v.rootID = v.newID()
	if _, ok := v.invoke(exportContextCreate, v.rootID, uint64(v.rootID), 0); !ok {
		return fmt.Errorf("gateway: VM %s: %w", v.name, v.failed)
	}
	res, ok := v.invoke(exportVMStart, v.rootID, uint64(v.rootID), 0)
	if !ok {
		return fmt.Errorf("gateway: VM %s: %w", v.name, v.failed)
	}
	if v.fns[exportVMStart] != nil && uint32(res) == 0 {
		return v.rejected("proxy_on_vm_start")
	}
	res, ok = v.invoke(exportConfigure, v.rootID, uint64(v.rootID), uint64(len(v.config)))
	if !ok {
		return fmt.Errorf("gateway: VM %s: %w", v.name, v.failed)
	}
	if v.fns[exportConfigure] != nil && uint32(res) == 0 {
		return v.rejected("proxy_on_configure")
	}
	return nil
}

func (v *vm) rejected(callback string) error {
	logs := v.g.criticalLogs(v.name)
	if len(logs) == 0 {
		return fmt.Errorf("%w: VM %s: %s returned false (the plugin logged nothing critical)", ErrPluginRejected, v.name, callback)
	}
	return fmt.Errorf("%w: VM %s: %s returned false: %s", ErrPluginRejected, v.name, callback, strings.Join(logs, "; "))
}

// newID allocates a context id. Root and stream contexts share one
// counter, as in Envoy.
func (v *vm) newID() uint32 {
	v.lastID++
	return v.lastID
}

// invoke calls the exported function name for context ctxID and returns
// its result. An export the module lacks is a no-op answering 0 (Continue).
// ok is false when the VM has failed, now or before: Envoy then stops
// using it. v.mu must be held.
func (v *vm) invoke(name string, ctxID uint32, args ...uint64) (result uint64, ok bool) {
	if v.failed != nil {
		return 0, false
	}
	fn := v.fns[name]
	if fn == nil {
		return 0, true
	}
	v.cur = ctxID
	res, err := fn.Call(v.ctx, args...)
	if err != nil {
		v.fail(name, err)
		return 0, false
	}
	if len(res) == 0 {
		return 0, true
	}
	return res[0], true
}

// fail marks the VM failed: a trap, or the guest exited (the Go runtime
// exits with code 2 after a fatal error or an unrecovered panic).
func (v *vm) fail(export string, err error) {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		v.failed = fmt.Errorf("VM %s exited with code %d in %s; its standard error ended with: %s",
			v.name, exit.ExitCode(), export, v.stderr.tailString())
	} else {
		v.failed = fmt.Errorf("VM %s failed in %s: %w", v.name, export, err)
	}
	v.g.record(v.name, "critical", "gateway: "+v.failed.Error())
	for _, s := range v.streams {
		s.signal() // streams waiting for the plugin give up
	}
}

// loop is the VM's event loop, Envoy's worker dispatcher: it fires the
// ticks and runs the posted work, each under the VM's lock, until the
// gateway closes.
func (v *vm) loop() {
	defer v.g.wg.Done()
	timer := time.NewTimer(time.Hour)
	arm := func() {
		if d := v.effectiveTick(); d > 0 {
			timer.Reset(d)
		} else {
			timer.Stop()
		}
	}
	arm()
	defer timer.Stop()
	for {
		select {
		case <-v.g.ctx.Done():
			return
		case <-v.tickSet:
			arm()
		case <-v.taskReady:
			v.runTasks()
		case <-timer.C:
			v.mu.Lock()
			v.invoke(exportTick, v.rootID, uint64(v.rootID))
			v.mu.Unlock()
			// Like Envoy, the next tick is a period after this one
			// returned.
			arm()
		}
	}
}

// effectiveTick is the tick period in force.
func (v *vm) effectiveTick() time.Duration {
	d := time.Duration(v.tickPeriod.Load())
	if d > 0 && v.g.cfg.TickOverride > 0 {
		return v.g.cfg.TickOverride
	}
	return d
}

// post queues work for the VM's loop. It never blocks and never calls into
// the VM, so it is safe from inside a host function of any VM.
func (v *vm) post(task func()) {
	v.taskMu.Lock()
	v.tasks = append(v.tasks, task)
	v.taskMu.Unlock()
	select {
	case v.taskReady <- struct{}{}:
	default:
	}
}

func (v *vm) runTasks() {
	v.taskMu.Lock()
	tasks := v.tasks
	v.tasks = nil
	v.taskMu.Unlock()
	for _, t := range tasks {
		v.mu.Lock()
		t()
		v.mu.Unlock()
	}
}

// lineWriter turns a VM's standard output or error into log entries, one
// per line, and remembers the last lines for error messages.
type lineWriter struct {
	g     *Gateway
	vm    string
	level string

	mu      sync.Mutex
	partial []byte
	tail    []string
}

// tailLines is how many lines of standard error a VM failure quotes.
const tailLines = 8

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.g.record(w.vm, w.level, line)
		w.tail = append(w.tail, line)
		if len(w.tail) > tailLines {
			w.tail = w.tail[1:]
		}
	}
	return len(p), nil
}

func (w *lineWriter) tailString() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := w.tail
	if len(w.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(w.partial))
	}
	if len(lines) == 0 {
		return "(nothing)"
	}
	return strings.Join(lines, " | ")
}

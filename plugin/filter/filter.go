// Package filter is Knaight's enforcement point: the logic of the proxy-wasm
// filter that Envoy runs in front of MCP servers, where every agent request
// is allowed or denied. The plugin's main package only registers
// NewVMContext with the SDK, so that everything here can be tested natively
// and against the compiled WebAssembly binary alike.
//
// The filter decides from a policy snapshot that the manager signs and
// pushes, and when it has no snapshot it fails closed. This first version has
// no snapshot source yet, so it is honest about it: it validates its plugin
// configuration (see Config) and answers every HTTP request itself with 503,
// reason snapshot_unavailable, and a JSON-RPC error body, never forwarding
// anything upstream. Snapshot polling and the token, HMAC and policy checks
// come later.
//
// The SDK does not recover panics, and a panic that escapes a callback
// crashes the VM. Every callback here therefore recovers: a panic while
// handling a request becomes a denial with reason internal_error, never an
// allow, and a panic while starting makes the plugin fail to start.
package filter

import (
	"errors"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// Names of the guarded callbacks, passed to testHook and used in logs.
const (
	cbPluginStart      = "plugin_start"
	cbRequestHeaders   = "request_headers"
	cbRequestBody      = "request_body"
	cbRequestTrailers  = "request_trailers"
	cbResponseHeaders  = "response_headers"
	cbResponseBody     = "response_body"
	cbResponseTrailers = "response_trailers"
	cbStreamDone       = "stream_done"
)

// NewVMContext returns the filter's root context, to be registered with
// proxywasm.SetVMContext in the plugin's init (or handed to the SDK's
// proxytest emulator in tests). Each plugin context it creates reads and
// validates its own configuration in OnPluginStart.
func NewVMContext() types.VMContext {
	return &vmContext{}
}

// vmContext implements types.VMContext. The VM configuration is not used.
type vmContext struct {
	types.DefaultVMContext
}

// NewPluginContext implements types.VMContext.
func (*vmContext) NewPluginContext(uint32) types.PluginContext {
	return &pluginContext{}
}

// pluginContext implements types.PluginContext: one per filter
// configuration.
type pluginContext struct {
	types.DefaultPluginContext
	config Config
}

// OnPluginStart reads and validates the plugin configuration. An invalid or
// missing one is logged at critical level, naming the field, and the plugin
// fails to start, so Envoy rejects the filter instead of running it
// misconfigured.
func (p *pluginContext) OnPluginStart(pluginConfigurationSize int) (status types.OnPluginStartStatus) {
	defer func() {
		if r := recover(); r != nil {
			proxywasm.LogCriticalf("knaight: panic while starting the plugin: %v; refusing to start", r)
			status = types.OnPluginStartStatusFailed
		}
	}()
	callTestHook(cbPluginStart)

	var data []byte
	if pluginConfigurationSize > 0 {
		var err error
		data, err = proxywasm.GetPluginConfiguration()
		if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
			proxywasm.LogCriticalf("knaight: cannot read the plugin configuration: %v; refusing to start", err)
			return types.OnPluginStartStatusFailed
		}
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		proxywasm.LogCriticalf("knaight: invalid %v; refusing to start", err)
		return types.OnPluginStartStatusFailed
	}
	p.config = cfg
	proxywasm.LogInfof("knaight: filter started for organization %q, environment %q; no policy snapshot source yet, so every request is denied with %d (%s)",
		cfg.Organization, cfg.Environment, StatusUnavailable, ReasonSnapshotUnavailable)
	return types.OnPluginStartStatusOK
}

// NewHttpContext implements types.PluginContext.
func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{}
}

// httpContext implements types.HttpContext: one per HTTP stream.
type httpContext struct {
	// responded is set once the filter has sent its local response for this
	// stream, so that no callback sends a second one.
	responded bool
}

// OnHttpRequestHeaders denies the request: without a policy snapshot there
// is nothing to decide from.
func (h *httpContext) OnHttpRequestHeaders(_ int, _ bool) (action types.Action) {
	defer h.recoverDeny(cbRequestHeaders, &action)
	callTestHook(cbRequestHeaders)
	return h.deny(ReasonSnapshotUnavailable)
}

// OnHttpRequestBody denies too. After the headers were denied the host does
// not call it; should it, the request is paused, never forwarded.
func (h *httpContext) OnHttpRequestBody(_ int, _ bool) (action types.Action) {
	defer h.recoverDeny(cbRequestBody, &action)
	callTestHook(cbRequestBody)
	return h.deny(ReasonSnapshotUnavailable)
}

// OnHttpRequestTrailers denies, as OnHttpRequestBody does.
func (h *httpContext) OnHttpRequestTrailers(_ int) (action types.Action) {
	defer h.recoverDeny(cbRequestTrailers, &action)
	callTestHook(cbRequestTrailers)
	return h.deny(ReasonSnapshotUnavailable)
}

// OnHttpResponseHeaders lets the response through: the only response a
// stream can have in this version is the filter's own denial.
func (h *httpContext) OnHttpResponseHeaders(_ int, _ bool) (action types.Action) {
	defer h.recoverDeny(cbResponseHeaders, &action)
	callTestHook(cbResponseHeaders)
	return types.ActionContinue
}

// OnHttpResponseBody lets the response body through, as
// OnHttpResponseHeaders does.
func (h *httpContext) OnHttpResponseBody(_ int, _ bool) (action types.Action) {
	defer h.recoverDeny(cbResponseBody, &action)
	callTestHook(cbResponseBody)
	return types.ActionContinue
}

// OnHttpResponseTrailers lets the response trailers through, as
// OnHttpResponseHeaders does.
func (h *httpContext) OnHttpResponseTrailers(_ int) (action types.Action) {
	defer h.recoverDeny(cbResponseTrailers, &action)
	callTestHook(cbResponseTrailers)
	return types.ActionContinue
}

// OnHttpStreamDone only recovers: the stream is over, there is nothing left
// to deny. Decision reporting will hook in here.
func (h *httpContext) OnHttpStreamDone() {
	defer func() {
		if r := recover(); r != nil {
			proxywasm.LogCriticalf("knaight: panic in %s: %v", cbStreamDone, r)
		}
	}()
	callTestHook(cbStreamDone)
}

// deny sends the local 503 response for reason, once per stream, and pauses
// the stream so that the request never reaches the upstream. If the host
// refuses the local response the stream stays paused: a hung request is a
// failure, a forwarded one would be a breach.
func (h *httpContext) deny(reason Reason) types.Action {
	if h.responded {
		return types.ActionPause
	}
	d := newDenial(reason)
	if err := proxywasm.SendHttpResponse(d.status, d.headers, d.body, -1); err != nil {
		proxywasm.LogCriticalf("knaight: cannot send the %d (%s) response: %v; keeping the stream paused", d.status, reason, err)
		return types.ActionPause
	}
	h.responded = true
	return types.ActionPause
}

// recoverDeny is deferred by every HTTP callback that can still change the
// stream. It turns a panic into a denial with reason internal_error: a local
// 503 unless one was already sent, and ActionPause. It must be deferred
// directly (recover only works in the deferred call itself).
func (h *httpContext) recoverDeny(callback string, action *types.Action) {
	r := recover()
	if r == nil {
		return
	}
	*action = types.ActionPause // whatever happens below, never continue
	defer func() {
		// A second panic while denying must not escape into the SDK either.
		if r2 := recover(); r2 != nil {
			*action = types.ActionPause
		}
	}()
	proxywasm.LogCriticalf("knaight: panic in %s: %v; denying the request", callback, r)
	*action = h.deny(ReasonInternalError)
}

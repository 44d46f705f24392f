// Package filter is Knaight's enforcement point: the logic of the proxy-wasm
// filter that Envoy runs in front of MCP servers, where every agent request
// is allowed or denied. The plugin's main package only registers
// NewVMContext with the SDK, so that everything here can be tested natively
// and against the compiled WebAssembly binary alike.
//
// The filter decides from a snapshot the manager signs and pushes (contract
// 1): one VM per proxy polls it (poller.go) and publishes it in shared data,
// and every VM decodes it once per version (state.go). Each request then
// runs the checks of the architecture's request sequence (http.go): the
// token, the request signature with its timestamp and replay check, the
// agent's pinned identity, the MCP message and the policy. An allowed
// request is re-signed for the upstream; a denied one gets a local response
// with a JSON-RPC error body and the reason. Every decision becomes a record
// (contract 2) that the poller reports to the manager. Without a fresh
// snapshot the filter fails closed.
//
// The SDK does not recover panics, and a panic that escapes a callback
// crashes the VM. Every callback here therefore recovers: a panic while
// handling a request becomes a denial with reason internal_error, never an
// allow, and a panic while starting makes the plugin fail to start.
package filter

import (
	"bytes"
	"errors"
	"strings"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/shared/decision"
)

// Names of the guarded callbacks, passed to testHook and used in logs.
const (
	cbPluginStart      = "plugin_start"
	cbTick             = "tick"
	cbRequestHeaders   = "request_headers"
	cbRequestBody      = "request_body"
	cbRequestTrailers  = "request_trailers"
	cbResponseHeaders  = "response_headers"
	cbResponseBody     = "response_body"
	cbResponseTrailers = "response_trailers"
	cbStreamDone       = "stream_done"
)

// tokenCacheSize bounds the verified tokens one VM keeps.
const tokenCacheSize = 10000

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
// configuration and VM. It holds the VM's view of the snapshot, its token
// cache and, when it holds the lease, the poller role.
type pluginContext struct {
	types.DefaultPluginContext
	config  Config
	keys    sharedKeys
	view    *view
	tokens  *tokenCache
	metrics *metrics
	poller  *poller
	queueID uint32
	// replayKeys are the shared-data keys of the replay slots, and
	// replayBuf the buffer the replay check builds a slot's value in.
	replayKeys []string
	replayBuf  []byte
	// recordBuf is the buffer decision records are encoded in.
	recordBuf []byte
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
	p.keys = newSharedKeys(cfg)
	p.tokens = newTokenCache(tokenCacheSize)
	p.metrics = newMetrics()
	p.poller = newPoller()
	if err := p.initReplaySlots(); err != nil {
		proxywasm.LogCriticalf("knaight: cannot create the replay state in shared data: %v; refusing to start", err)
		return types.OnPluginStartStatusFailed
	}
	if p.queueID, err = proxywasm.RegisterSharedQueue(p.keys.queue); err != nil {
		proxywasm.LogCriticalf("knaight: cannot register the decision queue: %v; refusing to start", err)
		return types.OnPluginStartStatusFailed
	}
	if err := proxywasm.SetTickPeriodMilliSeconds(uint32(tickPeriod / time.Millisecond)); err != nil {
		proxywasm.LogCriticalf("knaight: cannot set the tick period: %v; refusing to start", err)
		return types.OnPluginStartStatusFailed
	}
	role := "filter"
	if cfg.Service {
		role = "poller service"
	}
	proxywasm.LogInfof("knaight: %s started for organization %q, environment %q, gateway %s, manager cluster %q",
		role, cfg.Organization, cfg.Environment, cfg.Credential.GatewayID, cfg.ManagerCluster)
	return types.OnPluginStartStatusOK
}

// OnTick runs the poller role.
func (p *pluginContext) OnTick() {
	defer p.recoverCallback(cbTick)
	callTestHook(cbTick)
	p.onTick(time.Now())
}

// recoverCallback is deferred by root-context callbacks: a panic there is
// logged and the VM goes on (the next tick retries).
func (p *pluginContext) recoverCallback(callback string) {
	if r := recover(); r != nil {
		proxywasm.LogCriticalf("knaight: panic in %s: %v", callback, r)
	}
}

// NewHttpContext implements types.PluginContext.
func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{p: p}
}

// enqueue hands a decision record to the poller through the shared queue.
func (p *pluginContext) enqueue(r *decision.Record) {
	data := appendRecord(p.recordBuf[:0], r)
	if len(data) > decision.MaxRecordJSON {
		// Escaping can make a record of valid field lengths too large for
		// the manager; shorten what the client chose rather than lose it.
		for _, f := range []*string{&r.Agent, &r.Path, &r.MCPMethod, &r.Name, &r.Message} {
			*f = truncate(*f, 128)
		}
		data = appendRecord(data[:0], r)
	}
	p.recordBuf = data
	// The record is encoded in a buffer kept for the next one and enqueued
	// as a copy of its exact size: Envoy copies what is enqueued, but the
	// SDK's emulator keeps the very slice, so each record needs its own.
	data = bytes.Clone(data)
	if err := proxywasm.EnqueueSharedQueue(p.queueID, data); err != nil {
		p.metrics.queueDropped.Increment(1)
		proxywasm.LogErrorf("knaight: cannot enqueue decision record %s: %v", r.ID, err)
	}
}

// isMetadataPath reports whether path asks for the RFC 9728 metadata.
func (p *pluginContext) isMetadataPath(path string) bool {
	path, _, _ = strings.Cut(path, "?")
	return path == p.config.metadataPaths[0] || path == p.config.metadataPaths[1]
}

package envoyconfig

import (
	"errors"
	"fmt"
	"slices"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpwasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/knaight/knaight/plugin/filter"
)

// pollTimeoutPad is what the filter adds to pollWaitSeconds for the timeout
// of its snapshot long poll (plugin/filter/poller.go).
const pollTimeoutPad = 10 * time.Second

// Plugin is one proxy-wasm plugin found in Envoy configuration.
type Plugin struct {
	// Path locates the plugin in the configuration, for messages.
	Path string
	// Service is true for an envoy.bootstrap.wasm service, false for an
	// HTTP filter.
	Service bool
	// Singleton is the service's singleton flag.
	Singleton bool
	// Envoy is the plugin's Envoy configuration.
	Envoy *wasmv3.PluginConfig
	// Config is the plugin configuration as the filter parsed it.
	Config filter.Config
}

// Plugins finds every proxy-wasm plugin in m and parses each one's plugin
// configuration with the filter's parser. Knaight runs the filter as an
// HTTP filter and as a bootstrap service only: a plugin anywhere else (a
// network filter, a stats sink) is an error rather than left unchecked.
func Plugins(m proto.Message) ([]Plugin, error) {
	var out []Plugin
	configs := 0
	err := walk(m, "", func(path string, msg proto.Message, _ bool) error {
		switch v := msg.(type) {
		case *httpwasmv3.Wasm:
			out = append(out, Plugin{Path: where(path), Envoy: v.GetConfig()})
		case *wasmv3.WasmService:
			out = append(out, Plugin{Path: where(path), Service: true, Singleton: v.GetSingleton(), Envoy: v.GetConfig()})
		case *wasmv3.PluginConfig:
			configs++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if configs != len(out) {
		return nil, fmt.Errorf("%d proxy-wasm plugins outside an HTTP filter or a bootstrap service", configs-len(out))
	}
	var errs []error
	for i := range out {
		js, err := PluginJSON(out[i].Envoy)
		if err == nil {
			out[i].Config, err = filter.ParseConfig(js)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", out[i].Path, err))
		}
	}
	return out, errors.Join(errs...)
}

// PluginJSON returns a plugin's configuration, which the filter reads as
// JSON: Envoy passes a google.protobuf.StringValue's text as it is, and
// any other type as serialized protobuf, which the filter cannot parse.
func PluginJSON(pc *wasmv3.PluginConfig) ([]byte, error) {
	c := pc.GetConfiguration()
	if c == nil {
		return nil, errors.New("the plugin has no configuration")
	}
	var s wrapperspb.StringValue
	if err := c.UnmarshalTo(&s); err != nil {
		return nil, fmt.Errorf("configuration is a %s, want a google.protobuf.StringValue holding JSON", c.GetTypeUrl())
	}
	return []byte(s.GetValue()), nil
}

// Gateway is an Envoy bootstrap that runs the Knaight filter, validated.
type Gateway struct {
	// Bootstrap is the decoded configuration.
	Bootstrap *bootstrapv3.Bootstrap
	// Plugins are its proxy-wasm plugins, filters and service alike.
	Plugins []Plugin
}

// LoadGateway decodes and validates an Envoy bootstrap (Decode, Validate,
// Plugins) and checks what a Knaight gateway needs beyond valid protos:
//
//   - every Knaight HTTP filter fails closed (failure_policy FAIL_CLOSED)
//     and sets allow_on_headers_stop_iteration, without which Envoy withholds
//     the body from a filter that holds the headers;
//   - it comes before the router, which is last;
//   - one envoy.bootstrap.wasm singleton service polls, with "service": true
//     in its plugin configuration (and only there), the filters' root_id and
//     vm_config (so the same vm_id: shared data and queues are per vm_id),
//     and their organization, environment and manager cluster;
//   - the manager cluster, and every cluster a route or a remote code
//     source names, exists; no max_stream_duration on the manager cluster
//     cuts the long poll (pollWaitSeconds + 10 s).
//
// Every problem found is reported.
func LoadGateway(doc []byte) (*Gateway, error) {
	var b bootstrapv3.Bootstrap
	if err := Decode(doc, &b); err != nil {
		return nil, err
	}
	if err := Validate(&b); err != nil {
		return nil, err
	}
	plugins, err := Plugins(&b)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Bootstrap: &b, Plugins: plugins}
	return g, g.check()
}

func (g *Gateway) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var filters, services []Plugin
	for _, p := range g.Plugins {
		if p.Service {
			services = append(services, p)
		} else {
			filters = append(filters, p)
		}
	}
	if len(filters) == 0 {
		bad("no Knaight HTTP filter (envoy.extensions.filters.http.wasm.v3.Wasm)")
	}
	for _, f := range filters {
		errs = append(errs, checkFilter(f)...)
	}
	if len(services) != 1 {
		bad("want one envoy.bootstrap.wasm service (the poller), have %d", len(services))
	}
	for _, s := range services {
		if !s.Singleton {
			bad("%s: the poller service must be a singleton: one VM for the proxy, not one per worker", s.Path)
		}
		if !s.Config.Service {
			bad(`%s: the service's plugin configuration needs "service": true`, s.Path)
		}
		for _, f := range filters {
			if s.Envoy.GetRootId() != f.Envoy.GetRootId() {
				bad("%s: root_id %q differs from the filter's %q at %s", s.Path, s.Envoy.GetRootId(), f.Envoy.GetRootId(), f.Path)
			}
			if !proto.Equal(s.Envoy.GetVmConfig(), f.Envoy.GetVmConfig()) {
				bad("%s: vm_config differs from the filter's at %s: the service and the filters must run in the same vm_id, on the same code, to share data and queues", s.Path, f.Path)
			}
			if s.Config.Organization != f.Config.Organization || s.Config.Environment != f.Config.Environment {
				bad("%s: organization and environment %s/%s differ from the filter's %s/%s at %s: shared data is keyed by them",
					s.Path, s.Config.Organization, s.Config.Environment, f.Config.Organization, f.Config.Environment, f.Path)
			}
			if s.Config.ManagerCluster != f.Config.ManagerCluster {
				bad("%s: managerCluster %q differs from the filter's %q at %s", s.Path, s.Config.ManagerCluster, f.Config.ManagerCluster, f.Path)
			}
		}
	}

	clusters := map[string]*clusterInfo{}
	for _, c := range g.Bootstrap.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = &clusterInfo{maxStream: maxStreamDuration(c.GetTypedExtensionProtocolOptions())}
	}
	for _, p := range g.Plugins {
		c, ok := clusters[p.Config.ManagerCluster]
		if !ok {
			bad("%s: managerCluster %q is not a cluster of this bootstrap", p.Path, p.Config.ManagerCluster)
			continue
		}
		if need := p.Config.PollWait + pollTimeoutPad; c.maxStream > 0 && c.maxStream < need {
			bad("%s: cluster %q limits streams to %s, under the %s a snapshot long poll may take", p.Path, p.Config.ManagerCluster, c.maxStream, need)
		}
	}
	err := walk(g.Bootstrap, "", func(path string, msg proto.Message, _ bool) error {
		var name string
		switch v := msg.(type) {
		case *routev3.RouteAction:
			name = v.GetCluster()
		case *corev3.HttpUri:
			name = v.GetCluster()
		case *hcmv3.HttpConnectionManager:
			errs = append(errs, checkFilterOrder(where(path), v.GetHttpFilters())...)
		}
		if _, ok := clusters[name]; name != "" && !ok {
			bad("%s: cluster %q is not defined", where(path), name)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type clusterInfo struct {
	maxStream time.Duration
}

// maxStreamDuration is the max_stream_duration a cluster's HTTP protocol
// options set, or 0.
func maxStreamDuration(opts map[string]*anypb.Any) time.Duration {
	var po upstreamhttpv3.HttpProtocolOptions
	a, ok := opts["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok || a.UnmarshalTo(&po) != nil {
		return 0
	}
	return po.GetCommonHttpProtocolOptions().GetMaxStreamDuration().AsDuration()
}

// checkFilter checks what every Knaight HTTP filter needs, in Envoy and in
// Istio alike.
func checkFilter(f Plugin) []error {
	var errs []error
	if f.Envoy.GetFailurePolicy() != wasmv3.FailurePolicy_FAIL_CLOSED {
		errs = append(errs, fmt.Errorf("%s: failure_policy is %s, want FAIL_CLOSED: a filter whose VM failed must answer 503, never let requests through", f.Path, f.Envoy.GetFailurePolicy()))
	}
	if !f.Envoy.GetAllowOnHeadersStopIteration().GetValue() {
		errs = append(errs, fmt.Errorf("%s: allow_on_headers_stop_iteration must be true: the filter holds the headers while it reads the body", f.Path))
	}
	if f.Config.Service {
		errs = append(errs, fmt.Errorf(`%s: an HTTP filter's plugin configuration must not say "service": true; that belongs to the singleton service alone`, f.Path))
	}
	return errs
}

// checkFilterOrder checks that every wasm filter of an HTTP connection
// manager comes before the router, and the router last.
func checkFilterOrder(path string, fs []*hcmv3.HttpFilter) []error {
	router := slices.IndexFunc(fs, func(f *hcmv3.HttpFilter) bool { return isType(f.GetTypedConfig(), &routerv3.Router{}) })
	if router < 0 {
		return []error{fmt.Errorf("%s: no router filter", path)}
	}
	var errs []error
	if router != len(fs)-1 {
		errs = append(errs, fmt.Errorf("%s: the router is not the last HTTP filter", path))
	}
	for i, f := range fs {
		if isType(f.GetTypedConfig(), &httpwasmv3.Wasm{}) && i > router {
			errs = append(errs, fmt.Errorf("%s: wasm filter %q comes after the router, so it never runs", path, f.GetName()))
		}
	}
	return errs
}

func isType(a *anypb.Any, m proto.Message) bool {
	return a != nil && a.MessageIs(m)
}

package envoyconfig

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpwasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Local says where the parts of a gateway run on this machine; Render puts
// it into a bootstrap such as envoy/envoy.yaml.
type Local struct {
	// Listen is the MCP listener's host:port, Admin the admin interface's.
	Listen, Admin string
	// Upstream is the MCP server's host:port, for the cluster the routes
	// name; Manager the manager's, for the plugins' managerCluster.
	Upstream, Manager string
	// Wasm is the absolute path of plugin.wasm.
	Wasm string
	// FilterConfig and ServiceConfig are the plugin configurations of the
	// HTTP filters and of the poller service ("service": true).
	FilterConfig, ServiceConfig []byte
}

// Render returns the bootstrap doc (YAML or JSON) with l applied, as JSON
// for envoy -c. It keeps every setting doc makes and replaces only
// addresses, the module's location and the plugin configurations, so what
// runs is the file under test. doc must pass LoadGateway, and so must the
// result; its listener, and the clusters of the routes and of the
// manager, must be single static endpoints, as in envoy/envoy.yaml.
func Render(doc []byte, l Local) ([]byte, error) {
	g, err := LoadGateway(doc)
	if err != nil {
		return nil, err
	}
	b := g.Bootstrap
	if err := setAddress(b.GetAdmin().GetAddress(), l.Admin); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		return nil, fmt.Errorf("want one listener, have %d", len(listeners))
	}
	if err := setAddress(listeners[0].GetAddress(), l.Listen); err != nil {
		return nil, fmt.Errorf("listener %q: %w", listeners[0].GetName(), err)
	}

	routed := map[string]bool{}
	err = edit(b, func(_ string, m proto.Message, _ bool) error {
		var pc *wasmv3.PluginConfig
		cfg := l.FilterConfig
		switch v := m.(type) {
		case *httpwasmv3.Wasm:
			pc = v.GetConfig()
		case *wasmv3.WasmService:
			pc, cfg = v.GetConfig(), l.ServiceConfig
		case *routev3.RouteAction:
			routed[v.GetCluster()] = true
			return nil
		default:
			return nil
		}
		if pc.GetVmConfig() == nil {
			return errors.New("a proxy-wasm plugin without vm_config")
		}
		pc.GetVmConfig().Code = &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{
			Local: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: l.Wasm}}}}
		pc.Configuration, err = anypb.New(wrapperspb.String(string(cfg)))
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(routed) != 1 {
		return nil, fmt.Errorf("want routes to one upstream cluster, have %d", len(routed))
	}
	addrs := map[string]string{g.Plugins[0].Config.ManagerCluster: l.Manager}
	for name := range routed {
		addrs[name] = l.Upstream
	}
	for name, addr := range addrs {
		if err := setEndpoint(b.GetStaticResources().GetClusters(), name, addr); err != nil {
			return nil, err
		}
	}

	out, err := protojson.MarshalOptions{Indent: "  "}.Marshal(b)
	if err != nil {
		return nil, err
	}
	if _, err := LoadGateway(out); err != nil {
		return nil, fmt.Errorf("the rendered configuration: %w", err)
	}
	return out, nil
}

// setEndpoint points the named cluster's one static endpoint at hostport.
func setEndpoint(cs []*clusterv3.Cluster, name, hostport string) error {
	for _, c := range cs {
		if c.GetName() != name {
			continue
		}
		eps := c.GetLoadAssignment().GetEndpoints()
		if c.GetType() != clusterv3.Cluster_STATIC || len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
			return fmt.Errorf("cluster %q: want a STATIC cluster with one endpoint", name)
		}
		if err := setAddress(eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress(), hostport); err != nil {
			return fmt.Errorf("cluster %q: %w", name, err)
		}
		return nil
	}
	return fmt.Errorf("no cluster %q", name)
}

// setAddress sets a socket address to host:port.
func setAddress(a *corev3.Address, hostport string) error {
	sa := a.GetSocketAddress()
	if sa == nil {
		return errors.New("not a socket address")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port %q: %w", port, err)
	}
	sa.Address = host
	sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(n)}
	return nil
}

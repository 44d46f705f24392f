package envoyconfig_test

import (
	"strings"
	"testing"

	"github.com/knaight/knaight/testenv/envoyconfig"
)

// TestRenderPutsALocalGatewayIntoTheShippedFiles renders the shipped
// bootstraps for a local run (what make run and the end-to-end suite hand
// to an Envoy on PATH) and checks that addresses, module and plugin
// configurations changed while every check LoadGateway makes still holds.
func TestRenderPutsALocalGatewayIntoTheShippedFiles(t *testing.T) {
	files := readConfigs(t)
	filterConfig := strings.ReplaceAll(`{
		"organization": "demo", "environment": "production",
		"managerCluster": "knaight_manager", "managerAuthority": "127.0.0.1:18080",
		"gatewayCredential": "kngw.11111111-2222-3333-4444-555555555555.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"snapshotKeys": {"snap_local": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
		"resource": "http://127.0.0.1:10001/mcp", "pollWaitSeconds": 20}`, "\t", "")
	serviceConfig := strings.Replace(filterConfig, `"pollWaitSeconds": 20`, `"pollWaitSeconds": 20, "service": true`, 1)
	local := envoyconfig.Local{
		Listen: "127.0.0.1:10001", Admin: "127.0.0.1:19901", Upstream: "127.0.0.1:19000", Manager: "127.0.0.1:18080",
		Wasm: "/tmp/knaight/plugin.wasm", FilterConfig: []byte(filterConfig), ServiceConfig: []byte(serviceConfig),
	}
	for _, name := range []string{"envoy.yaml", "envoy-remote-wasm.yaml"} {
		t.Run(name, func(t *testing.T) {
			out, err := envoyconfig.Render(files[name], local)
			if err != nil {
				t.Fatal(err)
			}
			g, err := envoyconfig.LoadGateway(out)
			if err != nil {
				t.Fatal(err)
			}
			b := g.Bootstrap
			if sa := b.GetAdmin().GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 19901 {
				t.Errorf("admin address %v", sa)
			}
			if sa := b.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 10001 {
				t.Errorf("listener address %v", sa)
			}
			ports := map[string]uint32{}
			for _, c := range b.GetStaticResources().GetClusters() {
				for _, e := range c.GetLoadAssignment().GetEndpoints() {
					for _, lb := range e.GetLbEndpoints() {
						ports[c.GetName()] = lb.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
					}
				}
			}
			if ports["mcp_upstream"] != 19000 || ports["knaight_manager"] != 18080 {
				t.Errorf("cluster ports %v, want mcp_upstream 19000 and knaight_manager 18080", ports)
			}
			if len(g.Plugins) != 2 {
				t.Fatalf("%d plugins, want the filter and the poller service", len(g.Plugins))
			}
			for _, p := range g.Plugins {
				if got := p.Envoy.GetVmConfig().GetCode().GetLocal().GetFilename(); got != local.Wasm {
					t.Errorf("%s: module %q, want %q", p.Path, got, local.Wasm)
				}
				c := p.Config
				if c.Organization != "demo" || c.ManagerAuthority != "127.0.0.1:18080" || c.Resource != "http://127.0.0.1:10001/mcp" ||
					c.Credential.GatewayID != "11111111-2222-3333-4444-555555555555" || c.Service != p.Service {
					t.Errorf("%s: plugin configuration %+v", p.Path, c)
				}
			}
			if strings.Contains(string(out), "REPLACE-with-the-pluginConfig") {
				t.Error("the placeholder credential survived")
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	doc := readConfigs(t)["envoy.yaml"]
	good := envoyconfig.Local{Listen: "127.0.0.1:1", Admin: "127.0.0.1:2", Upstream: "127.0.0.1:3", Manager: "127.0.0.1:4", Wasm: "/p.wasm"}
	for _, tt := range []struct {
		name, want string
		change     func(*envoyconfig.Local)
	}{
		{"a listener without a port", "listener", func(l *envoyconfig.Local) { l.Listen = "127.0.0.1" }},
		{"a port out of range", "port", func(l *envoyconfig.Local) { l.Upstream = "127.0.0.1:70000" }},
		{"a plugin configuration the filter refuses", `field "environment"`, func(l *envoyconfig.Local) { l.FilterConfig = []byte(`{"organization": "demo"}`) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := good
			l.FilterConfig = []byte(`{"organization": "demo", "environment": "production", "managerCluster": "knaight_manager", "managerAuthority": "m", "gatewayCredential": "kngw.11111111-2222-3333-4444-555555555555.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "snapshotKeys": {"k": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}, "resource": "http://127.0.0.1:1/mcp"}`)
			l.ServiceConfig = []byte(strings.Replace(string(l.FilterConfig), `{`, `{"service": true, `, 1))
			tt.change(&l)
			_, err := envoyconfig.Render(doc, l)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

package envoyconfig_test

import (
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/knaight/knaight/plugin/filter"
	"github.com/knaight/knaight/testenv/envoyconfig"
)

// envoyDir is the repository's envoy/ directory, from this package's.
var envoyDir = filepath.Join("..", "..", "envoy")

// promised are the files envoy/README.md documents. Every *.yaml under
// envoy/ is checked; these must be among them, so that a rename cannot
// leave the table empty and the test green.
var promised = []string{
	"envoy.yaml",
	"envoy-remote-wasm.yaml",
	"istio/wasmplugin.yaml",
	"istio/manager-serviceentry.yaml",
	"istio/envoyfilter-wasm.yaml",
}

// readConfigs returns every *.yaml under envoy/, by slash-separated path
// relative to it.
func readConfigs(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(envoyDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(envoyDir, p)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range promised {
		if _, ok := files[name]; !ok {
			t.Errorf("envoy/%s is missing", name)
		}
	}
	return files
}

// istioSet is the manifests of one directory, deployed together, and the
// clusters their ServiceEntries make.
type istioSet struct {
	manifests map[string][]envoyconfig.Manifest // by file
	clusters  map[string]bool
}

func readIstio(t *testing.T, files map[string][]byte) map[string]*istioSet {
	t.Helper()
	sets := map[string]*istioSet{}
	for name, data := range files {
		isManifest, err := envoyconfig.IsManifest(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !isManifest {
			continue
		}
		ms, err := envoyconfig.ReadManifests(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		dir := path.Dir(name)
		if sets[dir] == nil {
			sets[dir] = &istioSet{manifests: map[string][]envoyconfig.Manifest{}}
		}
		sets[dir].manifests[name] = ms
	}
	for dir, s := range sets {
		var all []envoyconfig.Manifest
		for _, ms := range s.manifests {
			all = append(all, ms...)
		}
		var err error
		if s.clusters, err = envoyconfig.IstioClusters(all); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}
	return sets
}

// TestEnvoyDirectory checks every configuration under envoy/: each Envoy
// bootstrap is decoded and validated with Envoy's protos, typed_config
// included, and checked as a Knaight gateway, and each Istio manifest is
// checked against the other manifests of its directory; every plugin
// configuration in them parses with the filter's own parser.
func TestEnvoyDirectory(t *testing.T) {
	files := readConfigs(t)
	sets := readIstio(t, files)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		t.Run(name, func(t *testing.T) {
			if set := sets[path.Dir(name)]; set != nil && set.manifests[name] != nil {
				if err := envoyconfig.CheckIstio(set.manifests[name], set.clusters); err != nil {
					t.Fatal(err)
				}
				return
			}
			g, err := envoyconfig.LoadGateway(files[name])
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range g.Plugins {
				t.Logf("%s: organization %s, environment %s, manager cluster %s, service %t",
					p.Path, p.Config.Organization, p.Config.Environment, p.Config.ManagerCluster, p.Config.Service)
			}
		})
	}
}

// TestValidateLooksInsideTypedConfig shows why Validate exists: the
// bootstrap's own ValidateAll accepts a wasm filter whose code has an empty
// file name, because the filter's configuration is packed in an Any.
func TestValidateLooksInsideTypedConfig(t *testing.T) {
	doc := edit(t, readConfigs(t)["envoy.yaml"], "filename: bin/plugin.wasm", `filename: ""`, -1)
	var b bootstrapv3.Bootstrap
	if err := envoyconfig.Decode(doc, &b); err != nil {
		t.Fatal(err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll: %v; the premise of this test no longer holds", err)
	}
	err := envoyconfig.Validate(&b)
	if err == nil || !strings.Contains(err.Error(), "Filename") {
		t.Fatalf("Validate: %v, want the empty file name refused", err)
	}
}

// edit replaces old by new in doc, n times (-1: every one), and fails
// unless old occurs exactly n times (at least once for -1), so that an
// edit of the configuration files cannot turn a row into a no-op.
func edit(t *testing.T, doc []byte, old, new string, n int) []byte {
	t.Helper()
	count := strings.Count(string(doc), old)
	if (n < 0 && count == 0) || (n >= 0 && count != n) {
		t.Fatalf("%q occurs %d times, want %d", old, count, n)
	}
	return []byte(strings.ReplaceAll(string(doc), old, new))
}

// TestGatewayRejects proves the checks bite: each row breaks one of the
// real Envoy bootstraps, as text or as a decoded message, and must be
// refused with a message naming the fault.
func TestGatewayRejects(t *testing.T) {
	files := readConfigs(t)
	const credential = `"gatewayCredential": "kngw.00000000-0000-0000-0000-000000000000.REPLACE-with-the-pluginConfig-from-gateways",`
	tests := []struct {
		name string
		file string
		// old is replaced by new, n times (-1: every time), or left alone
		// when empty.
		old, new string
		n        int
		// mutate, when set, changes the decoded bootstrap.
		mutate func(*bootstrapv3.Bootstrap)
		// want is part of the error; empty for a control row that must pass.
		want string
	}{
		{name: "unknown field inside the wasm filter's typed_config", file: "envoy.yaml",
			old: "allow_on_headers_stop_iteration: true", new: "allow_on_header_stop_iteration: true", n: 1,
			want: "allow_on_header_stop_iteration"},
		{name: "typed_config of an unregistered type", file: "envoy.yaml",
			old: "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", new: "envoy.extensions.access_loggers.nope.v3.Nope", n: 1,
			want: "envoy.extensions.access_loggers.nope.v3.Nope"},
		{name: "remote code without its sha256", file: "envoy-remote-wasm.yaml",
			old: `sha256: "0000000000000000000000000000000000000000000000000000000000000000"`, new: `sha256: ""`, n: 2,
			want: "Sha256"},
		{name: "deprecated fail_open", file: "envoy.yaml",
			old: "failure_policy: FAIL_CLOSED", new: "fail_open: true", n: 1,
			want: "fail_open is deprecated"},
		{name: "filter failing open", file: "envoy.yaml",
			old: "failure_policy: FAIL_CLOSED", new: "failure_policy: FAIL_OPEN", n: 1,
			want: "want FAIL_CLOSED"},
		{name: "filter that cannot hold the headers", file: "envoy.yaml",
			old: "allow_on_headers_stop_iteration: true", new: "allow_on_headers_stop_iteration: false", n: 1,
			want: "allow_on_headers_stop_iteration must be true"},
		{name: "misspelt plugin configuration field", file: "envoy.yaml",
			old: `"organization": "acme"`, new: `"organisation": "acme"`, n: 2,
			want: `field "organisation": is not a known field`},
		{name: "malformed gateway credential", file: "envoy.yaml",
			old: credential, new: `"gatewayCredential": "kngw.x.short",`, n: 2,
			want: `field "gatewayCredential"`},
		{name: "plugin configuration that is not JSON", file: "envoy.yaml",
			old: `"resource": "http://localhost:10000/mcp"` + "\n", new: `"resource": "http://localhost:10000/mcp",` + "\n", n: 1,
			want: "not valid JSON"},
		{name: "service without service: true", file: "envoy.yaml",
			old: `"resource": "http://localhost:10000/mcp",` + "\n              \"service\": true", new: `"resource": "http://localhost:10000/mcp"`, n: 1,
			want: `needs "service": true`},
		{name: "filter with service: true", file: "envoy.yaml",
			old: `"resource": "http://localhost:10000/mcp"` + "\n", new: `"resource": "http://localhost:10000/mcp", "service": true` + "\n", n: 1,
			want: "must not say"},
		{name: "service that is not a singleton", file: "envoy.yaml",
			old: "singleton: true", new: "singleton: false", n: 1,
			want: "must be a singleton"},
		{name: "service in another vm_id", file: "envoy.yaml",
			old: "vm_id: knaight\n          runtime", new: "vm_id: poller\n          runtime", n: 1,
			want: "vm_config differs"},
		{name: "service with another root_id", file: "envoy.yaml",
			old: "root_id: knaight\n        vm_config", new: "root_id: poller\n        vm_config", n: 1,
			want: "root_id"},
		{name: "service and filter moved to another environment together (control)", file: "envoy.yaml",
			old: `"environment": "development"`, new: `"environment": "production"`, n: 2},
		{name: "service for another environment than the filter", file: "envoy.yaml",
			old: `"environment": "development",` + "\n              \"managerCluster\"", new: `"environment": "staging",` + "\n              \"managerCluster\"", n: 1,
			want: "shared data is keyed by them"},
		{name: "manager cluster missing", file: "envoy.yaml",
			old: "- name: knaight_manager", new: "- name: manager", n: 1,
			want: `managerCluster "knaight_manager" is not a cluster`},
		{name: "route to an undefined cluster", file: "envoy.yaml",
			old: "cluster: mcp_upstream\n", new: "cluster: mcp_upstrem\n", n: 1,
			want: `cluster "mcp_upstrem" is not defined`},
		{name: "wasm host cluster missing", file: "envoy-remote-wasm.yaml",
			old: "cluster: knaight_wasm_host", new: "cluster: wasm_host", n: 2,
			want: `cluster "wasm_host" is not defined`},
		{name: "filter after the router", file: "envoy.yaml",
			mutate: func(b *bootstrapv3.Bootstrap) {
				hcm := httpConnectionManager(t, b)
				slices.Reverse(hcm.HttpFilters)
				setHTTPConnectionManager(t, b, hcm)
			},
			want: "comes after the router"},
		{name: "manager cluster cutting long polls", file: "envoy.yaml",
			mutate: func(b *bootstrapv3.Bootstrap) {
				opts, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{
					CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxStreamDuration: durationpb.New(30e9)},
					UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
					}},
				})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range b.GetStaticResources().GetClusters() {
					if c.GetName() == "knaight_manager" {
						c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
					}
				}
			},
			want: "limits streams to 30s, under the 40s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := files[tt.file]
			if tt.old != "" {
				doc = edit(t, doc, tt.old, tt.new, tt.n)
			}
			if tt.mutate != nil {
				var b bootstrapv3.Bootstrap
				if err := envoyconfig.Decode(doc, &b); err != nil {
					t.Fatal(err)
				}
				tt.mutate(&b)
				var err error
				if doc, err = protojson.Marshal(&b); err != nil {
					t.Fatal(err)
				}
			}
			_, err := envoyconfig.LoadGateway(doc)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			case err != nil:
				t.Logf("refused: %v", err)
			}
		})
	}
}

// httpConnectionManager returns a copy of the first listener's HTTP
// connection manager.
func httpConnectionManager(t *testing.T, b *bootstrapv3.Bootstrap) *hcmv3.HttpConnectionManager {
	t.Helper()
	var hcm hcmv3.HttpConnectionManager
	f := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	return &hcm
}

func setHTTPConnectionManager(t *testing.T, b *bootstrapv3.Bootstrap, hcm *hcmv3.HttpConnectionManager) {
	t.Helper()
	a, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
}

// TestIstioRejects proves the Istio checks bite: each row breaks one file of
// envoy/istio/ and checks it against the unchanged others.
func TestIstioRejects(t *testing.T) {
	files := readConfigs(t)
	const credential = "kngw.00000000-0000-0000-0000-000000000000.REPLACE-with-the-pluginConfig-from-gateways"
	tests := []struct {
		name, file, old, new string
		n                    int
		want                 string
	}{
		{"WasmPlugin failing open", "istio/wasmplugin.yaml", "failStrategy: FAIL_CLOSE", "failStrategy: FAIL_OPEN", 1, "want FAIL_CLOSE"},
		{"WasmPlugin after authentication", "istio/wasmplugin.yaml", "phase: AUTHN", "phase: AUTHZ", 1, "want AUTHN"},
		{"WasmPlugin with a misspelt field", "istio/wasmplugin.yaml", "failStrategy: FAIL_CLOSE", "failStategy: FAIL_CLOSE", 1, "unknown field"},
		{"WasmPlugin from https without sha256", "istio/wasmplugin.yaml",
			`sha256: "0000000000000000000000000000000000000000000000000000000000000000"`, "", 1, "needs sha256"},
		{"WasmPlugin for every workload", "istio/wasmplugin.yaml", "  selector:\n    matchLabels:\n      app: mcp-server\n", "", 1, "no selector"},
		{"WasmPlugin pluginConfig claiming the service", "istio/wasmplugin.yaml",
			"    resource: https://mcp.example.com/mcp\n", "    resource: https://mcp.example.com/mcp\n    service: true\n", 1, "Istio has no singleton"},
		{"WasmPlugin pluginConfig naming Envoy's cluster", "istio/wasmplugin.yaml",
			`managerCluster: "outbound|80||manager.knaight.example.com"`, "managerCluster: knaight_manager", 1, "no cluster Istio has"},
		{"WasmPlugin pluginConfig with a bad credential", "istio/wasmplugin.yaml", credential, "kngw.x.y", 1, `field "gatewayCredential"`},
		{"WasmPlugin pluginConfig with a number as a string", "istio/wasmplugin.yaml",
			"    resource: https://mcp.example.com/mcp\n", "    resource: https://mcp.example.com/mcp\n    pollWaitSeconds: \"30\"\n", 1, `field "pollWaitSeconds": must be an integer`},
		{"ServiceEntry on another port", "istio/manager-serviceentry.yaml", "- number: 80\n      name: http", "- number: 8080\n      name: http", 1, "no cluster Istio has"},
		{"EnvoyFilter unknown field inside typed_config", "istio/envoyfilter-wasm.yaml",
			"allow_on_headers_stop_iteration: true", "allow_on_headers_stop_iterations: true", 1, "allow_on_headers_stop_iterations"},
		{"EnvoyFilter rule broken inside typed_config", "istio/envoyfilter-wasm.yaml",
			"timeout: 30s", "timeout: -1s", 1, "Timeout"},
		{"EnvoyFilter failing open", "istio/envoyfilter-wasm.yaml", "failure_policy: FAIL_CLOSED", "failure_policy: FAIL_OPEN", 1, "want FAIL_CLOSED"},
		{"EnvoyFilter without allow_on_headers_stop_iteration", "istio/envoyfilter-wasm.yaml",
			"              allow_on_headers_stop_iteration: true\n", "", 1, "allow_on_headers_stop_iteration must be true"},
		{"EnvoyFilter HTTP filter naming no extension config", "istio/envoyfilter-wasm.yaml",
			"          name: mcp.knaight\n          config_discovery", "          name: mcp.other\n          config_discovery", 1, "no EXTENSION_CONFIG patch adds"},
		{"EnvoyFilter plugin configuration claiming the service", "istio/envoyfilter-wasm.yaml",
			`"resource": "https://mcp.example.com/mcp"`, `"resource": "https://mcp.example.com/mcp", "service": true`, 1, "Istio has no singleton"},
		{"EnvoyFilter with an unchecked patch kind", "istio/envoyfilter-wasm.yaml", "applyTo: HTTP_FILTER", "applyTo: LISTENER", 1, "applyTo LISTENER has no checks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var all []envoyconfig.Manifest
			var broken []envoyconfig.Manifest
			for name, data := range files {
				if path.Dir(name) != "istio" {
					continue
				}
				if name == tt.file {
					data = edit(t, data, tt.old, tt.new, tt.n)
				}
				ms, err := envoyconfig.ReadManifests(data)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, ms...)
				if name == tt.file {
					broken = ms
				}
			}
			clusters, err := envoyconfig.IstioClusters(all)
			if err != nil {
				t.Fatal(err)
			}
			// The WasmPlugin and the EnvoyFilter name the manager's cluster;
			// a ServiceEntry change shows in them.
			check := broken
			if tt.file == "istio/manager-serviceentry.yaml" {
				check = all
			}
			err = envoyconfig.CheckIstio(check, clusters)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestIstioPluginJSONKeepsIntegers guards the path Istio's pluginConfig
// takes (a protobuf Struct, numbers as doubles, then protojson): large
// integers must still reach the filter as integers it accepts.
func TestIstioPluginJSONKeepsIntegers(t *testing.T) {
	in := map[string]any{
		"organization":        "acme",
		"environment":         "production",
		"managerCluster":      "outbound|8080||knaight-manager.knaight.svc.cluster.local",
		"managerAuthority":    "knaight-manager.knaight.svc.cluster.local:8080",
		"gatewayCredential":   "kngw.00000000-0000-0000-0000-000000000000.REPLACE-with-the-pluginConfig-from-gateways",
		"snapshotKeys":        map[string]string{"snap_example": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
		"resource":            "https://mcp.example.com/mcp",
		"queueLimit":          1000000,
		"maxBodyBytes":        64 << 20,
		"maxStalenessSeconds": 7 * 24 * 3600,
	}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	js, err := envoyconfig.IstioPluginJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := filter.ParseConfig(js)
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	if cfg.QueueLimit != 1000000 || cfg.MaxBodyBytes != 64<<20 {
		t.Fatalf("queueLimit %d, maxBodyBytes %d from %s", cfg.QueueLimit, cfg.MaxBodyBytes, js)
	}
}

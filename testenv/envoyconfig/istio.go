package envoyconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/knaight/knaight/plugin/filter"
)

// Manifest is one Kubernetes object of a YAML stream.
type Manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// String names the object in messages: kind namespace/name.
func (m Manifest) String() string {
	return m.Kind + " " + m.Metadata.Namespace + "/" + m.Metadata.Name
}

// IsManifest reports whether a YAML stream holds Kubernetes objects (its
// first document has an apiVersion) rather than an Envoy bootstrap.
func IsManifest(data []byte) (bool, error) {
	docs, err := yamlDocuments(data)
	if err != nil || len(docs) == 0 {
		return false, err
	}
	m, ok := docs[0].(map[string]any)
	_, has := m["apiVersion"]
	return ok && has, nil
}

// ReadManifests decodes every object of a YAML stream. Each needs an
// apiVersion, a kind, a name and a spec.
func ReadManifests(data []byte) ([]Manifest, error) {
	docs, err := yamlDocuments(data)
	if err != nil {
		return nil, err
	}
	out := make([]Manifest, 0, len(docs))
	for i, d := range docs {
		js, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var m Manifest
		if err := json.Unmarshal(js, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" || len(m.Spec) == 0 {
			return nil, fmt.Errorf("document %d: want apiVersion, kind, metadata.name and spec", i)
		}
		out = append(out, m)
	}
	return out, nil
}

// Istio's API versions of the kinds used here.
var istioAPIVersions = map[string][]string{
	"WasmPlugin":      {"extensions.istio.io/v1alpha1"},
	"EnvoyFilter":     {"networking.istio.io/v1alpha3"},
	"ServiceEntry":    {"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"},
	"DestinationRule": {"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"},
}

// inMeshCluster is the name Istio gives the cluster of a Kubernetes
// Service: outbound|<port>||<service>.<namespace>.svc.cluster.local.
var inMeshCluster = regexp.MustCompile(`^outbound\|[0-9]{1,5}\|\|[a-z0-9]([a-z0-9-]*[a-z0-9])?\.[a-z0-9]([a-z0-9-]*[a-z0-9])?\.svc\.cluster\.local$`)

// IstioClusters returns the names of the clusters Istio makes for the
// ServiceEntries among ms: outbound|<port>||<host>, for each host and port.
func IstioClusters(ms []Manifest) (map[string]bool, error) {
	clusters := map[string]bool{}
	var errs []error
	for _, m := range ms {
		if m.Kind != "ServiceEntry" {
			continue
		}
		var se serviceEntry
		if err := strictJSON(m.Spec, &se); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		for _, h := range se.Hosts {
			for _, p := range se.Ports {
				clusters[fmt.Sprintf("outbound|%d||%s", p.Number, h)] = true
			}
		}
	}
	return clusters, errors.Join(errs...)
}

// CheckIstio checks Istio manifests against what Knaight needs; clusters
// are those of the ServiceEntries deployed with them (IstioClusters).
//
//   - a WasmPlugin runs in phase AUTHN with failStrategy FAIL_CLOSE, from an
//     oci, https or file url (https with a sha256), and its pluginConfig,
//     turned into JSON the way Istio does, parses with the filter's parser;
//   - an EnvoyFilter's patch values are Envoy configuration, decoded and
//     validated like a bootstrap (typed_config included); its Knaight
//     filters fail closed and set allow_on_headers_stop_iteration, and an
//     HTTP filter it inserts through ECDS names an extension config it adds;
//   - no plugin configuration says "service" (Istio has no singleton
//     service: the worker VMs elect the poller), and each one's
//     managerCluster is a cluster Istio has: one in clusters, or a
//     Kubernetes Service's.
//
// Specs are decoded strictly, so a misspelt field is an error. Every
// problem found is reported, each naming its object.
func CheckIstio(ms []Manifest, clusters map[string]bool) error {
	knownCluster := func(name string) bool { return clusters[name] || inMeshCluster.MatchString(name) }
	var errs []error
	for _, m := range ms {
		versions, ok := istioAPIVersions[m.Kind]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: kind %s has no checks here; add them", m, m.Kind))
			continue
		case !slices.Contains(versions, m.APIVersion):
			errs = append(errs, fmt.Errorf("%s: apiVersion %s, want one of %s", m, m.APIVersion, strings.Join(versions, ", ")))
			continue
		}
		var err error
		switch m.Kind {
		case "WasmPlugin":
			err = checkWasmPlugin(m, knownCluster)
		case "EnvoyFilter":
			err = checkEnvoyFilter(m, knownCluster)
		case "ServiceEntry":
			err = strictJSON(m.Spec, &serviceEntry{})
		case "DestinationRule":
			var dr destinationRule
			if err = strictJSON(m.Spec, &dr); err == nil && dr.Host == "" {
				err = errors.New("spec.host is empty")
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

type serviceEntry struct {
	Hosts     []string `json:"hosts"`
	Addresses []string `json:"addresses"`
	Ports     []struct {
		Number     int    `json:"number"`
		Protocol   string `json:"protocol"`
		Name       string `json:"name"`
		TargetPort int    `json:"targetPort"`
	} `json:"ports"`
	Location         string           `json:"location"`
	Resolution       string           `json:"resolution"`
	Endpoints        []map[string]any `json:"endpoints"`
	WorkloadSelector map[string]any   `json:"workloadSelector"`
	ExportTo         []string         `json:"exportTo"`
	SubjectAltNames  []string         `json:"subjectAltNames"`
}

type destinationRule struct {
	Host             string           `json:"host"`
	TrafficPolicy    map[string]any   `json:"trafficPolicy"`
	Subsets          []map[string]any `json:"subsets"`
	ExportTo         []string         `json:"exportTo"`
	WorkloadSelector map[string]any   `json:"workloadSelector"`
}

// wasmPlugin is extensions.istio.io/v1alpha1 WasmPlugin's spec.
type wasmPlugin struct {
	Selector        map[string]any   `json:"selector"`
	TargetRef       map[string]any   `json:"targetRef"`
	TargetRefs      []map[string]any `json:"targetRefs"`
	URL             string           `json:"url"`
	Sha256          string           `json:"sha256"`
	ImagePullPolicy string           `json:"imagePullPolicy"`
	ImagePullSecret string           `json:"imagePullSecret"`
	VerificationKey string           `json:"verificationKey"`
	PluginConfig    json.RawMessage  `json:"pluginConfig"`
	PluginName      string           `json:"pluginName"`
	Phase           string           `json:"phase"`
	Priority        *int             `json:"priority"`
	FailStrategy    string           `json:"failStrategy"`
	VMConfig        map[string]any   `json:"vmConfig"`
	Match           []map[string]any `json:"match"`
	Type            string           `json:"type"`
}

var sha256Hex = regexp.MustCompile(`^[a-f0-9]{64}$`)

func checkWasmPlugin(m Manifest, knownCluster func(string) bool) error {
	var w wasmPlugin
	if err := strictJSON(m.Spec, &w); err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if w.Phase != "AUTHN" {
		bad("phase is %q, want AUTHN: the filter must judge requests before anything else sees them", w.Phase)
	}
	// FAIL_CLOSE is the API's zero value, but a default is not a decision:
	// ask for it in writing.
	if w.FailStrategy != "FAIL_CLOSE" {
		bad("failStrategy is %q, want FAIL_CLOSE", w.FailStrategy)
	}
	if w.Type != "" && w.Type != "HTTP" {
		bad("type is %q; the filter is an HTTP filter", w.Type)
	}
	if len(w.Selector) == 0 && len(w.TargetRefs) == 0 && len(w.TargetRef) == 0 {
		bad("no selector or targetRefs: the plugin would apply to every workload of the namespace")
	}
	u, err := url.Parse(w.URL)
	switch {
	case err != nil || w.URL == "":
		bad("url %q is not a URL", w.URL)
	case u.Scheme != "oci" && u.Scheme != "https" && u.Scheme != "file":
		bad("url scheme %q, want oci, https or file", u.Scheme)
	case u.Scheme == "https" && w.Sha256 == "":
		bad("an https url needs sha256, the module's digest, or any module served there runs")
	}
	if w.Sha256 != "" && !sha256Hex.MatchString(w.Sha256) {
		bad("sha256 %q is not 64 lower-case hex digits", w.Sha256)
	}
	js, err := IstioPluginJSON(w.PluginConfig)
	if err != nil {
		bad("pluginConfig: %v", err)
		return errors.Join(errs...)
	}
	cfg, err := filter.ParseConfig(js)
	if err != nil {
		bad("pluginConfig: %v", err)
		return errors.Join(errs...)
	}
	errs = append(errs, checkIstioConfig("pluginConfig", cfg, knownCluster)...)
	return errors.Join(errs...)
}

// IstioPluginJSON turns a WasmPlugin's pluginConfig into the JSON the filter
// receives: Istio holds it as a google.protobuf.Struct and hands Envoy its
// protojson form, numbers as doubles.
func IstioPluginJSON(pluginConfig json.RawMessage) ([]byte, error) {
	if len(pluginConfig) == 0 || string(pluginConfig) == "null" {
		return nil, errors.New("is missing")
	}
	var s structpb.Struct
	if err := protojson.Unmarshal(pluginConfig, &s); err != nil {
		return nil, err
	}
	return protojson.Marshal(&s)
}

// checkIstioConfig checks what Istio asks of a plugin configuration beyond
// what ParseConfig does.
func checkIstioConfig(path string, cfg filter.Config, knownCluster func(string) bool) []error {
	var errs []error
	if cfg.Service {
		errs = append(errs, fmt.Errorf(`%s: "service": true, but Istio has no singleton service: every worker VM would claim the poller lease`, path))
	}
	if !knownCluster(cfg.ManagerCluster) {
		errs = append(errs, fmt.Errorf("%s: managerCluster %q is no cluster Istio has: want outbound|<port>||<host> of a ServiceEntry deployed with it, or of a Kubernetes Service", path, cfg.ManagerCluster))
	}
	return errs
}

// envoyFilter is networking.istio.io/v1alpha3 EnvoyFilter's spec.
type envoyFilter struct {
	WorkloadSelector map[string]any   `json:"workloadSelector"`
	TargetRefs       []map[string]any `json:"targetRefs"`
	Priority         *int             `json:"priority"`
	ConfigPatches    []struct {
		ApplyTo string         `json:"applyTo"`
		Match   map[string]any `json:"match"`
		Patch   struct {
			Operation   string          `json:"operation"`
			Value       json.RawMessage `json:"value"`
			FilterClass string          `json:"filterClass"`
		} `json:"patch"`
	} `json:"configPatches"`
}

func checkEnvoyFilter(m Manifest, knownCluster func(string) bool) error {
	var ef envoyFilter
	if err := strictJSON(m.Spec, &ef); err != nil {
		return err
	}
	var errs []error
	extensions := map[string]*corev3.TypedExtensionConfig{}
	var discovered []*hcmv3.HttpFilter
	for i, cp := range ef.ConfigPatches {
		path := fmt.Sprintf("configPatches[%d]", i)
		var value proto.Message
		switch cp.ApplyTo {
		case "EXTENSION_CONFIG":
			value = &corev3.TypedExtensionConfig{}
		case "HTTP_FILTER":
			value = &hcmv3.HttpFilter{}
		case "CLUSTER":
			value = &clusterv3.Cluster{}
		default:
			errs = append(errs, fmt.Errorf("%s: applyTo %s has no checks here; add them", path, cp.ApplyTo))
			continue
		}
		if err := Decode(cp.Patch.Value, value); err != nil {
			errs = append(errs, fmt.Errorf("%s.patch.value: %w", path, err))
			continue
		}
		if err := Validate(value); err != nil {
			errs = append(errs, fmt.Errorf("%s.patch.value: %w", path, err))
			continue
		}
		plugins, err := Plugins(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.patch.value: %w", path, err))
			continue
		}
		for _, p := range plugins {
			at := path + ".patch.value." + p.Path
			if p.Service {
				errs = append(errs, fmt.Errorf("%s: a bootstrap service; Istio cannot run one", at))
				continue
			}
			p.Path = at
			errs = append(errs, checkFilter(p)...)
			errs = append(errs, checkIstioConfig(at, p.Config, knownCluster)...)
		}
		switch v := value.(type) {
		case *corev3.TypedExtensionConfig:
			extensions[v.GetName()] = v
		case *hcmv3.HttpFilter:
			if v.GetConfigDiscovery() != nil {
				discovered = append(discovered, v)
			}
		}
	}
	for _, f := range discovered {
		ext, ok := extensions[f.GetName()]
		if !ok {
			errs = append(errs, fmt.Errorf("HTTP filter %q takes its configuration from ECDS, but no EXTENSION_CONFIG patch adds %q", f.GetName(), f.GetName()))
			continue
		}
		if want := ext.GetTypedConfig().GetTypeUrl(); !slices.Contains(f.GetConfigDiscovery().GetTypeUrls(), want) {
			errs = append(errs, fmt.Errorf("HTTP filter %q does not accept %s, the type of its extension config", f.GetName(), want))
		}
	}
	return errors.Join(errs...)
}

// strictJSON decodes data into v, refusing fields v does not have.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	return nil
}

package stack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knaight/knaight/testenv/envoyconfig"
)

// No Envoy runs here (see envoy/README.md), so this covers what can be
// covered without one: envoy/envoy.yaml rendered for the stack and written
// where Envoy is told to read it, and an Envoy that exits reported with
// its log instead of a stack that waits forever.
func TestStartEnvoyReportsAnEnvoyThatExits(t *testing.T) {
	bin, err := exec.LookPath("false")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := `{"organization": "demo", "environment": "production", "managerCluster": "knaight_manager", "managerAuthority": "127.0.0.1:18080",
		"gatewayCredential": "kngw.11111111-2222-3333-4444-555555555555.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"snapshotKeys": {"k": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}, "resource": "http://127.0.0.1:10001/mcp"}`
	_, err = startEnvoy(t.Context(), bin, dir, "127.0.0.1:10001", "127.0.0.1:19000", "http://127.0.0.1:18080",
		"plugin.wasm", []byte(cfg), withField([]byte(cfg), "service", true), 2)
	if err == nil || !strings.Contains(err.Error(), "envoy exited") {
		t.Fatalf("startEnvoy with a binary that exits: %v", err)
	}
	written, err := os.ReadFile(filepath.Join(dir, "envoy.json"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := envoyconfig.LoadGateway(written)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range g.Plugins {
		if f := p.Envoy.GetVmConfig().GetCode().GetLocal().GetFilename(); !filepath.IsAbs(f) {
			t.Errorf("%s: module path %q is relative; Envoy runs from the repository root", p.Path, f)
		}
	}
}

// Command plugin is the Knaight filter: the proxy-wasm plugin that Envoy loads
// in front of MCP servers, and so the point where every agent request is
// allowed or denied. It is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// This file only registers the filter with the SDK; the logic lives in the
// importable package filter, where it is tested natively and against the
// compiled binary. It also builds natively (the SDK then links its host
// emulator instead of the host imports), so that go vet and go test work on
// the developer's platform.
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

	"github.com/knaight/knaight/plugin/filter"
)

// main is empty: a WASI reactor has no main loop, the host calls the exported
// proxy-wasm functions instead.
func main() {}

// init registers the filter. The SDK requires exactly one entrypoint to be
// set during init, before the host calls into the module.
func init() {
	proxywasm.SetVMContext(filter.NewVMContext())
}

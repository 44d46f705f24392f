// Command noop is a proxy-wasm filter that lets every request through
// untouched. It is the baseline of the filter's benchmarks: the cost of the
// host and the SDK per request, measured in the same runtime and run, so
// that the filter's own cost can be told apart from them.
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func init() {
	proxywasm.SetVMContext(&vm{})
}

type vm struct{ types.DefaultVMContext }

func (*vm) NewPluginContext(uint32) types.PluginContext { return &plugin{} }

type plugin struct{ types.DefaultPluginContext }

func (*plugin) NewHttpContext(uint32) types.HttpContext { return &types.DefaultHttpContext{} }

func main() {}

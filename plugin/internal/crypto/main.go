// Command crypto is the second baseline of the filter's benchmarks: a
// proxy-wasm filter doing only the irreducible work of an allowed request,
// the work no implementation of the filter can skip. It reads the request
// headers and the body, hashes the body (SHA-256) and computes one
// HMAC-SHA256 over the canonical string (shared/sign), then lets the
// request through. Measured in the same host and run as the filter and
// the no-op baseline, it tells how much of the filter's cost is the
// cryptography and how much everything around it.
package main

import (
	"crypto/hmac"
	"crypto/sha256"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/shared/sign"
)

func init() {
	proxywasm.SetVMContext(&vm{})
}

type vm struct{ types.DefaultVMContext }

func (*vm) NewPluginContext(uint32) types.PluginContext { return &plugin{} }

type plugin struct{ types.DefaultPluginContext }

func (*plugin) NewHttpContext(uint32) types.HttpContext { return &httpContext{} }

// key stands for the agent's HMAC key; the filter looks its key up in the
// snapshot, which is not the work measured here.
var key = []byte("0123456789abcdef0123456789abcdef")

type httpContext struct {
	types.DefaultHttpContext
	req sign.Request
	mac [32]byte
}

func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	headers, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		return types.ActionContinue
	}
	for _, kv := range headers {
		switch kv[0] {
		case ":method":
			h.req.Method = kv[1]
		case ":path":
			h.req.Target = kv[1]
		case "x-knaight-agent":
			h.req.Agent = kv[1]
		case "x-knaight-timestamp":
			h.req.Timestamp = kv[1]
		}
	}
	return types.ActionPause
}

func (h *httpContext) OnHttpRequestBody(size int, end bool) types.Action {
	if !end {
		return types.ActionPause
	}
	body, err := proxywasm.GetHttpRequestBody(0, size)
	if err != nil {
		return types.ActionContinue
	}
	h.req.BodySHA256 = sha256.Sum256(body)
	canonical, err := sign.Canonical(h.req)
	if err != nil {
		return types.ActionContinue
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(canonical))
	m.Sum(h.mac[:0])
	return types.ActionContinue
}

func main() {}

package filter

import "github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

// testHook, when set, is called at the start of every guarded callback with
// the callback's name (the cb* constants). It exists so that tests can make a
// callback panic and check that the panic becomes a denial. It is nil in the
// plugin Envoy loads: only this package's tests set it, and so do WebAssembly
// builds made with -tags knaight_testhooks (testhook_enabled.go), which the
// tests use to run the same check against a compiled binary.
var testHook func(callback string)

// callTestHook calls testHook if it is set.
func callTestHook(callback string) {
	if h := testHook; h != nil {
		h(callback)
	}
}

// testPanicProperty is the host property panicWhenAsked reads. Going through
// the host lets a test reach into a compiled binary, whose memory it cannot
// otherwise touch.
const testPanicProperty = "knaight_test_panic"

// panicWhenAsked is the testHook the tests install: it panics in the callback
// named by the host property testPanicProperty, and does nothing when the
// property is not set. No production build references it, so the linker
// leaves it out of the plugin.
func panicWhenAsked(callback string) {
	v, err := proxywasm.GetProperty([]string{testPanicProperty})
	if err == nil && string(v) == callback {
		panic("knaight test hook: injected panic in " + callback)
	}
}

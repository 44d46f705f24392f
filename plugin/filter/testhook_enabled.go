//go:build knaight_testhooks

package filter

// Built only with -tags knaight_testhooks, which the tests pass when they
// compile the WebAssembly binary for the panic test. Never build the plugin
// Envoy loads with this tag: the hook only ever turns requests into denials,
// but it has no place in production.
func init() {
	testHook = panicWhenAsked
}

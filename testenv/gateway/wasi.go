package gateway

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// wasiENOSYS is WASI's errno 52, "function not supported".
const wasiENOSYS = 52

// instantiateWASI instantiates wasi_snapshot_preview1 in r: wazero's
// complete implementation, or, with envoy set, the same with poll_oneoff
// answering ENOSYS.
//
// Why the second: Envoy's wasm host, proxy-wasm-cpp-host, answered
// poll_oneoff with ENOSYS until its PR #533. A module built by standard Go
// for wasip1 treats any error from poll_oneoff as fatal ("poll_oneoff
// failed", then exit 2), and calls it in runtime.usleep, when its scheduler
// waits for a timer, and, once the runtime's netpoller is initialised, at
// the end of every garbage collection's stop-the-world. The netpoller is
// initialised by the first runtime timer the module creates, even one
// stopped at once (crypto/rand's first read makes one), so such a module
// dies at its first collection after it; in Envoy, with traffic spread over
// many workers, that can take hours (golang/go#78513,
// envoyproxy/envoy#44526). wazero implements poll_oneoff fully, so a plain
// wazero host hides the crash; this mode brings it back, so that the filter
// can be tested against the Envoy it will meet. Everything else is
// wazero's.
func instantiateWASI(ctx context.Context, r wazero.Runtime, envoy bool) error {
	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	if envoy {
		// Exporting a name again replaces the function.
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
				stack[0] = wasiENOSYS
			}), i32s(4), i32s(1)).
			WithParameterNames("in", "out", "nsubscriptions", "result.nevents").
			WithName("poll_oneoff").
			Export("poll_oneoff")
	}
	_, err := b.Instantiate(ctx)
	return err
}

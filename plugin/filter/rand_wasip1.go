//go:build wasip1

package filter

import "syscall"

// readRandom fills b with random bytes from the host: WASI random_get, the
// source crypto/rand itself reads on wasip1, called directly because
// crypto/rand's first call starts a watchdog timer (time.AfterFunc in
// crypto/internal/sysrand.Read). Any Go runtime timer, even one stopped at
// once, initialises the runtime's netpoller for good, and from then on
// every garbage collection calls WASI poll_oneoff: an Envoy whose wasm host
// answers that with ENOSYS (proxy-wasm-cpp-host before PR #533) then kills
// the VM at its first collection ("poll_oneoff failed"). So nothing in the
// filter may create a timer (time.Sleep, time.After, context deadlines),
// and it must not use crypto/rand.
func readRandom(b []byte) {
	if err := syscall.RandomGet(b); err != nil {
		// crypto/rand would crash the VM; the filter's callbacks recover
		// this instead (the plugin refuses to start, a request is denied).
		panic("filter: random_get: " + err.Error())
	}
}

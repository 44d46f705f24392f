//go:build !wasip1

package filter

import "crypto/rand"

// readRandom fills b with random bytes (see rand_wasip1.go for why the
// WebAssembly build does not use crypto/rand).
func readRandom(b []byte) {
	_, _ = rand.Read(b)
}

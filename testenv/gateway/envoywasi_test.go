package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/sys"
)

// The Envoy-compatible WASI mode is visible to a guest: a Go program that
// sleeps (the runtime then waits in poll_oneoff) runs under wazero's WASI
// and dies under Envoy's, with the Go runtime's fatal error.
func TestEnvoyWASIFailsPollOneoff(t *testing.T) {
	wasm := buildWasm(t, "sleeper.wasm", "./testdata/sleeper")
	for _, tc := range []struct {
		name     string
		envoy    bool
		wantExit uint32
		wantOut  string
	}{
		{"wazero's WASI lets a Go guest sleep", false, 0, "slept"},
		{"Envoy's WASI kills a Go guest that sleeps", true, 2, "poll_oneoff failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compilationCache))
			defer r.Close(ctx)
			if err := instantiateWASI(ctx, r, tc.envoy); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			_, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().
				WithStdout(&out).WithStderr(&out).WithSysNanosleep().WithSysNanotime().WithSysWalltime())
			var code uint32
			var exit *sys.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatalf("run: %v", err)
			}
			if code != tc.wantExit || !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("exit code %d, output %q; want %d and %q", code, out.String(), tc.wantExit, tc.wantOut)
			}
		})
	}
}

// The filter under traffic in both WASI modes, where every request must be
// served and every VM survive. In the Envoy-compatible mode this holds
// because the filter creates no runtime timer (plugin/filter/rand_wasip1.go):
// when it still read crypto/rand, whose first read starts a timer, each
// worker VM died at its first garbage collection, after about 220 and 320
// requests (gcStart -> startTheWorldWithSema -> netpoll -> poll_oneoff ->
// "poll_oneoff failed"), and the gateway then failed closed with 503.
// 1,500 requests take each worker VM through a collection at least once.
func TestWASIModesUnderTraffic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		envoy bool
	}{
		{"wazero's WASI serves every request", false},
		{"Envoy's WASI serves every request too", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, envOptions{envoyWASI: tc.envoy})
			url := e.front.URL + "/mcp"
			n := wasiRequests(t)
			var allowed, failClosed, reset, other int
			firstFailure := -1
			start := time.Now()
			for i := range n {
				resp, body, err := tryDo(signed(t, "POST", url, toolCall("deploy_app")))
				if err != nil {
					// A VM that dies while a response streams through it
					// resets the stream, as Envoy does; counted, so that
					// the failure below says how the VMs died.
					if !tc.envoy || i == 0 {
						t.Fatalf("request #%d: %v", i, err)
					}
					reset++
					continue
				}
				switch resp.StatusCode {
				case http.StatusOK:
					allowed++
				case http.StatusServiceUnavailable:
					failClosed++
					if firstFailure < 0 {
						firstFailure = i
					}
				default:
					other++
					t.Logf("request #%d got %d %s", i, resp.StatusCode, body)
				}
				if i == 0 && resp.StatusCode != http.StatusOK {
					t.Fatalf("the first request got %d", resp.StatusCode)
				}
			}
			health := e.g.Health()
			t.Logf("%d requests in %s: %d allowed, %d failed closed (first at #%d), %d reset, %d other; VM health: %v",
				n, time.Since(start).Round(time.Millisecond), allowed, failClosed, firstFailure, reset, other, health)
			if other > 0 {
				t.Errorf("%d requests got neither 200 nor 503", other)
			}
			if allowed != n || health != nil {
				t.Errorf("%d of %d requests allowed; health %v", allowed, n, health)
			}
		})
	}
}

// wasiRequests is how many requests TestWASIModesUnderTraffic sends per
// mode; KNAIGHT_WASI_REQUESTS changes it (for a soak run, say).
func wasiRequests(t *testing.T) int {
	n := 1500
	if s := os.Getenv("KNAIGHT_WASI_REQUESTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("KNAIGHT_WASI_REQUESTS=%q: want a positive number", s)
		}
	}
	return n
}

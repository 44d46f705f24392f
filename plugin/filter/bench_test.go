package filter

import (
	"io"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// BenchmarkFilter measures one MCP request (headers, then the body) through
// the SDK's host emulator on wazero, for three modules built from this
// repository, in the same runtime and run:
//
//   - filter: plugin.wasm;
//   - noop: a filter that lets everything through untouched
//     (plugin/internal/noop), the host's and the SDK's own cost;
//   - crypto: the irreducible work of an allowed request, reading headers
//     and body, SHA-256 of the body and one HMAC-SHA256 of the canonical
//     string (plugin/internal/crypto).
//
// Only differences and ratios between them mean anything. The "go" variant
// runs the filter's Go code natively, for reference. The cases:
//
//   - allow-1KiB, allow-64KiB: a cached token, a fresh signature per request
//     (the replay check refuses a repeat), the whole pipeline and the
//     upstream re-signing;
//   - first-token: allow-1KiB with a token the VM has not seen, so its
//     EdDSA signature is verified;
//   - deny-token-missing: the cheapest denial, decided on the headers;
//   - deny-signature: a request signed with the wrong key;
//   - deny-endpoint: a denial by the policy, after every other check.
//
// Each request is timed on its own: p50-ns and p99-ns are per request.
// make bench (testenv/cmd/knaight-bench) reports them.
func BenchmarkFilter(b *testing.B) {
	// The emulator logs through the log package, on the lines where go
	// test prints the figures.
	log.SetOutput(io.Discard)
	defer log.SetOutput(os.Stderr)
	plugin := compiledPlugin(b, false)
	modules := map[string][]byte{
		"noop":   compiledModule(b, "github.com/knaight/knaight/plugin/internal/noop", ""),
		"crypto": compiledModule(b, "github.com/knaight/knaight/plugin/internal/crypto", ""),
	}
	allowed := func(a types.Action, local bool) bool { return a == types.ActionContinue && !local }
	denied := func(a types.Action, local bool) bool { return a == types.ActionPause && local }
	cases := []struct {
		name string
		req  func(b *testing.B) request
		// fresh mints a new token for every request.
		fresh bool
		want  func(types.Action, bool) bool
	}{
		{"allow-1KiB", func(b *testing.B) request { return benchCall(b, "deploy_app", 1<<10) }, false, allowed},
		{"allow-64KiB", func(b *testing.B) request { return benchCall(b, "deploy_app", 64<<10) }, false, allowed},
		{"first-token", func(b *testing.B) request { return benchCall(b, "deploy_app", 1<<10) }, true, allowed},
		{"deny-token-missing", func(b *testing.B) request { r := benchCall(b, "deploy_app", 1<<10); r.token = ""; return r }, false, denied},
		{"deny-signature", func(b *testing.B) request {
			r := benchCall(b, "deploy_app", 1<<10)
			r.key = seeded("another agent's key", 32)
			return r
		}, false, denied},
		{"deny-endpoint", func(b *testing.B) request { return benchCall(b, "delete_everything", 1<<10) }, false, denied},
	}
	for _, c := range cases {
		for _, name := range []string{"noop", "crypto"} {
			b.Run("wasm/"+name+"/"+c.name, func(b *testing.B) {
				vm, err := proxytest.NewWasmVMContext(modules[name])
				if err != nil {
					b.Fatal(err)
				}
				defer vm.Close()
				runBench(b, vm, false, c.req, c.fresh, func(types.Action, bool) bool { return true })
			})
		}
		b.Run("wasm/filter/"+c.name, func(b *testing.B) {
			vm, err := proxytest.NewWasmVMContext(plugin)
			if err != nil {
				b.Fatal(err)
			}
			defer vm.Close()
			testNow = guestClock()
			defer func() { testNow = time.Now }()
			runBench(b, vm, true, c.req, c.fresh, c.want)
		})
		b.Run("go/filter/"+c.name, func(b *testing.B) {
			testNow = time.Now
			runBench(b, NewVMContext(), true, c.req, c.fresh, c.want)
		})
	}
}

// benchCall is a tools/call with a body of size bytes.
func benchCall(b *testing.B, tool string, size int) request {
	prefix := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"text":"`
	suffix := `"}}}`
	body := prefix + strings.Repeat("a", size-len(prefix)-len(suffix)) + suffix
	return request{method: "POST", path: "/mcp", token: benchToken(b), agent: fxAgent, key: fxHMAC, body: []byte(body)}
}

var benchTokens = map[string]string{}

// benchToken is one token per clock, so that it stays cached across the
// benchmark's iterations.
func benchToken(b *testing.B) string {
	key := testNow().Format("2006")
	if t, ok := benchTokens[key]; ok {
		return t
	}
	t := freshToken(testNow())
	benchTokens[key] = t
	return t
}

// freshToken mints a token no VM has seen (a new jti), valid from an hour
// before now for a day: the tokens of a run are minted before it, on a
// clock that moves on as they are.
func freshToken(now time.Time) string {
	c := fxClaims()
	c["jti"] = newUUID()
	c["iat"] = now.Unix()
	c["nbf"] = now.Add(-time.Hour).Unix()
	c["exp"] = now.Add(24 * time.Hour).Unix()
	return mint(&testing.T{}, c, fxTokenKID)
}

func runBench(b *testing.B, vm types.VMContext, filter bool, req func(b *testing.B) request, fresh bool, want func(types.Action, bool) bool) {
	// The fixture's 4 KiB body limit makes tests of 413 cheap; the
	// benchmark takes bodies up to Envoy's default limit.
	config := strings.Replace(fxConfig(`, "queueLimit": 1000000`), `"maxBodyBytes": 4096`, `"maxBodyBytes": 1048576`, 1)
	opt := proxytest.NewEmulatorOption().WithVMContext(vm).WithPluginConfiguration([]byte(config))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	if host.StartVM() != types.OnVMStartStatusOK || host.StartPlugin() != types.OnPluginStartStatusOK {
		b.Fatalf("start failed: %q", host.GetCriticalLogs())
	}
	if filter {
		g := &gateway{t: &testing.T{}, HostEmulator: host, answered: map[int]bool{}}
		g.publish(fxSnapshot(1))
	}
	// Sign every request before the clock starts: a signature is good once.
	reqs := make([][][2]string, b.N)
	r := req(b)
	minted := testNow()
	for i := range reqs {
		r.ts = testNow()
		if fresh {
			r.token = freshToken(minted)
		}
		hs := r.headers(&testing.T{})
		reqs[i] = append(hs, [2]string{"content-length", strconv.Itoa(len(r.body))})
	}
	took := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.SetBytes(int64(len(r.body)))
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		id := host.InitializeHttpContext()
		act := host.CallOnRequestHeaders(id, reqs[i], false)
		local := host.GetSentLocalResponse(id) != nil
		if !local {
			act = host.CallOnRequestBody(id, r.body, true)
			local = host.GetSentLocalResponse(id) != nil
		}
		sent := host.GetSentLocalResponse(id)
		host.CompleteHttpContext(id)
		took[i] = time.Since(start)
		if !want(act, local) {
			if sent != nil {
				b.Fatalf("request %d: action %v, local response %d %s", i, act, sent.StatusCode, sent.Data)
			}
			b.Fatalf("request %d: action %v, no local response", i, act)
		}
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
}

// guestClock follows the compiled plugin's clock under proxytest.
func guestClock() func() time.Time {
	var ticks time.Duration
	return func() time.Time { ticks += time.Millisecond; return guestEpoch.Add(ticks) }
}

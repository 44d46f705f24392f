package filter

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// BenchmarkFilter measures one MCP request (headers, then a 1 KiB body)
// through the host emulator, for the compiled filter and, as the baseline
// in the same runtime and run, a no-op filter (plugin/internal/noop). The
// emulator's own cost is large (see FACTS.md), so only the difference to
// the no-op and the ratio mean anything. The "go" variants run the filter's
// Go code natively, for reference.
//
//   - allow: a cached token, a fresh signature per request (the replay
//     check would refuse a repeat), the full pipeline and the upstream
//     re-signing;
//   - deny-token-missing: the cheapest denial, decided on the headers;
//   - deny-endpoint: a denial by the policy, after every other check.
func BenchmarkFilter(b *testing.B) {
	plugin := compiledPlugin(b, false)
	noop := compiledModule(b, "github.com/knaight/knaight/plugin/internal/noop", "")
	cases := []struct {
		name string
		req  func(b *testing.B) request
		want func(types.Action, bool) bool // action, local response sent
	}{
		{"allow", func(b *testing.B) request { return benchCall(b, "deploy_app") },
			func(a types.Action, local bool) bool { return a == types.ActionContinue && !local }},
		{"deny-token-missing", func(b *testing.B) request { r := benchCall(b, "deploy_app"); r.token = ""; return r },
			func(a types.Action, local bool) bool { return a == types.ActionPause && local }},
		{"deny-endpoint", func(b *testing.B) request { return benchCall(b, "delete_everything") },
			func(a types.Action, local bool) bool { return a == types.ActionPause && local }},
	}
	for _, c := range cases {
		b.Run("wasm/noop/"+c.name, func(b *testing.B) {
			vm, err := proxytest.NewWasmVMContext(noop)
			if err != nil {
				b.Fatal(err)
			}
			defer vm.Close()
			runBench(b, vm, false, c.req, func(types.Action, bool) bool { return true })
		})
		b.Run("wasm/filter/"+c.name, func(b *testing.B) {
			vm, err := proxytest.NewWasmVMContext(plugin)
			if err != nil {
				b.Fatal(err)
			}
			defer vm.Close()
			testNow = guestClock()
			defer func() { testNow = time.Now }()
			runBench(b, vm, true, c.req, c.want)
		})
		b.Run("go/filter/"+c.name, func(b *testing.B) {
			testNow = time.Now
			runBench(b, NewVMContext(), true, c.req, c.want)
		})
	}
}

// benchCall is a tools/call with a body of 1 KiB.
func benchCall(b *testing.B, tool string) request {
	prefix := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"text":"`
	suffix := `"}}}`
	body := prefix + strings.Repeat("a", 1024-len(prefix)-len(suffix)) + suffix
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
	c := fxClaims()
	c["exp"] = testNow().Add(24 * time.Hour).Unix()
	t := mint(&testing.T{}, c, fxTokenKID)
	benchTokens[key] = t
	return t
}

func runBench(b *testing.B, vm types.VMContext, filter bool, req func(b *testing.B) request, want func(types.Action, bool) bool) {
	config := fxConfig(`, "queueLimit": 1000000`)
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
	for i := range reqs {
		r.ts = testNow()
		hs := r.headers(&testing.T{})
		reqs[i] = append(hs, [2]string{"content-length", strconv.Itoa(len(r.body))})
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(r.body)))
	b.ResetTimer()
	for i := range b.N {
		id := host.InitializeHttpContext()
		act := host.CallOnRequestHeaders(id, reqs[i], false)
		local := host.GetSentLocalResponse(id) != nil
		if !local {
			act = host.CallOnRequestBody(id, r.body, true)
			local = host.GetSentLocalResponse(id) != nil
		}
		if !want(act, local) {
			b.Fatalf("request %d: action %v, local response %v", i, act, local)
		}
		host.CompleteHttpContext(id)
	}
}

// guestClock follows the compiled plugin's clock under proxytest.
func guestClock() func() time.Time {
	var ticks time.Duration
	return func() time.Time { ticks += time.Millisecond; return guestEpoch.Add(ticks) }
}

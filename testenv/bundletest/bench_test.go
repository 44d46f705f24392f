package bundletest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/policy"
)

// benchInputs is the size of the benchmark's input set. Every sub-benchmark
// cycles through the same inputs in the same order.
const benchInputs = 256

// BenchmarkPolicyDecision decides the same inputs with the same policy data
// four ways, in one run:
//
//   - shared-policy: the Go evaluator the filter uses;
//   - opa-prepared: the Rego library as a prepared query in process, with
//     the input already an OPA document;
//   - opa-prepared-with-input-encoding: the same, building that document
//     from the Input first, as an in-process caller must;
//   - opa-http: an `opa run --server` process built from the pinned OPA
//     module, asked through its Data API over a keep-alive connection, as a
//     sidecar is; the time includes encoding the request and decoding the
//     answer.
//
// Besides ns/op, B/op and allocs/op each reports p50-ns and p99-ns, the
// latency of single decisions, and allowed-frac, the fraction of its
// decisions that allowed. Before timing, every evaluator's decision for
// every input is checked against shared/policy's.
//
//	go test -run '^$' -bench BenchmarkPolicyDecision -benchmem ./testenv/bundletest/
func BenchmarkPolicyDecision(b *testing.B) {
	ctx := b.Context()
	policies := benchPolicies(b)
	set, err := policy.Compile(policies)
	if err != nil {
		b.Fatal(err)
	}
	opa, err := prepareOPA(ctx, loadPolicyModule(b), policies)
	if err != nil {
		b.Fatal(err)
	}
	inputs := benchInputSet(policies, benchInputs)
	docs := make([]any, len(inputs))
	want := make([]policy.Decision, len(inputs))
	reasons := map[policy.Reason]int{}
	for i := range inputs {
		var raw []byte
		if docs[i], raw, err = decodeInput(&inputs[i]); err != nil {
			b.Fatal(err)
		}
		want[i] = set.Evaluate(&inputs[i])
		reasons[want[i].Reason]++
		if got, err := opa.eval(ctx, docs[i]); err != nil || got != want[i] {
			b.Fatalf("input %s:\nGo:  %s\nOPA: %s (error: %v)", raw, mustJSON(want[i]), mustJSON(got), err)
		}
	}
	for _, r := range policy.Reasons() {
		if reasons[r] == 0 {
			b.Fatalf("no input is decided %s: %v", r, reasons)
		}
	}

	b.Run("shared-policy", func(b *testing.B) {
		// Logged here: a benchmark with sub-benchmarks prints its own log
		// only when it fails.
		b.Logf("%d policies, %d inputs decided: %v", len(policies), len(inputs), reasons)
		benchDecisions(b, len(inputs), func(i int) (policy.Decision, error) {
			return set.Evaluate(&inputs[i]), nil
		})
	})
	b.Run("opa-prepared", func(b *testing.B) {
		benchDecisions(b, len(inputs), func(i int) (policy.Decision, error) {
			return opa.eval(ctx, docs[i])
		})
	})
	b.Run("opa-prepared-with-input-encoding", func(b *testing.B) {
		benchDecisions(b, len(inputs), func(i int) (policy.Decision, error) {
			doc, _, err := decodeInput(&inputs[i])
			if err != nil {
				return policy.Decision{}, err
			}
			return opa.eval(ctx, doc)
		})
	})
	b.Run("opa-http", func(b *testing.B) {
		srv := startOPAServer(b, policies)
		for i := range inputs {
			if got, err := srv.decide(&inputs[i]); err != nil || got != want[i] {
				b.Fatalf("input %s:\nGo:       %s\nOPA HTTP: %s (error: %v)", mustJSON(&inputs[i]), mustJSON(want[i]), mustJSON(got), err)
			}
		}
		dials := srv.dials.Load()
		benchDecisions(b, len(inputs), func(i int) (policy.Decision, error) {
			return srv.decide(&inputs[i])
		})
		// More than none means a connection was not kept alive, and the
		// time includes connection setup.
		b.Logf("connections opened while timing: %d", srv.dials.Load()-dials)
	})
}

// benchDecisions times decide(0), decide(1), ... decide(n-1), decide(0), ...
// with b.Loop, and each call on its own as well. The loop and its
// measurement overhead, two readings of the monotonic clock and a store into
// a buffer allocated before timing starts, are the same for every
// sub-benchmark; ns/op includes them.
func benchDecisions(b *testing.B, n int, decide func(i int) (policy.Decision, error)) {
	b.ReportAllocs()
	// The most recent 2^16 latencies: enough for a p99, small enough not to
	// change how often the collector runs.
	latencies := make([]time.Duration, 1<<16)
	// time.Since of a time with a monotonic reading reads one clock where
	// time.Now reads two; on a VM a reading can cost 50ns.
	origin := time.Now()
	count, allowed := 0, 0
	for b.Loop() {
		i := count % n
		start := time.Since(origin)
		d, err := decide(i)
		latencies[count&(len(latencies)-1)] = time.Since(origin) - start
		if err != nil {
			b.Fatal(err)
		}
		if d.Allow {
			allowed++
		}
		count++
	}
	kept := latencies[:min(count, len(latencies))]
	slices.Sort(kept)
	// Nearest-rank percentiles.
	rank := func(p int) time.Duration { return kept[(len(kept)*p+99)/100-1] }
	b.ReportMetric(float64(rank(50)), "p50-ns")
	b.ReportMetric(float64(rank(99)), "p99-ns")
	b.ReportMetric(float64(allowed)/float64(count), "allowed-frac")
}

// benchPolicies is the benchmark's policy data: the baseline the manager
// seeds for an organization (examples/policies.json), whose policies have no
// constraints, plus a production deployer policy with a tool-name pattern, a
// body limit and business hours, so that constraints are evaluated too.
func benchPolicies(tb testing.TB) []policy.Policy {
	return append(loadExamplePolicies(tb), policy.Policy{
		ID:               "pol-deployer-production",
		RoleTemplate:     "deployer",
		Environment:      policy.Production,
		MinTrustLevel:    policy.L3,
		MinLoA:           2,
		RequiredScopes:   []string{"mcp:read", "mcp:invoke", "deploy"},
		AllowedEndpoints: []string{"initialize", "ping", "notifications/*", "tools/list", "tools/call:deploy_*"},
		Constraints: policy.Constraints{
			MaxBodyBytes: 1 << 20,
			TimeWindows: []policy.TimeWindow{
				{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "08:00", End: "18:00"},
			},
		},
	})
}

// benchCalls are the MCP requests agents send, weighted roughly as a
// session sends them: mostly tool calls, reads and pings.
var benchCalls = []struct {
	method, name string
	weight       int
}{
	{"tools/call", "search_docs", 30},
	{"tools/call", "deploy_web", 6},
	{"tools/list", "", 10},
	{"resources/read", "file:///srv/app/README.md", 12},
	{"resources/list", "", 4},
	{"prompts/get", "summarize", 4},
	{"prompts/list", "", 2},
	{"completion/complete", "", 2},
	{"initialize", "", 6},
	{"notifications/initialized", "", 6},
	{"ping", "", 12},
	{"logging/setLevel", "", 1},
}

// benchInputSet generates n inputs as a gateway sees them: agents of the
// policies' role templates, mostly within their policy, and a minority
// denied for each reason: an unknown role template, a trust level or LoA
// one below the minimum, a required scope missing, a call the policy does
// not allow, or (for the deployer) a request outside business hours or
// over the body limit.
func benchInputSet(policies []policy.Policy, n int) []policy.Input {
	g := newGen(differentialSeed)
	pickCall := func(ok func(method, name string) bool) (string, string) {
		total := 0
		for _, c := range benchCalls {
			if ok(c.method, c.name) {
				total += c.weight
			}
		}
		w := g.r.IntN(total)
		for _, c := range benchCalls {
			if ok(c.method, c.name) {
				if w -= c.weight; w < 0 {
					return c.method, c.name
				}
			}
		}
		panic("unreachable")
	}
	inputs := make([]policy.Input, n)
	for k := range inputs {
		p := &policies[g.r.IntN(len(policies))]
		in := &inputs[k]
		in.RoleTemplate, in.Environment = p.RoleTemplate, p.Environment
		if g.chance(0.05) {
			in.RoleTemplate = "auditor"
		}
		in.TrustLevel = p.MinTrustLevel + policy.TrustLevel(g.r.IntN(int(policy.L5-p.MinTrustLevel)+1))
		if g.chance(0.04) {
			in.TrustLevel = p.MinTrustLevel - 1
		}
		in.LoA = p.MinLoA + policy.LoA(g.r.IntN(int(4-p.MinLoA)+1))
		if g.chance(0.03) {
			in.LoA = p.MinLoA - 1
		}
		in.Scopes = slices.Clone(p.RequiredScopes)
		if len(in.Scopes) > 0 && g.chance(0.04) {
			i := g.r.IntN(len(in.Scopes))
			in.Scopes = slices.Delete(in.Scopes, i, i+1)
		}
		if g.chance(0.3) {
			in.Scopes = append(in.Scopes, "openid")
		}
		anyCall := func(string, string) bool { return true }
		allowed := func(method, name string) bool {
			for _, s := range p.AllowedEndpoints {
				if e, err := policy.ParseEndpoint(s); err == nil && e.Match(method, name) {
					return true
				}
			}
			return false
		}
		if g.chance(0.08) {
			in.Method, in.Name = pickCall(anyCall)
		} else {
			in.Method, in.Name = pickCall(allowed)
		}
		in.BodyBytes = 100 + g.r.Int64N(8000)
		if g.chance(0.03) {
			in.BodyBytes = 2 << 20
		}
		day := time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.r.IntN(365))
		if g.chance(0.8) {
			for day.Weekday() == time.Saturday || day.Weekday() == time.Sunday {
				day = day.AddDate(0, 0, 1)
			}
			in.Time = day.Add(8*time.Hour + time.Duration(g.r.Int64N(int64(10*time.Hour))))
		} else {
			in.Time = day.Add(time.Duration(g.r.Int64N(int64(24 * time.Hour))))
		}
	}
	return inputs
}

// opaServer is an `opa run --server` process holding the library and one
// policy set, asked for decisions through the Data API as a sidecar is.
type opaServer struct {
	url    string
	client *http.Client
	// dials counts the TCP connections the client opened.
	dials *atomic.Int64
}

// startOPAServer builds OPA from the module testenv/go.mod pins, runs it on
// a free loopback port with policy.rego and the policies as data, and waits
// until it is healthy. The process is killed when b ends.
func startOPAServer(b *testing.B, policies []policy.Policy) *opaServer {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "opa")
	start := time.Now()
	// go test runs in testenv/bundletest, so this builds the pinned version.
	build := exec.CommandContext(b.Context(), "go", "build", "-o", bin, "github.com/open-policy-agent/opa")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build opa: %v\n%s", err, out)
	}
	b.Logf("built opa in %v", time.Since(start).Round(time.Millisecond))

	data, err := json.Marshal(map[string]any{"knaight": map[string]any{"policies": policies}})
	if err != nil {
		b.Fatal(err)
	}
	dataFile := filepath.Join(dir, "data.json")
	if err := os.WriteFile(dataFile, data, 0o600); err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "--server", "--addr", addr,
		"--log-level", "error", "--skip-version-check", "--optimize-store-for-read-speed",
		filepath.Join(BundlesDir(), filepath.FromSlash(PolicyModulePath)), dataFile)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	dials := new(atomic.Int64)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 1,
	}
	b.Cleanup(func() {
		transport.CloseIdleConnections()
		cmd.Process.Kill()
		<-exited
		if b.Failed() {
			b.Logf("opa at %s logged:\n%s", addr, logs.String())
		}
	})
	srv := &opaServer{url: "http://" + addr, client: &http.Client{Transport: transport, Timeout: 10 * time.Second}, dials: dials}

	deadline := time.Now().Add(30 * time.Second)
	for !srv.healthy() {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			b.Fatalf("opa exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatal("opa not healthy after 30s")
		}
	}
	return srv
}

// healthy reports whether OPA answers 200 to /health.
func (o *opaServer) healthy() bool {
	resp, err := o.client.Get(o.url + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// decide asks the server for the library's decision on in.
func (o *opaServer) decide(in *policy.Input) (policy.Decision, error) {
	return AskOPA(o.client, o.url, in)
}

package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/knaight/knaight/testenv/gateway"
	"github.com/knaight/knaight/testenv/mcpdemo"
	"github.com/knaight/knaight/testenv/stack"
)

// BenchmarkGatewayEndToEnd measures MCP tool calls through the testenv
// gateway hosting the real filter (filter=knaight) and, as the baseline in
// the same run, the same gateway hosting the no-op filter
// (plugin/internal/noop, filter=noop), in front of the same demo upstream.
// The load is clients MCP sessions of the official Go SDK client, each
// calling the echo tool in turn until b.N calls are done (at most
// loadLimit), over loopback. Each call's text is its own: the sessions
// number their JSON-RPC ids alike, and two identical requests of one agent
// signed in the same millisecond are a replay (shared/sign), which the
// gateway and the upstream refuse. It reports req/s and the p50-ms and p99-ms of
// one call as the client sees it; ns/op is the inverse of the throughput.
//
// The client, the gateway and the upstream share this process; the manager
// and PostgreSQL run beside it, and with the real filter they ingest its
// decision records as they would in use. Through the no-op filter the
// agent's token still travels, unchecked, but the request must be signed
// with the gateway's upstream key and carry a decision id, since the
// upstream accepts only what the gateway vouched for: the upstream does the
// same work in both runs, and only the filter's differs.
func BenchmarkGatewayEndToEnd(b *testing.B) {
	ctx := b.Context()
	st := startStack(b, false)
	a := trustedAgent(b, st)
	token, err := a.token(ctx)
	must(b, err)
	must(b, a.awaitAllowed(ctx, token))

	b.Run("filter=knaight", func(b *testing.B) {
		load(b, st.Resource, func() http.RoundTripper {
			return &mcpdemo.SigningTransport{Base: newTransport(), Token: token, Agent: a.ANSName, KeyID: a.KeyID, Key: a.Key}
		})
	})
	b.Run("filter=noop", func(b *testing.B) {
		url := noopGateway(b, st)
		load(b, url+"/mcp", func() http.RoundTripper {
			return vouched{&mcpdemo.SigningTransport{Base: newTransport(), Token: token, Agent: a.ANSName, KeyID: st.UpstreamKeyID, Key: st.UpstreamKey}}
		})
	})
}

// clients is the number of concurrent MCP sessions of the load; loadLimit
// bounds one run of it.
const (
	clients   = 8
	loadLimit = 5 * time.Minute
)

// load opens clients sessions to endpoint, each with its own transport
// from rt, and makes b.N echo calls through them.
func load(b *testing.B, endpoint string, rt func() http.RoundTripper) {
	ctx, cancel := context.WithTimeout(b.Context(), loadLimit)
	defer cancel()
	sessions := make([]*mcp.ClientSession, clients)
	for i := range sessions {
		client := mcp.NewClient(&mcp.Implementation{Name: fmt.Sprintf("bench-%d", i), Version: "1"}, nil)
		s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: rt()}},
			&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			b.Fatalf("connect through the gateway: %v", err)
		}
		defer s.Close()
		sessions[i] = s
		// One call per session before the clock starts: the first call of
		// a connection costs more.
		must(b, echo(ctx, s, fmt.Sprintf("warm-up %d", i)))
	}

	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, s := range sessions {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t := time.Now()
				if err := echo(ctx, s, fmt.Sprintf("call %d", i)); err != nil {
					errs <- err
					cancel()
					return
				}
				latencies[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	reportLatencies(b, latencies, false)
}

// echo calls the echo tool once with text and checks that it answered.
func echo(ctx context.Context, s *mcp.ClientSession, text string) error {
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: mcpdemo.ToolEcho, Arguments: map[string]any{"text": text}})
	if err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if res.IsError {
		return fmt.Errorf("echo answered an error: %+v", res.Content)
	}
	return nil
}

// newTransport is a client's own connection pool, large enough to keep its
// connections (the default keeps two idle per host).
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return t
}

// noopGateway serves the testenv gateway with the no-op filter in front of
// the stack's upstream on a loopback port, until b ends, and returns its
// base URL. It has no service VM and no manager: there is nothing to poll.
func noopGateway(b *testing.B, st *stack.Stack) string {
	ctx := b.Context()
	wasm, err := stack.BuildNoopPlugin(ctx, b.TempDir())
	must(b, err)
	gw, err := gateway.New(ctx, gateway.Config{Wasm: wasm, Workers: workers, Upstream: st.UpstreamURL})
	must(b, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		gw.Close()
		b.Fatal(err)
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 10 * time.Minute, IdleTimeout: 2 * time.Minute}
	go srv.Serve(ln)
	b.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	return "http://" + ln.Addr().String()
}

// vouched adds the decision id the filter would add, which the upstream
// requires, for requests that pass the no-op filter.
type vouched struct{ next http.RoundTripper }

func (v vouched) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.Header.Set(mcpdemo.HeaderDecisionID, "noop")
	return v.next.RoundTrip(out)
}

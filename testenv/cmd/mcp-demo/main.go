// Command mcp-demo serves the demo upstream MCP server (testenv/mcpdemo):
// tools echo, time and deploy, the resource demo://readme and the prompt
// summarize, at /mcp (any path but /healthz), accepting only requests the
// Knaight gateway signed with one of the given upstream keys.
//
//	mcp-demo -listen 127.0.0.1:8091 -upstream-key uk_1=<base64url secret>
//
// The keys come from POST /api/v1/gateway/upstream-keys of the manager (or
// the gateway's registration); -upstream-key may be repeated during a
// rotation, or KNAIGHT_UPSTREAM_KEYS="uk_1=...,uk_2=..." set instead.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/knaight/knaight/testenv/mcpdemo"
)

func main() {
	keys := upstreamKeys{}
	listen := flag.String("listen", envOr("KNAIGHT_MCP_DEMO_LISTEN", "127.0.0.1:8091"), "address to serve on [KNAIGHT_MCP_DEMO_LISTEN]")
	flag.Var(keys, "upstream-key", "upstream key as kid=base64url-secret, repeatable [KNAIGHT_UPSTREAM_KEYS, comma-separated]")
	flag.Parse()
	if len(keys) == 0 {
		if env := os.Getenv("KNAIGHT_UPSTREAM_KEYS"); env != "" {
			for kv := range strings.SplitSeq(env, ",") {
				if err := keys.Set(strings.TrimSpace(kv)); err != nil {
					fatal(fmt.Errorf("KNAIGHT_UPSTREAM_KEYS: %w", err))
				}
			}
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o := mcpdemo.Options{UpstreamKeys: keys, Logger: logger}
	if err := o.Validate(); err != nil {
		fatal(fmt.Errorf("%w (give -upstream-key kid=secret or KNAIGHT_UPSTREAM_KEYS)", err))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, ln, o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mcp-demo:", err)
	os.Exit(1)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// run serves o's demo upstream on ln until ctx ends.
func run(ctx context.Context, ln net.Listener, o mcpdemo.Options) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", mcpdemo.NewHandler(o))
	// Shutdown waits for requests to end, and a client's standalone SSE
	// stream (GET) ends only with its session: end their contexts.
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	srv := &http.Server{
		Handler:           mux,
		BaseContext:       func(net.Listener) context.Context { return streams },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		// A client's standalone SSE stream (GET) lives as long as its
		// session; the SDK client reopens it when this cuts it.
		WriteTimeout: 10 * time.Minute,
		IdleTimeout:  2 * time.Minute,
	}
	srv.RegisterOnShutdown(endStreams)
	o.Logger.Info("mcp-demo serving", "url", "http://"+ln.Addr().String()+"/mcp", "upstream_keys", len(o.UpstreamKeys))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// upstreamKeys is the repeatable -upstream-key flag: kid=base64url secret,
// with or without padding, as the manager shows it.
type upstreamKeys map[string][]byte

func (k upstreamKeys) String() string {
	kids := make([]string, 0, len(k))
	for kid := range k {
		kids = append(kids, kid)
	}
	return strings.Join(kids, ",")
}

func (k upstreamKeys) Set(v string) error {
	kid, secret, ok := strings.Cut(v, "=")
	if !ok || kid == "" || secret == "" {
		return errors.New("want kid=base64url-secret")
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(secret, "="))
	if err != nil {
		return fmt.Errorf("upstream key %s: secret is not base64url: %w", kid, err)
	}
	if _, dup := k[kid]; dup {
		return fmt.Errorf("upstream key %s given twice", kid)
	}
	k[kid] = key
	return nil
}

// Command knaight-run is make run: the whole system on this machine. It
// starts a throwaway PostgreSQL (data under the git-ignored .run folder),
// the manager (bootstrapping an organization and its admin key), the demo
// upstream MCP server and the gateway in front of it (the real plugin.wasm
// in the testenv gateway), registers the gateway through the manager's API,
// prints the URLs, the environment and the README's walkthrough, and stops
// everything on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/knaight/knaight/testenv/managerproc"
	"github.com/knaight/knaight/testenv/postgres"
	"github.com/knaight/knaight/testenv/stack"
)

func main() {
	listen := flag.String("listen", envOr("KNAIGHT_LISTEN", "127.0.0.1:8080"), "address the manager serves on [KNAIGHT_LISTEN]")
	gateway := flag.String("gateway-listen", envOr("KNAIGHT_GATEWAY_LISTEN", "127.0.0.1:10000"), "address the gateway serves on [KNAIGHT_GATEWAY_LISTEN]")
	upstream := flag.String("upstream-listen", envOr("KNAIGHT_UPSTREAM_LISTEN", "127.0.0.1:9000"), "address the demo upstream MCP server serves on [KNAIGHT_UPSTREAM_LISTEN]")
	dir := flag.String("dir", ".run", "folder for binaries, logs and the database (git-ignored)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *gateway, *upstream, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "knaight-run:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, listen, gatewayListen, upstreamListen, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var srv *postgres.Server
	var err error
	if url := os.Getenv("DATABASE_URL"); url != "" {
		step("using the PostgreSQL server at DATABASE_URL")
		srv, err = postgres.Connect(ctx, url)
	} else {
		step("starting a throwaway PostgreSQL")
		srv, err = postgres.Start(ctx, postgres.Options{})
	}
	if err != nil {
		return err
	}
	defer srv.Stop()
	dbName := fmt.Sprintf("knaight_run_%d", time.Now().Unix())
	if err := srv.CreateDatabase(ctx, dbName, ""); err != nil {
		return err
	}
	defer srv.DropDatabase(context.WithoutCancel(ctx), dbName)
	dbURL := srv.URL(dbName)

	walk, err := readWalkthrough()
	if err != nil {
		return err
	}

	step("building the manager and plugin.wasm, starting the manager, the demo upstream and the gateway")
	logPath := filepath.Join(dir, "gateway.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	envoy := stack.EnvoyBinary()
	if envoy != "" {
		step("gateway: %s with envoy/envoy.yaml", envoy)
	} else {
		step("gateway: plugin.wasm in the testenv gateway (no envoy on PATH, no ENVOY_BIN)")
	}
	st, err := stack.Start(ctx, stack.Options{
		Dir: dir, DatabaseURL: dbURL, ManagerListen: listen, GatewayListen: gatewayListen, UpstreamListen: upstreamListen,
		Logger: slog.New(slog.NewJSONHandler(logFile, nil)), Envoy: envoy,
	})
	if err != nil {
		return err
	}
	if st.GatewayLog != "" {
		logPath = st.GatewayLog
	}
	fmt.Printf(`
Knaight is running.

  manager API    %[1]s/api/v1   (OpenAPI: %[1]s/api/v1/openapi.json)
  gateway        %[2]s   (the filter in front of the demo MCP server)
  demo upstream  %[3]s   (refuses anything the gateway did not sign)
  logs           %[4]s  %[5]s
  database       %[6]s

The bootstrap admin key is shown only now. In another shell:

export KNAIGHT_URL=%[1]s
export KNAIGHT_GATEWAY=%[2]s
export KNAIGHT_KEY=%[7]s

and paste the walkthrough (README.md, "Walkthrough", explains each step):

%[8]s
Ctrl-C stops everything and deletes the database.
`, st.Manager.URL, st.Resource, st.UpstreamURL, st.Manager.LogPath, logPath, dbURL, st.Manager.AdminKey, walk)

	select {
	case <-ctx.Done():
		step("stopping")
		st.Stop()
	case err := <-st.Manager.Exited():
		st.Stop()
		tail, _ := managerproc.Tail(st.Manager.LogPath, 20)
		return fmt.Errorf("manager exited: %v\n%s", err, tail)
	}
	return nil
}

// walkthroughBlock is the shell block of README.md's walkthrough.
var walkthroughBlock = regexp.MustCompile("(?s)<!-- walkthrough:start -->\\s*```sh\\n(.*?)```\\s*<!-- walkthrough:end -->")

// readWalkthrough returns the repository's README.md walkthrough, so that
// what make run prints and what make test runs are one text.
func readWalkthrough() (string, error) {
	root, err := stack.RepoRoot()
	if err != nil {
		return "", err
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		return "", err
	}
	m := walkthroughBlock.FindSubmatch(readme)
	if m == nil {
		return "", fmt.Errorf("%s has no walkthrough block", filepath.Join(root, "README.md"))
	}
	return string(m[1]), nil
}

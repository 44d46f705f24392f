// Command knaight-run is `make run`: it starts the whole system locally for
// a first look — a throwaway PostgreSQL from the machine's binaries, the
// manager migrated and bootstrapped with a demo organization — prints where
// everything listens and the admin key, and stops it all cleanly on Ctrl-C.
// Nothing outlives it: the database is deleted on exit.
//
// With DATABASE_URL set it uses that server instead of starting one (and
// creates a fresh database on it, dropped on exit).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/knaight/knaight/testenv/managerproc"
	"github.com/knaight/knaight/testenv/postgres"
)

func main() {
	listen := flag.String("listen", envOr("KNAIGHT_LISTEN", "127.0.0.1:8080"), "address the manager serves on [KNAIGHT_LISTEN]")
	dir := flag.String("dir", ".run", "folder for binaries and logs (git-ignored)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *dir); err != nil {
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

func run(ctx context.Context, listen, dir string) error {
	if ln, err := net.Listen("tcp", listen); err != nil {
		return fmt.Errorf("%s is not free (set KNAIGHT_LISTEN=host:port): %w", listen, err)
	} else {
		ln.Close()
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	step("building the manager")
	manager, err := managerproc.Build(ctx, filepath.Join(dir, "bin"))
	if err != nil {
		return err
	}

	var srv *postgres.Server
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

	step("migrating the database, bootstrapping the demo organization, starting the manager")
	logPath := filepath.Join(dir, "manager.log")
	m, err := managerproc.Start(ctx, managerproc.Options{Binary: manager, DatabaseURL: dbURL, Listen: listen, LogPath: logPath})
	if err != nil {
		return err
	}
	base := m.URL
	fmt.Printf(`
Knaight is running.

  manager API   %[1]s/api/v1   (OpenAPI: %[1]s/api/v1/openapi.json)
  health        %[1]s/healthz  %[1]s/readyz
  manager log   %[2]s
  database      %[3]s

The bootstrap admin key is shown only now. In another shell:

export KNAIGHT_URL=%[1]s
export KNAIGHT_KEY=%[4]s

then follow "Walkthrough" in README.md. Ctrl-C stops everything and deletes the database.
`, base, logPath, dbURL, m.AdminKey)

	select {
	case <-ctx.Done():
		step("stopping")
		m.Stop()
	case err := <-m.Exited():
		tail, _ := managerproc.Tail(logPath, 20)
		return fmt.Errorf("manager exited: %v\n%s", err, tail)
	}
	return nil
}

package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/knaight/knaight/manager/internal/config"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/server"
	"github.com/knaight/knaight/testenv/postgres"
)

func TestMain(m *testing.M) { os.Exit(postgres.Main(m)) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestRunMigratesServesAndShutsDownGracefully(t *testing.T) {
	cfg := config.Defaults()
	cfg.DatabaseURL = postgres.NewDatabase(t)
	cfg.KEK = "q83vEjRWeJBCgYqKzN7vEjRWeJBCgYqKzN7vEjRWeJA="
	cfg.Listen = "127.0.0.1:0"
	cfg.MigrateOnStart = true
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))

	ctx, cancel := context.WithCancel(t.Context())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, log, func(a string) { addrs <- a }) }()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("not listening after 60s")
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no shutdown within 30s")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestRunRefusesAnUnmigratedDatabase(t *testing.T) {
	cfg := config.Defaults()
	cfg.DatabaseURL = postgres.NewDatabase(t)
	cfg.KEK = "q83vEjRWeJBCgYqKzN7vEjRWeJBCgYqKzN7vEjRWeJA="
	cfg.Listen = "127.0.0.1:0"
	err := server.Run(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil {
		t.Fatal("served an unmigrated database")
	}
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	url := postgres.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, _, err := db.Migrate(t.Context(), url)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pool, err := db.Open(t.Context(), url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := db.CheckSchema(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
}

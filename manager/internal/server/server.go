// Package server runs the manager process: it opens the database (migrating
// it first when asked), serves the API with every http.Server timeout set,
// runs the background sweeps, and shuts down gracefully when its context
// ends.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/api"
	"github.com/knaight/knaight/manager/internal/config"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/notify"
	"github.com/knaight/knaight/manager/internal/seal"
)

// Run serves until ctx ends, then drains in-flight requests for up to
// cfg.ShutdownTimeout. ready, if non-nil, receives the bound address once
// the listener is open.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(addr string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	kek, _ := seal.ParseKEK(cfg.KEK) // Validate checked it
	sealer, err := seal.New(kek)
	if err != nil {
		return err
	}
	if cfg.MigrateOnStart {
		from, to, err := db.Migrate(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		log.InfoContext(ctx, "schema migrated", "from", from, "to", to)
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, int32(cfg.DBMaxConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := db.CheckSchema(ctx, pool); err != nil {
		return fmt.Errorf("%w (run knaight-manager migrate, or serve with --migrate)", err)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}
	changes := notify.New(log)
	handler, apiServer := api.New(api.Config{
		Pool: pool, Sealer: sealer, Log: log, Now: time.Now, Issuer: issuer,
		BootstrapToken: cfg.BootstrapToken, KeyOverlap: cfg.KeyOverlap, WebhookWindow: cfg.WebhookWindow,
		Changes: changes, GatewayMaxStaleness: cfg.GatewayMaxStaleness,
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(changes.Stop)
	log.InfoContext(ctx, "manager listening", "addr", ln.Addr().String(), "issuer", issuer)
	if ready != nil {
		ready(ln.Addr().String())
	}

	// The sweep and the change listener run until shutdown begins: held
	// long polls then end with their wait, or when Shutdown's deadline
	// closes them.
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		apiServer.Sweep(sweepCtx, cfg.SweepInterval)
	}()
	listenDone := make(chan struct{})
	go func() {
		defer close(listenDone)
		changes.Run(sweepCtx, func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, cfg.DatabaseURL) })
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		stopSweep()
		<-sweepDone
		<-listenDone
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	stopSweep()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	<-sweepDone
	<-listenDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// Package db owns the manager's PostgreSQL schema and connections: the
// embedded, numbered migrations (applied by tern under its advisory lock, so
// replicas starting together migrate once), the connection pool, and the one
// transaction helper every state change goes through, so that a change and
// its ledger event commit together or not at all.
package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable is where tern records the schema version.
const versionTable = "public.schema_version"

// ErrSchemaBehind means the database has not been migrated to the version
// this binary expects; run `knaight-manager migrate`.
var ErrSchemaBehind = errors.New("database schema is behind this binary")

// ErrSchemaAhead means a newer binary migrated the database; this binary must
// not write to it. Upgrade it.
var ErrSchemaAhead = errors.New("database schema is newer than this binary")

func migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

func newMigrator(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return nil, fmt.Errorf("prepare migrator: %w", err)
	}
	if err := m.LoadMigrations(migrations()); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return m, nil
}

// Migrate applies every pending migration to the database at url. It is
// safe to run from several processes at once: tern serialises them with a
// PostgreSQL advisory lock.
func Migrate(ctx context.Context, url string) (from, to int32, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := newMigrator(ctx, conn)
	if err != nil {
		return 0, 0, err
	}
	if from, err = m.GetCurrentVersion(ctx); err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return from, 0, fmt.Errorf("migrate: %w", err)
	}
	to, err = m.GetCurrentVersion(ctx)
	return from, to, err
}

// LatestVersion is the schema version this binary's migrations produce.
func LatestVersion() int32 {
	names, err := migrate.FindMigrations(migrations())
	if err != nil {
		panic(err) // embedded files are checked by the tests
	}
	return int32(len(names))
}

// CheckSchema reports whether the database is at exactly LatestVersion.
func CheckSchema(ctx context.Context, q Querier) error {
	var v int32
	if err := q.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch want := LatestVersion(); {
	case v < want:
		return fmt.Errorf("%w: at %d, want %d", ErrSchemaBehind, v, want)
	case v > want:
		return fmt.Errorf("%w: at %d, want %d", ErrSchemaAhead, v, want)
	}
	return nil
}

// Querier is what read paths need: a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Open connects a pool to url and checks that the schema is current.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("reach database: %w", err)
	}
	return pool, nil
}

// InTx runs fn in a transaction and commits it if fn returns nil. Everything
// fn writes, including ledger events, commits together or not at all.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}

// IsUniqueViolation reports whether err is a unique-constraint violation,
// optionally of the named constraint.
func IsUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return false
	}
	return constraint == "" || pgErr.ConstraintName == constraint
}

type txKey struct{}

// WithTx returns ctx carrying tx, for components behind interfaces (such as
// the ANS registry) that must join the caller's transaction.
func WithTx(ctx context.Context, tx pgx.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// TxFrom returns the transaction carried by ctx, if any.
func TxFrom(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(pgx.Tx)
	return tx, ok
}

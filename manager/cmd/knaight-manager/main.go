// Command knaight-manager is Knaight's control plane: it owns agents and
// their ANS identity, trust, MCP policies and the audit ledger, and serves
// them over REST.
//
//	knaight-manager serve      run the API
//	knaight-manager migrate    apply database migrations
//	knaight-manager bootstrap  create an organization and its first admin key
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/knaight/knaight/manager/internal/config"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/orgs"
	"github.com/knaight/knaight/manager/internal/server"
)

const usage = `usage: knaight-manager <command> [flags]

commands:
  serve      run the manager API
  migrate    apply pending database migrations and exit
  bootstrap  create an organization with its first admin key, print them as JSON

Every flag can also be set by the environment variable named in its help.
Run "knaight-manager <command> -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "migrate":
		err = migrate(ctx, os.Args[2:])
	case "bootstrap":
		err = bootstrap(ctx, os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		slog.Error("knaight-manager "+os.Args[1]+" failed", "err", err)
		os.Exit(1)
	}
}

// flags binds the configuration to flags whose defaults come from the
// environment.
type flags struct {
	fs  *flag.FlagSet
	cfg config.Config
	err error
}

func newFlags(name string) *flags {
	f := &flags{fs: flag.NewFlagSet(name, flag.ContinueOnError), cfg: config.Defaults()}
	f.str(&f.cfg.DatabaseURL, "database-url", "KNAIGHT_DATABASE_URL", "PostgreSQL URL (postgres://...); DATABASE_URL is read too")
	if f.cfg.DatabaseURL == "" {
		f.cfg.DatabaseURL = os.Getenv("DATABASE_URL")
	}
	f.num(&f.cfg.DBMaxConns, "db-max-conns", "KNAIGHT_DB_MAX_CONNS", "maximum database connections")
	f.str(&f.cfg.LogLevel, "log-level", "KNAIGHT_LOG_LEVEL", "debug, info, warn or error")
	f.str(&f.cfg.LogFormat, "log-format", "KNAIGHT_LOG_FORMAT", "json or text")
	return f
}

func (f *flags) str(p *string, name, env, help string) {
	if v, ok := os.LookupEnv(env); ok {
		*p = v
	}
	f.fs.StringVar(p, name, *p, help+" ["+env+"]")
}

func (f *flags) num(p *int, name, env, help string) {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.err = &config.FieldError{Flag: name, Env: env, Reason: "must be an integer"}
		}
		*p = n
	}
	f.fs.IntVar(p, name, *p, help+" ["+env+"]")
}

func (f *flags) dur(p *time.Duration, name, env, help string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.err = &config.FieldError{Flag: name, Env: env, Reason: "must be a duration such as 30s or 24h"}
		}
		*p = d
	}
	f.fs.DurationVar(p, name, *p, help+" ["+env+"]")
}

func (f *flags) boolean(p *bool, name, env, help string) {
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.err = &config.FieldError{Flag: name, Env: env, Reason: "must be true or false"}
		}
		*p = b
	}
	f.fs.BoolVar(p, name, *p, help+" ["+env+"]")
}

func (f *flags) parse(args []string) error {
	if f.err != nil {
		return f.err
	}
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	return nil
}

func (f *flags) logger() *slog.Logger {
	level, err := f.cfg.SlogLevel()
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if f.cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

func serve(ctx context.Context, args []string) error {
	f := newFlags("serve")
	c := &f.cfg
	f.str(&c.Listen, "listen", "KNAIGHT_LISTEN", "address to serve HTTP on")
	f.str(&c.Issuer, "issuer", "KNAIGHT_ISSUER", "the manager's public base URL, the iss of gateway tokens (default http://<listen>)")
	f.str(&c.KEK, "kek", "KNAIGHT_KEK", "key-encryption key for secrets at rest: 32 bytes, base64")
	f.str(&c.BootstrapToken, "bootstrap-token", "KNAIGHT_BOOTSTRAP_TOKEN", "enables POST /api/v1/bootstrap with this bearer token (>= 32 chars)")
	f.dur(&c.ShutdownTimeout, "shutdown-timeout", "KNAIGHT_SHUTDOWN_TIMEOUT", "how long to drain requests on shutdown")
	f.dur(&c.KeyOverlap, "key-overlap", "KNAIGHT_KEY_OVERLAP", "default validity of an agent's old HMAC key after rotation")
	f.dur(&c.WebhookWindow, "webhook-window", "KNAIGHT_WEBHOOK_WINDOW", "accepted clock skew of signed webhooks")
	f.dur(&c.SweepInterval, "sweep-interval", "KNAIGHT_SWEEP_INTERVAL", "how often trust levels and ANS expiries are recomputed")
	f.dur(&c.GatewayMaxStaleness, "gateway-max-staleness", "KNAIGHT_GATEWAY_MAX_STALENESS", "how long a gateway enforces its snapshot without reaching the manager before it fails closed")
	f.boolean(&c.MigrateOnStart, "migrate", "KNAIGHT_MIGRATE", "apply pending migrations before serving")
	if err := f.parse(args); err != nil {
		return err
	}
	log := f.logger()
	slog.SetDefault(log)
	return server.Run(ctx, f.cfg, log, nil)
}

func migrate(ctx context.Context, args []string) error {
	f := newFlags("migrate")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.cfg.ValidateDatabase(); err != nil {
		return err
	}
	log := f.logger()
	from, to, err := db.Migrate(ctx, f.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	log.Info("schema migrated", "from", from, "to", to)
	return nil
}

func bootstrap(ctx context.Context, args []string) error {
	f := newFlags("bootstrap")
	var n orgs.New
	var keyName string
	var additional bool
	f.str(&n.Name, "org-name", "KNAIGHT_ORG_NAME", "organization display name")
	f.str(&n.Slug, "org-slug", "KNAIGHT_ORG_SLUG", "organization slug (lowercase, digits, hyphens)")
	f.str(&n.ANSDomain, "ans-domain", "KNAIGHT_ANS_DOMAIN", "DNS suffix of the organization's agents' ANS names")
	keyName = "bootstrap"
	f.str(&keyName, "key-name", "KNAIGHT_KEY_NAME", "name of the first admin key")
	f.boolean(&additional, "additional", "KNAIGHT_BOOTSTRAP_ADDITIONAL", "create the organization even if others exist")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.cfg.ValidateDatabase(); err != nil {
		return err
	}
	pool, err := db.Open(ctx, f.cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := db.CheckSchema(ctx, pool); err != nil {
		return err
	}
	b, err := orgs.Bootstrap(ctx, pool, n, keyName, !additional, "bootstrap", time.Now())
	if err != nil {
		return err
	}
	out := map[string]any{
		"organization": b.Organization,
		"apiKey":       map[string]any{"id": b.AdminKey.ID, "name": b.AdminKey.Name, "role": b.AdminKey.Role, "token": b.Token},
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// Package config is the manager's configuration: parsed from flags and
// environment in cmd/knaight-manager, completed with defaults, and checked
// by Validate before anything starts, with errors that name the flag and
// variable at fault and never echo a secret.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/knaight/knaight/manager/internal/seal"
)

// Config is everything the manager reads at start.
type Config struct {
	DatabaseURL     string
	Listen          string
	Issuer          string // the manager's public base URL; "" = http://<listen>
	KEK             string // base64; see seal.ParseKEK
	BootstrapToken  string
	LogLevel        string
	LogFormat       string
	DBMaxConns      int
	ShutdownTimeout time.Duration
	KeyOverlap      time.Duration
	WebhookWindow   time.Duration
	SweepInterval   time.Duration
	// GatewayMaxStaleness is how long a gateway may enforce its snapshot
	// without reaching the manager before it fails closed.
	GatewayMaxStaleness time.Duration
	MigrateOnStart      bool
}

// Defaults returns a Config with every optional field set.
func Defaults() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		LogLevel:        "info",
		LogFormat:       "json",
		DBMaxConns:      20,
		ShutdownTimeout: 15 * time.Second,
		KeyOverlap:      24 * time.Hour,
		WebhookWindow:   5 * time.Minute,
		SweepInterval:   time.Minute,

		GatewayMaxStaleness: 5 * time.Minute,
	}
}

// FieldError names the invalid setting by its flag and environment variable.
type FieldError struct {
	Flag, Env, Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid configuration: --%s (%s): %s", e.Flag, e.Env, e.Reason)
}

func bad(flag, env, reason string) error { return &FieldError{Flag: flag, Env: env, Reason: reason} }

// ValidateDatabase checks what every subcommand needs: the database URL.
func (c *Config) ValidateDatabase() error {
	if c.DatabaseURL == "" {
		return bad("database-url", "KNAIGHT_DATABASE_URL", "required (a postgres:// URL)")
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The URL may hold a password: do not echo it.
		return bad("database-url", "KNAIGHT_DATABASE_URL", "must be a postgres:// or postgresql:// URL")
	}
	if c.DBMaxConns < 1 || c.DBMaxConns > 1000 {
		return bad("db-max-conns", "KNAIGHT_DB_MAX_CONNS", "must be between 1 and 1000")
	}
	return nil
}

// Validate checks everything `serve` needs.
func (c *Config) Validate() error {
	if err := c.ValidateDatabase(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "KNAIGHT_LISTEN", "must be host:port, e.g. 127.0.0.1:8080")
	}
	if c.Issuer != "" {
		u, err := url.Parse(c.Issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(c.Issuer, "/") {
			return bad("issuer", "KNAIGHT_ISSUER", "must be an http(s) URL without query, fragment or trailing slash, e.g. https://knaight.example.com")
		}
	}
	if c.KEK == "" {
		return bad("kek", "KNAIGHT_KEK", "required: 32 random bytes in base64 (openssl rand -base64 32)")
	}
	if _, err := seal.ParseKEK(c.KEK); err != nil {
		return bad("kek", "KNAIGHT_KEK", err.Error())
	}
	if c.BootstrapToken != "" && len(c.BootstrapToken) < 32 {
		return bad("bootstrap-token", "KNAIGHT_BOOTSTRAP_TOKEN", "must be at least 32 characters when set")
	}
	if _, err := c.SlogLevel(); err != nil {
		return bad("log-level", "KNAIGHT_LOG_LEVEL", err.Error())
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return bad("log-format", "KNAIGHT_LOG_FORMAT", "must be json or text")
	}
	for _, d := range []struct {
		flag, env   string
		v, min, max time.Duration
	}{
		{"shutdown-timeout", "KNAIGHT_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, time.Second, 10 * time.Minute},
		{"key-overlap", "KNAIGHT_KEY_OVERLAP", c.KeyOverlap, 0, 30 * 24 * time.Hour},
		{"webhook-window", "KNAIGHT_WEBHOOK_WINDOW", c.WebhookWindow, 30 * time.Second, time.Hour},
		{"sweep-interval", "KNAIGHT_SWEEP_INTERVAL", c.SweepInterval, time.Second, time.Hour},
		{"gateway-max-staleness", "KNAIGHT_GATEWAY_MAX_STALENESS", c.GatewayMaxStaleness, 5 * time.Second, 7 * 24 * time.Hour},
	} {
		if d.v < d.min || d.v > d.max {
			return bad(d.flag, d.env, fmt.Sprintf("must be between %s and %s", d.min, d.max))
		}
	}
	return nil
}

// SlogLevel parses LogLevel.
func (c *Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(c.LogLevel))); err != nil {
		return 0, errors.New("must be debug, info, warn or error")
	}
	return l, nil
}

package config

import (
	"strings"
	"testing"
	"time"
)

func valid() Config {
	c := Defaults()
	c.DatabaseURL = "postgres://u:secret-password@localhost/db"
	c.KEK = "q83vEjRWeJBCgYqKzN7vEjRWeJBCgYqKzN7vEjRWeJA="
	return c
}

func TestValidateNamesTheSettingAtFault(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		flag   string
	}{
		{"defaults with the required settings are valid", func(*Config) {}, ""},
		{"database URL is required", func(c *Config) { c.DatabaseURL = "" }, "--database-url (KNAIGHT_DATABASE_URL)"},
		{"database URL must be postgres", func(c *Config) { c.DatabaseURL = "mysql://u:secret-password@h/db" }, "--database-url"},
		{"KEK is required", func(c *Config) { c.KEK = "" }, "--kek (KNAIGHT_KEK)"},
		{"KEK must be 32 bytes", func(c *Config) { c.KEK = "c2hvcnQ=" }, "--kek"},
		{"KEK must be base64", func(c *Config) { c.KEK = "not base64 at all!!" }, "--kek"},
		{"listen needs a port", func(c *Config) { c.Listen = "localhost" }, "--listen"},
		{"short bootstrap token", func(c *Config) { c.BootstrapToken = "short" }, "--bootstrap-token"},
		{"unknown log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{"unknown log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
		{"pool too large", func(c *Config) { c.DBMaxConns = 5000 }, "--db-max-conns"},
		{"overlap too long", func(c *Config) { c.KeyOverlap = 365 * 24 * time.Hour }, "--key-overlap"},
		{"webhook window too short", func(c *Config) { c.WebhookWindow = time.Second }, "--webhook-window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if tc.flag == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("error %v does not name %s", err, tc.flag)
			}
			for _, secret := range []string{"secret-password", c.KEK, c.BootstrapToken} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Fatalf("error echoes a secret: %v", err)
				}
			}
		})
	}
}

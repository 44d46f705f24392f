package filter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/policy"
)

// ParseConfig is pure Go, so it is tested natively only; filter_test.go runs
// the same rules through OnPluginStart, natively and in the compiled binary.

// withField returns the fixture configuration with one field replaced (or
// removed, for value ""), as raw JSON.
func withField(field, value string) string {
	base := map[string]string{
		"organization": `"acme"`, "environment": `"production"`, "managerCluster": `"knaight_manager"`,
		"managerAuthority": `"manager.internal"`, "gatewayCredential": `"` + fxCred.String() + `"`,
		"snapshotKeys": `{"snap_1": "` + strings.Repeat("A", 43) + `="}`, "resource": `"` + fxResource + `"`,
	}
	if value == "" {
		delete(base, field)
	} else {
		base[field] = value
	}
	var parts []string
	for _, k := range knownFields {
		if v, ok := base[k]; ok {
			parts = append(parts, `"`+k+`": `+v)
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func TestParseConfigAccepts(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c, err := ParseConfig([]byte(withField("service", "")))
		if err != nil {
			t.Fatal(err)
		}
		if c.Organization != "acme" || c.Environment != policy.Production || c.ManagerCluster != "knaight_manager" ||
			c.ManagerAuthority != "manager.internal" || c.Credential.GatewayID != fxGateway || len(c.SnapshotKeys["snap_1"]) != 32 ||
			c.Resource != fxResource || c.PollWait != 30*time.Second || c.FlushInterval != time.Second ||
			c.MaxBodyBytes != 1<<20 || c.MaxStaleness != 5*time.Minute || c.QueueLimit != 10000 || c.Service {
			t.Errorf("ParseConfig = %+v", c)
		}
		if c.metadataURL != "https://mcp.example.com/.well-known/oauth-protected-resource/mcp" ||
			c.metadataPaths != [2]string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
			t.Errorf("metadata %q %q", c.metadataURL, c.metadataPaths)
		}
	})
	t.Run("every optional field", func(t *testing.T) {
		cfg := strings.TrimSuffix(withField("service", "true"), "}") +
			`, "pollWaitSeconds": 0, "flushIntervalMillis": 250, "maxBodyBytes": 10, "maxStalenessSeconds": 90, "queueLimit": 5}`
		c, err := ParseConfig([]byte(cfg))
		if err != nil {
			t.Fatal(err)
		}
		if !c.Service || c.PollWait != 0 || c.FlushInterval != 250*time.Millisecond || c.MaxBodyBytes != 10 ||
			c.MaxStaleness != 90*time.Second || c.QueueLimit != 5 {
			t.Errorf("ParseConfig = %+v", c)
		}
	})
	t.Run("resource at the root", func(t *testing.T) {
		c, err := ParseConfig([]byte(withField("resource", `"http://mcp.local:8080/"`)))
		if err != nil {
			t.Fatal(err)
		}
		if c.metadataURL != "http://mcp.local:8080/.well-known/oauth-protected-resource" {
			t.Errorf("metadata URL %q", c.metadataURL)
		}
	})
}

func TestParseConfigRejects(t *testing.T) {
	cases := []struct {
		name, config, field string
	}{
		{"empty", ``, ""},
		{"null", `null`, ""},
		{"a string", `"acme"`, ""},
		{"truncated", `{`, ""},
		{"trailing brace", withField("service", "") + `}`, ""},
		{"missing organization", withField("organization", ""), "organization"},
		{"null organization", withField("organization", "null"), "organization"},
		{"bad slug", withField("organization", `"-acme"`), "organization"},
		{"long slug", withField("organization", `"`+strings.Repeat("a", 64)+`"`), "organization"},
		{"array organization", withField("organization", `["acme"]`), "organization"},
		{"repeated organization", strings.Replace(withField("service", ""), "{", `{"organization": "acme", `, 1), "organization"},
		{"cased environment value", withField("environment", `"Production"`), "environment"},
		{"missing environment", withField("environment", ""), "environment"},
		{"missing cluster", withField("managerCluster", ""), "managerCluster"},
		{"authority with scheme", withField("managerAuthority", `"https://manager"`), "managerAuthority"},
		{"missing credential", withField("gatewayCredential", ""), "gatewayCredential"},
		{"api key as credential", withField("gatewayCredential", `"knk_abc_def"`), "gatewayCredential"},
		{"short credential secret", withField("gatewayCredential", `"kngw.gw.c2hvcnQ"`), "gatewayCredential"},
		{"no snapshot keys", withField("snapshotKeys", ""), "snapshotKeys"},
		{"empty snapshot keys", withField("snapshotKeys", `{}`), "snapshotKeys"},
		{"short snapshot key", withField("snapshotKeys", `{"k": "AAAA"}`), "snapshotKeys"},
		{"snapshot key not a string", withField("snapshotKeys", `{"k": 1}`), "snapshotKeys"},
		{"missing resource", withField("resource", ""), "resource"},
		{"relative resource", withField("resource", `"/mcp"`), "resource"},
		{"resource with fragment", withField("resource", `"https://mcp.example.com/mcp#x"`), "resource"},
		{"negative body limit", withField("maxBodyBytes", `0`), "maxBodyBytes"},
		{"huge body limit", withField("maxBodyBytes", `1000000000`), "maxBodyBytes"},
		{"fractional wait", withField("pollWaitSeconds", `1.5`), "pollWaitSeconds"},
		{"long wait", withField("pollWaitSeconds", `61`), "pollWaitSeconds"},
		{"tiny staleness", withField("maxStalenessSeconds", `1`), "maxStalenessSeconds"},
		{"string flush", withField("flushIntervalMillis", `"10"`), "flushIntervalMillis"},
		{"zero queue", withField("queueLimit", `0`), "queueLimit"},
		{"service not a bool", withField("service", `"yes"`), "service"},
		{"differently cased field", strings.Replace(withField("service", ""), `"resource"`, `"Resource"`, 1), "Resource"},
		{"unknown field", strings.Replace(withField("service", ""), "{", `{"mode": "allow", `, 1), "mode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.config))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseConfig(%s) = %v, want a *ConfigError", tc.config, err)
			}
			if ce.Field != tc.field {
				t.Errorf("field %q, want %q (%v)", ce.Field, tc.field, err)
			}
			if tc.field != "" && !strings.Contains(err.Error(), `"`+tc.field+`"`) {
				t.Errorf("%q does not name the field", err)
			}
			if strings.Contains(err.Error(), fxCred.String()[20:]) {
				t.Errorf("%q shows the credential", err)
			}
		})
	}
}

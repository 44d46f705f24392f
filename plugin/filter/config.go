package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/knaight/knaight/shared/policy"
)

// Config is the plugin configuration: the JSON document Envoy hands the filter
// as its plugin configuration bytes, for example
//
//	{"organization": "acme", "environment": "production"}
//
// It names the tenant and the deployment stage whose policy snapshot the
// filter enforces. Obtain it from ParseConfig, which validates it; a Config
// built any other way must not be trusted.
type Config struct {
	// Organization is the slug of the organization the gateway belongs to:
	// 1 to 63 lower-case letters, digits and inner hyphens, as the manager
	// allows.
	Organization string
	// Environment is the deployment stage whose policies apply.
	Environment policy.Environment
}

// ConfigError reports why a plugin configuration was rejected.
type ConfigError struct {
	// Field is the JSON field at fault, or empty when the document as a whole
	// is (empty, not a JSON object, trailing data).
	Field string
	// Problem says what is wrong, in words meant for the operator.
	Problem string
}

// Error implements error. It names the field, so that the critical log the
// filter writes when it refuses to start tells the operator what to fix.
func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "plugin configuration: " + e.Problem
	}
	return fmt.Sprintf("plugin configuration: field %q: %s", e.Field, e.Problem)
}

// Configuration field names, as they appear in the JSON document.
const (
	fieldOrganization = "organization"
	fieldEnvironment  = "environment"
)

// ParseConfig decodes and validates a plugin configuration. Decoding is
// strict, because a misspelt key silently ignored would leave the filter
// running with a configuration the operator did not write: unknown keys,
// keys that differ only in case, repeated keys, values that are not strings,
// trailing data and an empty document are all rejected. Both fields are
// required. Every error is a *ConfigError.
func ParseConfig(data []byte) (Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Config{}, &ConfigError{Problem: `is empty: want a JSON object such as {"organization": "acme", "environment": "production"}`}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Config{}, &ConfigError{Problem: "must be a JSON object"}
	}
	var (
		cfg  Config
		seen = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Config{}, &ConfigError{Problem: "is not valid JSON: " + err.Error()}
		}
		key, _ := tok.(string) // inside an object, the decoder only yields string keys here
		if seen[key] {
			return Config{}, &ConfigError{Field: key, Problem: "appears more than once"}
		}
		seen[key] = true
		var value *string // nil for JSON null, which counts as absent
		switch key {
		case fieldOrganization, fieldEnvironment:
			if err := dec.Decode(&value); err != nil {
				return Config{}, &ConfigError{Field: key, Problem: "must be a string"}
			}
		default:
			hint := ""
			if k := strings.ToLower(key); k == fieldOrganization || k == fieldEnvironment {
				hint = fmt.Sprintf(" (field names are case-sensitive: did you mean %q?)", k)
			}
			return Config{}, &ConfigError{Field: key, Problem: "is not a known field" + hint + "; known fields are organization and environment"}
		}
		if value == nil {
			continue
		}
		switch key {
		case fieldOrganization:
			cfg.Organization = *value
		case fieldEnvironment:
			cfg.Environment = policy.Environment(*value)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Config{}, &ConfigError{Problem: "is not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, &ConfigError{Problem: "has data after the JSON object"}
	}

	if cfg.Organization == "" {
		return Config{}, &ConfigError{Field: fieldOrganization, Problem: "is required"}
	}
	if !validSlug(cfg.Organization) {
		return Config{}, &ConfigError{Field: fieldOrganization, Problem: fmt.Sprintf("%q is not an organization slug: want 1 to 63 lower-case letters, digits or inner hyphens", cfg.Organization)}
	}
	if cfg.Environment == "" {
		return Config{}, &ConfigError{Field: fieldEnvironment, Problem: "is required: want one of development, staging, production"}
	}
	if _, err := policy.ParseEnvironment(string(cfg.Environment)); err != nil {
		return Config{}, &ConfigError{Field: fieldEnvironment, Problem: err.Error()}
	}
	return cfg, nil
}

// validSlug reports whether s matches ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ and is
// at most 63 bytes long: the manager's rule for organization slugs, written
// out by hand to keep regexp out of the WebAssembly binary.
func validSlug(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

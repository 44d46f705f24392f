package filter

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/snapshot"
)

// Config is the plugin configuration: the JSON document Envoy hands the
// filter as its plugin configuration, for example
//
//	{
//	  "organization": "acme",
//	  "environment": "production",
//	  "managerCluster": "knaight_manager",
//	  "managerAuthority": "manager.knaight.internal",
//	  "gatewayCredential": "kngw.<gateway id>.<secret>",
//	  "snapshotKeys": {"snap-1a2b": "<base64 Ed25519 public key>"},
//	  "resource": "https://mcp.example.com/mcp"
//	}
//
// The manager prints a ready one when a gateway is registered. Obtain a
// Config from ParseConfig, which validates it and fills in the defaults; a
// Config built any other way must not be trusted.
type Config struct {
	// Organization is the slug of the organization the gateway belongs to.
	Organization string
	// Environment is the deployment stage whose policies apply.
	Environment policy.Environment
	// ManagerCluster is the Envoy cluster that reaches the manager.
	ManagerCluster string
	// ManagerAuthority is the :authority of calls to the manager.
	ManagerAuthority string
	// Credential is the gateway credential the manager issued.
	Credential snapshot.Credential
	// SnapshotKeys are the manager's snapshot public keys, by key id. More
	// than one lets the manager rotate its key without a gap.
	SnapshotKeys map[string]ed25519.PublicKey
	// Resource is the protected resource identifier (RFC 8707, RFC 9728):
	// the audience gateway tokens must carry, an absolute https (or http)
	// URL without fragment.
	Resource string
	// PollWait is how long one snapshot long poll may be held by the manager.
	PollWait time.Duration
	// FlushInterval is how often buffered decision records are sent.
	FlushInterval time.Duration
	// MaxBodyBytes is the largest request body the filter reads; larger is 413.
	MaxBodyBytes int
	// MaxStaleness is how long the filter keeps enforcing a snapshot after it
	// last heard from the manager; then it fails closed with 503. The
	// snapshot's own limit applies when it is shorter.
	MaxStaleness time.Duration
	// QueueLimit bounds the decision records the poller holds while the
	// manager is unreachable; what overflows is counted and reported as a gap.
	QueueLimit int
	// Service marks the configuration of Envoy's singleton bootstrap
	// service: it always holds the poller lease, so worker VMs never poll.
	Service bool

	// sealKey is derived from Credential once, at start.
	sealKey []byte
	// metadataPaths are the request paths answered with the RFC 9728
	// metadata, and metadataURL is the URL 401 responses point to.
	metadataPaths [2]string
	metadataURL   string
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

// rawConfig is the JSON document. Pointers tell absent from zero.
type rawConfig struct {
	Organization        *string           `json:"organization"`
	Environment         *string           `json:"environment"`
	ManagerCluster      *string           `json:"managerCluster"`
	ManagerAuthority    *string           `json:"managerAuthority"`
	GatewayCredential   *string           `json:"gatewayCredential"`
	SnapshotKeys        map[string]string `json:"snapshotKeys"`
	Resource            *string           `json:"resource"`
	PollWaitSeconds     *int              `json:"pollWaitSeconds"`
	FlushIntervalMillis *int              `json:"flushIntervalMillis"`
	MaxBodyBytes        *int              `json:"maxBodyBytes"`
	MaxStalenessSeconds *int              `json:"maxStalenessSeconds"`
	QueueLimit          *int              `json:"queueLimit"`
	Service             *bool             `json:"service"`
}

// knownFields are rawConfig's JSON names, in documentation order.
var knownFields = []string{
	"organization", "environment", "managerCluster", "managerAuthority", "gatewayCredential",
	"snapshotKeys", "resource", "pollWaitSeconds", "flushIntervalMillis", "maxBodyBytes",
	"maxStalenessSeconds", "queueLimit", "service",
}

// Defaults and bounds of the optional fields.
const (
	defaultPollWait      = 30 * time.Second
	maxPollWait          = 60 * time.Second
	defaultFlush         = time.Second
	defaultMaxBodyBytes  = 1 << 20
	maxMaxBodyBytes      = 64 << 20
	defaultMaxStaleness  = 5 * time.Minute
	defaultQueueLimit    = 10000
	maxQueueLimit        = 1000000
	minStalenessSeconds  = 5
	maxStalenessSeconds  = 7 * 24 * 3600
	minFlushMillis       = 10
	maxFlushMillis       = 60000
	wellKnownResourceDoc = "/.well-known/oauth-protected-resource"
)

// ParseConfig decodes and validates a plugin configuration. Decoding is
// strict, because a misspelt key silently ignored would leave the filter
// running with a configuration the operator did not write: unknown keys,
// keys that differ only in case, repeated keys, values of the wrong type,
// trailing data and an empty document are all rejected. Every error is a
// *ConfigError naming the field.
func ParseConfig(data []byte) (Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Config{}, &ConfigError{Problem: `is empty: want a JSON object such as {"organization": "acme", "environment": "production", ...}`}
	}
	if err := checkKeys(data); err != nil {
		return Config{}, err
	}
	var raw rawConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Config{}, &ConfigError{Field: te.Field, Problem: "must be " + jsonTypeName(te.Type.Kind().String())}
		}
		return Config{}, &ConfigError{Problem: "is not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, &ConfigError{Problem: "has data after the JSON object"}
	}
	return raw.validate()
}

// checkKeys walks the top-level keys: known, exactly cased, and each once.
// encoding/json alone would match keys case-insensitively and keep the last
// of repeated ones.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return &ConfigError{Problem: "must be a JSON object"}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return &ConfigError{Problem: "is not valid JSON: " + err.Error()}
		}
		key, _ := tok.(string)
		if seen[key] {
			return &ConfigError{Field: key, Problem: "appears more than once"}
		}
		seen[key] = true
		if !slices.Contains(knownFields, key) {
			hint := ""
			for _, k := range knownFields {
				if strings.EqualFold(k, key) {
					hint = fmt.Sprintf(" (field names are case-sensitive: did you mean %q?)", k)
				}
			}
			return &ConfigError{Field: key, Problem: "is not a known field" + hint + "; known fields are " + strings.Join(knownFields, ", ")}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return &ConfigError{Field: key, Problem: "is not valid JSON: " + err.Error()}
		}
	}
	if _, err := dec.Token(); err != nil {
		return &ConfigError{Problem: "is not valid JSON: " + err.Error()}
	}
	return nil
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int":
		return "an integer"
	case "bool":
		return "true or false"
	case "map":
		return "an object"
	}
	return "a " + kind
}

func (r rawConfig) validate() (Config, error) {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	c := Config{
		Organization:     str(r.Organization),
		Environment:      policy.Environment(str(r.Environment)),
		ManagerCluster:   str(r.ManagerCluster),
		ManagerAuthority: str(r.ManagerAuthority),
		Resource:         str(r.Resource),
		PollWait:         defaultPollWait,
		FlushInterval:    defaultFlush,
		MaxBodyBytes:     defaultMaxBodyBytes,
		MaxStaleness:     defaultMaxStaleness,
		QueueLimit:       defaultQueueLimit,
		Service:          r.Service != nil && *r.Service,
	}
	if c.Organization == "" {
		return Config{}, &ConfigError{Field: "organization", Problem: "is required"}
	}
	if !validSlug(c.Organization) {
		return Config{}, &ConfigError{Field: "organization", Problem: fmt.Sprintf("%q is not an organization slug: want 1 to 63 lower-case letters, digits or inner hyphens", c.Organization)}
	}
	if c.Environment == "" {
		return Config{}, &ConfigError{Field: "environment", Problem: "is required: want one of development, staging, production"}
	}
	if _, err := policy.ParseEnvironment(string(c.Environment)); err != nil {
		return Config{}, &ConfigError{Field: "environment", Problem: err.Error()}
	}
	if c.ManagerCluster == "" {
		return Config{}, &ConfigError{Field: "managerCluster", Problem: "is required: the Envoy cluster that reaches the manager"}
	}
	if c.ManagerAuthority == "" || strings.ContainsAny(c.ManagerAuthority, "/ \t\r\n") {
		return Config{}, &ConfigError{Field: "managerAuthority", Problem: "is required: the manager's host[:port], without scheme or path"}
	}
	if r.GatewayCredential == nil || *r.GatewayCredential == "" {
		return Config{}, &ConfigError{Field: "gatewayCredential", Problem: "is required: the credential the manager showed when the gateway was registered"}
	}
	cred, err := snapshot.ParseCredential(*r.GatewayCredential)
	if err != nil {
		return Config{}, &ConfigError{Field: "gatewayCredential", Problem: strings.TrimPrefix(err.Error(), snapshot.ErrMalformed.Error()+": ")}
	}
	c.Credential = cred
	if c.sealKey, err = cred.SealKey(); err != nil {
		return Config{}, &ConfigError{Field: "gatewayCredential", Problem: "cannot derive the seal key"}
	}
	if len(r.SnapshotKeys) == 0 {
		return Config{}, &ConfigError{Field: "snapshotKeys", Problem: `is required: an object of key id to the manager's base64 Ed25519 snapshot public key`}
	}
	c.SnapshotKeys = make(map[string]ed25519.PublicKey, len(r.SnapshotKeys))
	for kid, v := range r.SnapshotKeys {
		pub, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(pub) != ed25519.PublicKeySize || kid == "" {
			return Config{}, &ConfigError{Field: "snapshotKeys", Problem: fmt.Sprintf("key %q is not a base64 Ed25519 public key (32 bytes)", kid)}
		}
		c.SnapshotKeys[kid] = ed25519.PublicKey(pub)
	}
	if c.Resource == "" {
		return Config{}, &ConfigError{Field: "resource", Problem: "is required: the protected MCP resource's URL, the audience of gateway tokens"}
	}
	u, err := url.Parse(c.Resource)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.RawQuery != "" || u.User != nil {
		return Config{}, &ConfigError{Field: "resource", Problem: fmt.Sprintf("%q is not an absolute http(s) URL without query, fragment or user info", c.Resource)}
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	c.metadataPaths = [2]string{wellKnownResourceDoc, wellKnownResourceDoc + path}
	c.metadataURL = u.Scheme + "://" + u.Host + wellKnownResourceDoc + path

	intField := func(p *int, field string, lo, hi int, set func(int)) error {
		if p == nil {
			return nil
		}
		if *p < lo || *p > hi {
			return &ConfigError{Field: field, Problem: fmt.Sprintf("%d is outside [%d, %d]", *p, lo, hi)}
		}
		set(*p)
		return nil
	}
	for _, f := range []struct {
		p      *int
		name   string
		lo, hi int
		set    func(int)
	}{
		{r.PollWaitSeconds, "pollWaitSeconds", 0, int(maxPollWait / time.Second), func(v int) { c.PollWait = time.Duration(v) * time.Second }},
		{r.FlushIntervalMillis, "flushIntervalMillis", minFlushMillis, maxFlushMillis, func(v int) { c.FlushInterval = time.Duration(v) * time.Millisecond }},
		{r.MaxBodyBytes, "maxBodyBytes", 1, maxMaxBodyBytes, func(v int) { c.MaxBodyBytes = v }},
		{r.MaxStalenessSeconds, "maxStalenessSeconds", minStalenessSeconds, maxStalenessSeconds, func(v int) { c.MaxStaleness = time.Duration(v) * time.Second }},
		{r.QueueLimit, "queueLimit", 1, maxQueueLimit, func(v int) { c.QueueLimit = v }},
	} {
		if err := intField(f.p, f.name, f.lo, f.hi, f.set); err != nil {
			return Config{}, err
		}
	}
	return c, nil
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

// Package snapshot is contract 1 of the architecture: everything the filter
// needs to decide on a request without calling anyone, as the manager builds
// it from its live state and the filter enforces it.
//
// The manager serves a Snapshot at GET /api/v1/gateway/snapshot inside an
// Envelope: the snapshot's JSON is signed with the manager's Ed25519 snapshot
// key and then sealed (AES-256-GCM) to the one gateway that asked, with a key
// both sides derive from that gateway's credential. The signature proves the
// manager wrote it; the seal keeps the HMAC secrets it carries unreadable to
// anyone who sees the response but is not that gateway. The filter's poller
// opens and verifies an envelope with Open before anything uses it.
package snapshot

import (
	"fmt"
	"time"

	"github.com/knaight/knaight/shared/policy"
)

// Schema names this version of the snapshot document. A filter refuses a
// snapshot with any other schema rather than guess at its meaning.
const Schema = "knaight-snapshot-v1"

// Snapshot is what one gateway enforces: the state of one organization in
// one environment at one version.
type Snapshot struct {
	// Schema is always the Schema constant.
	Schema string `json:"schema"`
	// Version increases with every change to the organization's state that
	// can change a decision; a filter never replaces a snapshot with one of a
	// lower or equal version.
	Version uint64 `json:"version"`
	// Organization is the organization's slug.
	Organization string `json:"organization"`
	// OrganizationID is the organization's id, the "org" claim of its
	// gateway tokens.
	OrganizationID string `json:"organizationId"`
	// Environment is the deployment stage whose policies apply.
	Environment policy.Environment `json:"environment"`
	// IssuedAt is when the manager built the snapshot.
	IssuedAt time.Time `json:"issuedAt"`
	// Issuer is the "iss" every gateway token must carry: the manager's URL.
	Issuer string `json:"issuer"`
	// TokenKeys verify gateway tokens, by kid.
	TokenKeys []TokenKey `json:"tokenKeys"`
	// Revocations are the revoked tokens that have not expired yet. An
	// expired token is refused for its expiry, so it needs no entry.
	Revocations []Revocation `json:"revocations"`
	// Agents are the organization's agents, by ANS name. Only ACTIVE agents
	// carry keys; the others are listed so that a denial can say why.
	Agents []Agent `json:"agents"`
	// Bundle is the active policy bundle of the environment. A snapshot
	// without one (ID empty) denies every request with policy_missing.
	Bundle Bundle `json:"bundle"`
	// Upstream is the key the gateway signs forwarded requests with, so that
	// the upstream MCP server can tell they passed the gateway.
	Upstream UpstreamKey `json:"upstream"`
	// ProtectedResource is served as RFC 9728 metadata.
	ProtectedResource ProtectedResource `json:"protectedResource"`
	// Settings tune the checks.
	Settings Settings `json:"settings"`
}

// Algorithms of token keys.
const (
	AlgEdDSA = "EdDSA"
	AlgHS256 = "HS256"
)

// TokenKey is one gateway-token verification key.
type TokenKey struct {
	// ID is the JWT "kid"; it decides the algorithm.
	ID string `json:"kid"`
	// Algorithm is AlgEdDSA or AlgHS256.
	Algorithm string `json:"alg"`
	// Key is the Ed25519 public key (32 bytes) or the HS256 secret.
	Key []byte `json:"key"`
}

// Revocation is one revoked token.
type Revocation struct {
	// TokenID is the token's "jti".
	TokenID string `json:"jti"`
	// ExpiresAt is the token's "exp"; the entry is useless after it.
	ExpiresAt time.Time `json:"exp"`
}

// ANS statuses a snapshot can carry. Only StatusActive lets a request
// through.
const (
	StatusActive = "ACTIVE"
)

// Agent is one registered agent as the gateway sees it.
type Agent struct {
	// ANSName is the agent's ANS name: the gateway token's subject and the
	// X-Knaight-Agent header must both equal it.
	ANSName string `json:"ansName"`
	// ID is the manager's agent id.
	ID string `json:"id"`
	// Status is the ANS status (ACTIVE, PENDING, SUSPENDED, DEPRECATED,
	// REVOKED, EXPIRED); only ACTIVE agents may call.
	Status string `json:"status"`
	// RoleTemplate names the agent's role template, which selects its policy.
	RoleTemplate string `json:"roleTemplate"`
	// TrustLevel is the agent's stored trust level; only an ACTIVE agent
	// must have one. No level is left out of the JSON, because
	// policy.TrustLevel writes it as "none", which it does not read back.
	TrustLevel policy.TrustLevel `json:"trustLevel,omitzero"`
	// TrustScore is the score the level was derived from, for the record.
	TrustScore float64 `json:"trustScore"`
	// Keys are the agent's live HMAC request-signing keys.
	Keys []HMACKey `json:"keys,omitempty"`
}

// HMACKey is one request-signing key.
type HMACKey struct {
	// ID is the key id the agent sends in X-Knaight-Key-Id.
	ID string `json:"kid"`
	// Secret is the HMAC-SHA256 key.
	Secret []byte `json:"secret"`
	// ExpiresAt is set on a key a rotation retired: it verifies signatures
	// until then and not after, even under a snapshot built before.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// Bundle is the active policy bundle's content for the environment.
type Bundle struct {
	// ID identifies the bundle in the manager.
	ID string `json:"id"`
	// Revision is the bundle's revision, as in its OPA manifest.
	Revision string `json:"revision"`
	// Policies are the bundle's policies for the snapshot's environment.
	Policies []policy.Policy `json:"policies"`
}

// UpstreamKey signs requests the gateway forwards (shared/sign).
type UpstreamKey struct {
	// ID is sent as X-Knaight-Key-Id.
	ID string `json:"kid"`
	// Secret is the HMAC-SHA256 key the upstream verifies with.
	Secret []byte `json:"secret"`
}

// ProtectedResource is the organization's part of the RFC 9728 metadata the
// gateway serves; the gateway adds its own resource identifier.
type ProtectedResource struct {
	// AuthorizationServers are the issuers of gateway tokens.
	AuthorizationServers []string `json:"authorization_servers"`
	// ScopesSupported are the scopes the policies may require.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// ResourceDocumentation is a URL for humans, optional.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
}

// Settings tune the gateway's checks.
type Settings struct {
	// ClockSkewSeconds is how far a request timestamp may be from the
	// gateway's clock.
	ClockSkewSeconds int `json:"clockSkewSeconds"`
	// MaxStalenessSeconds is how long the gateway may enforce this snapshot
	// after it last heard from the manager; after that it fails closed.
	MaxStalenessSeconds int `json:"maxStalenessSeconds"`
}

// ClockSkew returns Settings.ClockSkewSeconds as a duration.
func (s Settings) ClockSkew() time.Duration {
	return time.Duration(s.ClockSkewSeconds) * time.Second
}

// MaxStaleness returns Settings.MaxStalenessSeconds as a duration.
func (s Settings) MaxStaleness() time.Duration {
	return time.Duration(s.MaxStalenessSeconds) * time.Second
}

// Limits on settings; the manager refuses to serve anything outside them and
// the filter refuses to enforce it.
const (
	MinClockSkewSeconds    = 1
	MaxClockSkewSeconds    = 3600
	MinMaxStalenessSeconds = 5
	MaxMaxStalenessSeconds = 7 * 24 * 3600
)

// Validate checks everything a filter relies on: the schema, the scope
// (organization, environment), that keys are well formed and unique, that
// agents are unique by ANS name, that the policies compile, and the settings
// ranges. A snapshot that fails is never enforced.
func (s *Snapshot) Validate() error {
	if s.Schema != Schema {
		return fmt.Errorf("snapshot: schema %q, want %q", s.Schema, Schema)
	}
	if s.Version == 0 {
		return fmt.Errorf("snapshot: version is 0")
	}
	if s.Organization == "" || s.OrganizationID == "" {
		return fmt.Errorf("snapshot: organization or organizationId is empty")
	}
	if _, err := policy.ParseEnvironment(string(s.Environment)); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if s.Issuer == "" {
		return fmt.Errorf("snapshot: issuer is empty")
	}
	kids := make(map[string]bool, len(s.TokenKeys))
	for i, k := range s.TokenKeys {
		if k.ID == "" || kids[k.ID] {
			return fmt.Errorf("snapshot: tokenKeys[%d]: kid %q is empty or repeated", i, k.ID)
		}
		kids[k.ID] = true
		switch {
		case k.Algorithm == AlgEdDSA && len(k.Key) == 32:
		case k.Algorithm == AlgHS256 && len(k.Key) >= 32:
		default:
			return fmt.Errorf("snapshot: tokenKeys[%d]: %s key of %d bytes", i, k.Algorithm, len(k.Key))
		}
	}
	for i, r := range s.Revocations {
		if r.TokenID == "" {
			return fmt.Errorf("snapshot: revocations[%d]: jti is empty", i)
		}
	}
	names := make(map[string]bool, len(s.Agents))
	for i, a := range s.Agents {
		if a.ANSName == "" || names[a.ANSName] {
			return fmt.Errorf("snapshot: agents[%d]: ANS name %q is empty or repeated", i, a.ANSName)
		}
		names[a.ANSName] = true
		if a.Status == "" {
			return fmt.Errorf("snapshot: agents[%d]: status is empty", i)
		}
		if (a.Status == StatusActive || a.TrustLevel != policy.LevelNone) && !a.TrustLevel.Valid() {
			return fmt.Errorf("snapshot: agents[%d]: trust level %q", i, a.TrustLevel)
		}
		hk := make(map[string]bool, len(a.Keys))
		for j, k := range a.Keys {
			if k.ID == "" || hk[k.ID] || len(k.Secret) < 16 {
				return fmt.Errorf("snapshot: agents[%d].keys[%d]: kid %q repeated or empty, or secret shorter than 16 bytes", i, j, k.ID)
			}
			hk[k.ID] = true
		}
	}
	if s.Bundle.ID == "" && len(s.Bundle.Policies) > 0 {
		return fmt.Errorf("snapshot: bundle has policies but no id")
	}
	for i, p := range s.Bundle.Policies {
		if p.Environment != s.Environment {
			return fmt.Errorf("snapshot: bundle.policies[%d]: environment %q, the snapshot is for %q", i, p.Environment, s.Environment)
		}
	}
	if _, err := policy.Compile(s.Bundle.Policies); err != nil {
		return fmt.Errorf("snapshot: bundle: %w", err)
	}
	if s.Upstream.ID == "" || len(s.Upstream.Secret) < 32 {
		return fmt.Errorf("snapshot: upstream key missing or shorter than 32 bytes")
	}
	if len(s.ProtectedResource.AuthorizationServers) == 0 {
		return fmt.Errorf("snapshot: protectedResource.authorization_servers is empty")
	}
	if v := s.Settings.ClockSkewSeconds; v < MinClockSkewSeconds || v > MaxClockSkewSeconds {
		return fmt.Errorf("snapshot: settings.clockSkewSeconds %d outside [%d, %d]", v, MinClockSkewSeconds, MaxClockSkewSeconds)
	}
	if v := s.Settings.MaxStalenessSeconds; v < MinMaxStalenessSeconds || v > MaxMaxStalenessSeconds {
		return fmt.Errorf("snapshot: settings.maxStalenessSeconds %d outside [%d, %d]", v, MinMaxStalenessSeconds, MaxMaxStalenessSeconds)
	}
	return nil
}

// Decode parses and validates a snapshot's JSON. Unknown fields are
// rejected: a field this filter does not understand may carry a rule it
// would otherwise not enforce.
func Decode(data []byte) (*Snapshot, error) {
	var s Snapshot
	if err := decodeStrict(data, &s); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

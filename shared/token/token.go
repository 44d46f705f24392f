package token

import (
	"crypto/ed25519"
	"strings"
	"time"
)

// Algorithm is a JWS "alg" a gateway token may be signed with.
type Algorithm string

// The algorithms of gateway tokens. EdDSA (Ed25519) is the default; HS256
// is kept for deployments that only speak shared-secret JWTs.
const (
	EdDSA Algorithm = "EdDSA"
	HS256 Algorithm = "HS256"
)

// TokenType is the "typ" header of gateway tokens (RFC 9068). Verify also
// accepts "application/at+jwt", in any case, as the manager does.
const TokenType = "at+jwt"

// MaxSize bounds a token's length in bytes. The manager's tokens are well
// under 1 KiB; anything past this is refused before any decoding.
const MaxSize = 8 << 10

// MinSecretSize is the shortest HS256 secret Verify uses (RFC 7518 §3.2: a
// key at least as long as the hash). The manager's secrets are 32 bytes.
const MinSecretSize = 32

// Key is one verification key of the snapshot.
type Key struct {
	// ID is the kid tokens name the key by; Keys must return a Key whose
	// ID is the kid it was asked for.
	ID string
	// Algorithm is the only algorithm the key verifies.
	Algorithm Algorithm
	// Public is the Ed25519 public key, for EdDSA.
	Public ed25519.PublicKey
	// Secret is the shared secret, for HS256.
	Secret []byte
}

// Keys looks up verification keys by kid. The filter backs it with the
// snapshot's keys; an implementation must be safe for concurrent use if
// Verify is called concurrently.
type Keys interface {
	Key(kid string) (Key, bool)
}

// KeyMap is a Keys held in a map from kid to key.
type KeyMap map[string]Key

// Key returns the key named kid.
func (m KeyMap) Key(kid string) (Key, bool) {
	k, ok := m[kid]
	return k, ok
}

// Expect is what a token must match besides its signature.
type Expect struct {
	// Issuer is the manager's public URL, the tokens' "iss".
	Issuer string
	// Audience is the protected MCP resource (RFC 8707) the gateway
	// guards; "aud" must contain it.
	Audience string
	// Organization, when not empty, is the organization of the snapshot,
	// and "org" must be it, as the manager requires "org" to be the
	// organization of the signing key. A snapshot holds only its
	// organization's keys, so this is defence in depth against a key that
	// strayed into the wrong snapshot; gateways should set it.
	Organization string
	// Now is the verification time; zero means time.Now().
	Now time.Time
	// Leeway tolerates clock skew on exp, nbf and iat. The manager allows
	// none; negative counts as zero.
	Leeway time.Duration
}

// Claims are the claims of a verified gateway token (contract 4). Absent
// optional claims are zero.
type Claims struct {
	// Issuer is "iss", the manager's URL.
	Issuer string
	// Subject is "sub", the agent's ANS name; always equal to ANSName.
	Subject string
	// Audience is "aud", the MCP resources the token is for.
	Audience []string
	// ExpiresAt, NotBefore and IssuedAt are "exp", "nbf" and "iat", in UTC
	// and whole seconds; NotBefore and IssuedAt are zero when absent.
	ExpiresAt, NotBefore, IssuedAt time.Time
	// ID is "jti", the token id the snapshot's revocations list.
	ID string
	// Organization is "org", the organization's id.
	Organization string
	// AgentID is "agent_id", the agent's id in the manager.
	AgentID string
	// ANSName is "ans", the agent's ANS name.
	ANSName string
	// LoA is "loa", the level of assurance (1 to 4 when the manager issued
	// the token; 0 when absent).
	LoA int
	// Scope is "scope", space-separated scope tokens; see Scopes and
	// HasScope.
	Scope string
	// ClientID is "client_id", the OAuth client the token was issued to,
	// if any.
	ClientID string
	// Artifact is "artifact", what the token was issued for, if anything.
	Artifact *Artifact
}

// Artifact is what a token was issued for.
type Artifact struct {
	ID   string
	Type string
}

// Scopes returns the scope tokens of Scope, split at spaces; empty tokens
// are dropped.
func (c Claims) Scopes() []string {
	return strings.FieldsFunc(c.Scope, func(r rune) bool { return r == ' ' })
}

// HasScope reports whether s is one of the token's scopes, without
// allocating. The empty string is never a scope.
func (c Claims) HasScope(s string) bool {
	if s == "" {
		return false
	}
	rest := c.Scope
	for rest != "" {
		var tok string
		tok, rest, _ = strings.Cut(rest, " ")
		if tok == s {
			return true
		}
	}
	return false
}

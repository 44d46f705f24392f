// Package auth authenticates the manager's administrators. Each API key
// belongs to one organization and carries one role; the key's secret is
// shown once at creation and only its SHA-256 is stored (the secret is 256
// random bits, so a fast hash is enough). Every request's principal carries
// its organization, and every service scopes its queries by it.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
)

// Role is what an API key may do.
type Role string

// The three roles. Admin may do everything; operator manages agents,
// signals, role templates and policies; auditor reads everything, the
// ledger included, and writes nothing.
const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleAuditor  Role = "auditor"
)

// Roles lists the valid roles.
func Roles() []string { return []string{string(RoleAdmin), string(RoleOperator), string(RoleAuditor)} }

// Permission is what an operation requires.
type Permission int

// Permissions, from least to most privileged.
const (
	// Read covers reading configuration and agents.
	Read Permission = iota
	// ReadLedger covers the audit ledger.
	ReadLedger
	// Operate covers writing agents, signals, role templates and policies.
	Operate
	// Administer covers API keys, trust sources and thresholds.
	Administer
)

// Allows reports whether r grants p.
func (r Role) Allows(p Permission) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleOperator:
		return p == Read || p == Operate
	case RoleAuditor:
		return p == Read || p == ReadLedger
	}
	return false
}

// Principal is an authenticated caller.
type Principal struct {
	KeyID          string
	OrganizationID uuid.UUID
	Role           Role
}

// Actor is how the ledger names this principal.
func (p Principal) Actor() string { return "apikey:" + p.KeyID }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal. Handlers behind the
// authentication middleware always have one.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// tokenPrefix marks Knaight admin keys so secret scanners can find leaks.
const tokenPrefix = "knk_"

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newToken returns a key id and the full token "knk_<id>_<secret>".
func newToken() (id, token string) {
	var raw [10]byte
	rand.Read(raw[:])
	id = strings.ToLower(idEncoding.EncodeToString(raw[:]))
	var secret [32]byte
	rand.Read(secret[:])
	return id, tokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// parseToken splits a token into its id; the whole token is what is hashed.
func parseToken(token string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	return id, ok && len(id) == 16 && len(secret) == 43
}

// Key is an API key's stored metadata; the secret is never part of it.
type Key struct {
	ID             string     `json:"id"`
	OrganizationID uuid.UUID  `json:"organizationId"`
	Name           string     `json:"name"`
	Role           Role       `json:"role"`
	CreatedBy      string     `json:"createdBy"`
	CreatedAt      time.Time  `json:"createdAt"`
	RevokedAt      *time.Time `json:"revokedAt,omitempty"`
}

// CreateKey stores a new key in tx, records API_KEY_CREATED, and returns the
// key with its token. The token exists only in this return value.
func CreateKey(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, name string, role Role, actor string, now time.Time) (Key, string, error) {
	id, token := newToken()
	k := Key{ID: id, OrganizationID: orgID, Name: name, Role: role, CreatedBy: actor, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (id, organization_id, name, role, secret_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, orgID, name, string(role), hashToken(token), actor, k.CreatedAt)
	if err != nil {
		return Key{}, "", fmt.Errorf("create api key: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{
		OrganizationID: orgID, Type: "API_KEY_CREATED", Actor: actor, SubjectType: "api_key", SubjectID: id,
		Details: map[string]any{"name": name, "role": role},
	}, now)
	return k, token, err
}

// RevokeKey revokes a key of the organization and records API_KEY_REVOKED.
func RevokeKey(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, id, actor string, now time.Time) (Key, error) {
	row, err := tx.Query(ctx, `UPDATE api_keys SET revoked_at = $3 WHERE organization_id = $1 AND id = $2 AND revoked_at IS NULL
		RETURNING id, organization_id, name, role, created_by, created_at, revoked_at`, orgID, id, now)
	if err != nil {
		return Key{}, fmt.Errorf("revoke api key: %w", err)
	}
	k, err := pgx.CollectExactlyOneRow(row, scanKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, fmt.Errorf("api key %s: %w", id, fault.ErrNotFound)
	}
	if err != nil {
		return Key{}, fmt.Errorf("revoke api key: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{
		OrganizationID: orgID, Type: "API_KEY_REVOKED", Actor: actor, SubjectType: "api_key", SubjectID: id,
		Details: map[string]any{"name": k.Name, "role": k.Role},
	}, now)
	return k, err
}

func scanKey(row pgx.CollectableRow) (Key, error) {
	var k Key
	err := row.Scan(&k.ID, &k.OrganizationID, &k.Name, &k.Role, &k.CreatedBy, &k.CreatedAt, &k.RevokedAt)
	return k, err
}

// ListKeys returns the organization's keys, newest first.
func ListKeys(ctx context.Context, q db.Querier, orgID uuid.UUID) ([]Key, error) {
	rows, err := q.Query(ctx, `SELECT id, organization_id, name, role, created_by, created_at, revoked_at FROM api_keys
		WHERE organization_id = $1 ORDER BY created_at DESC, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return pgx.CollectRows(rows, scanKey)
}

// Authenticate resolves a bearer token to its principal. Every failure is
// fault.ErrUnauthenticated, whichever part was wrong.
func Authenticate(ctx context.Context, q db.Querier, token string) (Principal, error) {
	id, ok := parseToken(token)
	if !ok {
		return Principal{}, fault.ErrUnauthenticated
	}
	var p Principal
	var stored []byte
	var revoked *time.Time
	err := q.QueryRow(ctx, `SELECT id, organization_id, role, secret_hash, revoked_at FROM api_keys WHERE id = $1`, id).
		Scan(&p.KeyID, &p.OrganizationID, &p.Role, &stored, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, fault.ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, hashToken(token)) != 1 || revoked != nil {
		return Principal{}, fault.ErrUnauthenticated
	}
	return p, nil
}

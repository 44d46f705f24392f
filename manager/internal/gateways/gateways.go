// Package gateways registers the gateways (the Envoy filters) of an
// organization's environments and holds the keys they depend on: each
// gateway's credential, with which it authenticates its snapshot polls and
// decision reports and from which the key its snapshots are sealed with is
// derived; the organization's Ed25519 snapshot signing keys; and the HMAC
// keys gateways sign forwarded requests with, one per environment. Secrets
// are shown once, stored hashed or sealed with the KEK, and never logged or
// written to the ledger.
package gateways

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/seal"
	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/snapshot"
)

// ErrNotConfigured means the organization's environment lacks a key a
// snapshot needs (a snapshot signing key or an upstream key): registering a
// gateway creates both, so it means none was registered there. Callers
// answer 503 until one is.
var ErrNotConfigured = errors.New("gateway keys not configured")

// DefaultSnapshotKeyOverlap is how long a rotated-out snapshot signing key
// stays listed.
const DefaultSnapshotKeyOverlap = 7 * 24 * time.Hour

// lastSeenGranularity bounds how often a gateway's last_seen_at is written.
const lastSeenGranularity = time.Minute

// Service manages gateways and their keys.
type Service struct {
	Sealer *seal.Sealer
	// SnapshotKeyOverlap is how long a rotated-out snapshot key stays
	// listed; 0 means DefaultSnapshotKeyOverlap.
	SnapshotKeyOverlap time.Duration
}

// Gateway is a registered gateway, without its credential.
type Gateway struct {
	ID                  uuid.UUID          `json:"id"`
	OrganizationID      uuid.UUID          `json:"organizationId"`
	Name                string             `json:"name"`
	Environment         policy.Environment `json:"environment" enum:"development,staging,production"`
	CreatedAt           time.Time          `json:"createdAt"`
	CredentialRotatedAt *time.Time         `json:"credentialRotatedAt,omitempty"`
	RevokedAt           *time.Time         `json:"revokedAt,omitempty"`
	LastSeenAt          *time.Time         `json:"lastSeenAt,omitempty" doc:"When the gateway last authenticated, to the minute."`
}

// Actor is how the ledger names a gateway.
func (g Gateway) Actor() string { return "gateway:" + g.ID.String() }

// NewGateway describes a gateway to register.
type NewGateway struct {
	Name        string             `json:"name" minLength:"1" maxLength:"100" doc:"Unique among the organization's live gateways; letters, digits, spaces, '.', '_' and '-'."`
	Environment policy.Environment `json:"environment" enum:"development,staging,production" doc:"The environment whose snapshot the gateway enforces."`
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$`)

// Validate reports every invalid field.
func (n NewGateway) Validate() error {
	var inv fault.Invalid
	if !nameRe.MatchString(n.Name) {
		inv.Add("name", "must be 1 to 100 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit", n.Name)
	}
	if !n.Environment.Valid() {
		inv.Add("environment", "must be development, staging or production", n.Environment)
	}
	return inv.Err()
}

// Registered is a new gateway with its credential, which exists only here,
// and the keys its configuration needs.
type Registered struct {
	Gateway
	Credential   string
	SnapshotKeys []SnapshotKey
	// UpstreamKey is set when the registration created the environment's
	// upstream key; it carries the secret, shown this once.
	UpstreamKey *NewUpstreamKey
}

func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func sealAAD(org, id uuid.UUID) []byte {
	return []byte("gateway-seal-key\x00" + org.String() + "\x00" + id.String())
}

func secretHash(secret []byte) []byte {
	h := sha256.Sum256(secret)
	return h[:]
}

// newCredential makes a credential for gateway id: its text, the hash of its
// secret, and its seal key sealed for the row.
func (s Service) newCredential(org, id uuid.UUID) (text string, hash, sealedKey []byte, err error) {
	cred := snapshot.Credential{GatewayID: id.String(), Secret: make([]byte, 32)}
	rand.Read(cred.Secret)
	key, err := cred.SealKey()
	if err != nil {
		return "", nil, nil, fmt.Errorf("derive seal key: %w", err)
	}
	return cred.String(), secretHash(cred.Secret), s.Sealer.Seal(key, sealAAD(org, id)), nil
}

// Register stores a gateway, creates the organization's snapshot signing
// key and the environment's upstream key if they do not exist yet, and
// records GATEWAY_REGISTERED, all in tx. A live gateway of the same name is
// a conflict.
func (s Service) Register(ctx context.Context, tx pgx.Tx, org uuid.UUID, in NewGateway, actor string, now time.Time) (Registered, error) {
	if err := in.Validate(); err != nil {
		return Registered{}, err
	}
	// Every key created below is created once per organization: the chain
	// lock serialises registrations, and is taken first as by every writer.
	if _, _, err := ledger.LockChain(ctx, tx, org); err != nil {
		return Registered{}, err
	}
	g := Gateway{ID: uuid.New(), OrganizationID: org, Name: in.Name, Environment: in.Environment, CreatedAt: stamp(now)}
	text, hash, sealed, err := s.newCredential(org, g.ID)
	if err != nil {
		return Registered{}, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO gateways (id, organization_id, environment, name, credential_hash, seal_key_sealed, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, g.ID, org, g.Environment, g.Name, hash, sealed, g.CreatedAt)
	if db.IsUniqueViolation(err, "gateways_name") {
		return Registered{}, fmt.Errorf("a gateway named %q exists: %w", in.Name, fault.ErrConflict)
	}
	if err != nil {
		return Registered{}, fmt.Errorf("register gateway: %w", err)
	}
	r := Registered{Gateway: g, Credential: text}
	if _, err := s.ensureSnapshotKey(ctx, tx, org, actor, now); err != nil {
		return Registered{}, err
	}
	if r.SnapshotKeys, err = s.SnapshotKeys(ctx, tx, org, now); err != nil {
		return Registered{}, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM upstream_keys WHERE organization_id = $1 AND environment = $2 AND retired_at IS NULL)`,
		org, g.Environment).Scan(&exists); err != nil {
		return Registered{}, fmt.Errorf("find upstream key: %w", err)
	}
	if !exists {
		k, err := s.SetUpstreamKey(ctx, tx, org, g.Environment, actor, now)
		if err != nil {
			return Registered{}, err
		}
		r.UpstreamKey = &k
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "GATEWAY_REGISTERED", Actor: actor, SubjectType: "gateway", SubjectID: g.ID.String(),
		Details: map[string]any{"name": g.Name, "environment": g.Environment}}, now)
	return r, err
}

const selectGateway = `SELECT id, organization_id, name, environment, created_at, credential_rotated_at, revoked_at, last_seen_at FROM gateways`

func scanGateway(row pgx.CollectableRow) (Gateway, error) {
	var g Gateway
	err := row.Scan(&g.ID, &g.OrganizationID, &g.Name, &g.Environment, &g.CreatedAt, &g.CredentialRotatedAt, &g.RevokedAt, &g.LastSeenAt)
	g.CreatedAt = g.CreatedAt.UTC()
	for _, t := range []*time.Time{g.CredentialRotatedAt, g.RevokedAt, g.LastSeenAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return g, err
}

// Get returns one of the organization's gateways.
func Get(ctx context.Context, q db.Querier, org, id uuid.UUID) (Gateway, error) {
	rows, err := q.Query(ctx, selectGateway+` WHERE organization_id = $1 AND id = $2`, org, id)
	if err != nil {
		return Gateway{}, fmt.Errorf("get gateway: %w", err)
	}
	g, err := pgx.CollectExactlyOneRow(rows, scanGateway)
	if errors.Is(err, pgx.ErrNoRows) {
		return g, fmt.Errorf("gateway %s: %w", id, fault.ErrNotFound)
	}
	return g, err
}

// List returns the organization's gateways, revoked ones included, newest
// first.
func List(ctx context.Context, q db.Querier, org uuid.UUID) ([]Gateway, error) {
	rows, err := q.Query(ctx, selectGateway+` WHERE organization_id = $1 ORDER BY created_at DESC, id`, org)
	if err != nil {
		return nil, fmt.Errorf("list gateways: %w", err)
	}
	return pgx.CollectRows(rows, scanGateway)
}

// lockLive returns a live gateway locked for update; a revoked one is a
// conflict. FOR NO KEY UPDATE, not FOR UPDATE: revoking or rotating never
// changes the row's key, and FOR UPDATE would also wait for the key-share
// lock a decision batch from the gateway holds (the foreign key of its
// records) while that batch waits for the ledger head this transaction
// takes next: a deadlock PostgreSQL breaks by failing one of them.
func lockLive(ctx context.Context, tx pgx.Tx, org, id uuid.UUID) (Gateway, error) {
	rows, err := tx.Query(ctx, selectGateway+` WHERE organization_id = $1 AND id = $2 FOR NO KEY UPDATE`, org, id)
	if err != nil {
		return Gateway{}, fmt.Errorf("lock gateway: %w", err)
	}
	g, err := pgx.CollectExactlyOneRow(rows, scanGateway)
	if errors.Is(err, pgx.ErrNoRows) {
		return g, fmt.Errorf("gateway %s: %w", id, fault.ErrNotFound)
	}
	if err != nil {
		return g, err
	}
	if g.RevokedAt != nil {
		return g, fmt.Errorf("gateway %s is revoked: %w", id, fault.ErrConflict)
	}
	return g, nil
}

// Revoke revokes a gateway's credential for good and records
// GATEWAY_REVOKED. Revoking a revoked gateway is a conflict.
func Revoke(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, actor string, now time.Time) (Gateway, error) {
	g, err := lockLive(ctx, tx, org, id)
	if err != nil {
		return g, err
	}
	t := stamp(now)
	g.RevokedAt = &t
	if _, err := tx.Exec(ctx, `UPDATE gateways SET revoked_at = $3 WHERE organization_id = $1 AND id = $2`, org, id, t); err != nil {
		return g, fmt.Errorf("revoke gateway: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "GATEWAY_REVOKED", Actor: actor, SubjectType: "gateway", SubjectID: id.String(),
		Details: map[string]any{"name": g.Name, "environment": g.Environment}}, now)
	return g, err
}

// RotateCredential replaces a live gateway's credential (the old one stops
// working at once) and records GATEWAY_CREDENTIAL_ROTATED. The new
// credential exists only in the result.
func (s Service) RotateCredential(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, actor string, now time.Time) (Gateway, string, error) {
	g, err := lockLive(ctx, tx, org, id)
	if err != nil {
		return g, "", err
	}
	text, hash, sealed, err := s.newCredential(org, id)
	if err != nil {
		return g, "", err
	}
	t := stamp(now)
	g.CredentialRotatedAt = &t
	if _, err := tx.Exec(ctx, `UPDATE gateways SET credential_hash = $3, seal_key_sealed = $4, credential_rotated_at = $5 WHERE organization_id = $1 AND id = $2`,
		org, id, hash, sealed, t); err != nil {
		return g, "", fmt.Errorf("rotate gateway credential: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "GATEWAY_CREDENTIAL_ROTATED", Actor: actor, SubjectType: "gateway", SubjectID: id.String(),
		Details: map[string]any{"name": g.Name, "environment": g.Environment}}, now)
	return g, text, err
}

// Authenticated is a gateway that proved its credential.
type Authenticated struct {
	Gateway
	// OrganizationSlug is the organization's slug, as decision records and
	// snapshots name it.
	OrganizationSlug string
	// SealKey seals the gateway's snapshots.
	SealKey []byte
}

// IsCredential reports whether token has the form of a gateway credential,
// so that a caller can tell a misplaced API key from a bad credential.
func IsCredential(token string) bool { return strings.HasPrefix(token, snapshot.CredentialPrefix) }

// Authenticate resolves a gateway credential. Every failure (malformed,
// unknown, wrong secret, revoked) is fault.ErrUnauthenticated; the secret
// is compared by its hash in constant time.
func (s Service) Authenticate(ctx context.Context, q db.Querier, credential string, now time.Time) (Authenticated, error) {
	cred, err := snapshot.ParseCredential(credential)
	if err != nil {
		return Authenticated{}, fault.ErrUnauthenticated
	}
	id, err := uuid.Parse(cred.GatewayID)
	if err != nil || id.String() != cred.GatewayID {
		return Authenticated{}, fault.ErrUnauthenticated
	}
	var a Authenticated
	var hash, sealed []byte
	err = q.QueryRow(ctx, `SELECT g.id, g.organization_id, g.name, g.environment, g.created_at, g.credential_rotated_at, g.revoked_at, g.last_seen_at,
		g.credential_hash, g.seal_key_sealed, o.slug FROM gateways g JOIN organizations o ON o.id = g.organization_id WHERE g.id = $1`, id).
		Scan(&a.ID, &a.OrganizationID, &a.Name, &a.Environment, &a.CreatedAt, &a.CredentialRotatedAt, &a.RevokedAt, &a.LastSeenAt, &hash, &sealed, &a.OrganizationSlug)
	if errors.Is(err, pgx.ErrNoRows) {
		return Authenticated{}, fault.ErrUnauthenticated
	}
	if err != nil {
		return Authenticated{}, fmt.Errorf("authenticate gateway: %w", err)
	}
	if subtle.ConstantTimeCompare(hash, secretHash(cred.Secret)) != 1 || a.RevokedAt != nil {
		return Authenticated{}, fault.ErrUnauthenticated
	}
	if a.SealKey, err = s.Sealer.Open(sealed, sealAAD(a.OrganizationID, a.ID)); err != nil {
		return Authenticated{}, fmt.Errorf("open seal key of gateway %s: %w", a.ID, err)
	}
	if a.LastSeenAt == nil || now.Sub(*a.LastSeenAt) >= lastSeenGranularity {
		t := stamp(now)
		if _, err := q.Exec(ctx, `UPDATE gateways SET last_seen_at = $2 WHERE id = $1`, a.ID, t); err != nil {
			return Authenticated{}, fmt.Errorf("record gateway seen: %w", err)
		}
		a.LastSeenAt = &t
	}
	return a, nil
}

var kidEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newKID(prefix string) string {
	var b [10]byte
	rand.Read(b[:])
	return prefix + strings.ToLower(kidEncoding.EncodeToString(b[:]))
}

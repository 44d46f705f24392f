package gateways

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/shared/policy"
)

// SnapshotKey is a snapshot signing public key, as gateways are configured
// with it.
type SnapshotKey struct {
	KID       string     `json:"kid" doc:"The envelope's keyId; the key of snapshotKeys in the plugin configuration."`
	Algorithm string     `json:"algorithm" example:"Ed25519"`
	PublicKey []byte     `json:"publicKey" doc:"The Ed25519 public key (32 bytes), base64."`
	CreatedAt time.Time  `json:"createdAt"`
	RetiredAt *time.Time `json:"retiredAt,omitempty" doc:"Set when a rotation replaced the key: snapshots are no longer signed with it, and it stays listed for an overlap."`
	Active    bool       `json:"active" doc:"Whether snapshots are signed with this key now."`
}

func snapshotKeyAAD(org uuid.UUID, kid string) []byte {
	return []byte("snapshot-signing-key\x00" + org.String() + "\x00" + kid)
}

func (s Service) overlap() time.Duration {
	if s.SnapshotKeyOverlap > 0 {
		return s.SnapshotKeyOverlap
	}
	return DefaultSnapshotKeyOverlap
}

// createSnapshotKey generates and stores a new active key; the caller holds
// the chain lock and retired the previous key.
func (s Service) createSnapshotKey(ctx context.Context, tx pgx.Tx, org uuid.UUID, now time.Time) (SnapshotKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SnapshotKey{}, err
	}
	k := SnapshotKey{KID: newKID("snap_"), Algorithm: "Ed25519", PublicKey: pub, CreatedAt: stamp(now), Active: true}
	_, err = tx.Exec(ctx, `INSERT INTO snapshot_signing_keys (kid, organization_id, public_key, private_sealed, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.KID, org, []byte(pub), s.Sealer.Seal(priv.Seed(), snapshotKeyAAD(org, k.KID)), k.CreatedAt)
	if err != nil {
		return SnapshotKey{}, fmt.Errorf("store snapshot signing key: %w", err)
	}
	return k, nil
}

// ensureSnapshotKey creates the organization's first snapshot signing key
// (recording SNAPSHOT_KEY_CREATED) unless it has an active one.
func (s Service) ensureSnapshotKey(ctx context.Context, tx pgx.Tx, org uuid.UUID, actor string, now time.Time) (bool, error) {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM snapshot_signing_keys WHERE organization_id = $1 AND retired_at IS NULL)`, org).Scan(&exists); err != nil {
		return false, fmt.Errorf("find snapshot signing key: %w", err)
	}
	if exists {
		return false, nil
	}
	k, err := s.createSnapshotKey(ctx, tx, org, now)
	if err != nil {
		return false, err
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "SNAPSHOT_KEY_CREATED", Actor: actor, SubjectType: "snapshot_signing_key", SubjectID: k.KID,
		Details: map[string]any{"kid": k.KID, "algorithm": k.Algorithm}}, now)
	return true, err
}

// SnapshotKeys returns the organization's snapshot signing keys a gateway
// should be configured with: the active one, and those retired less than
// the overlap ago, newest first.
func (s Service) SnapshotKeys(ctx context.Context, q db.Querier, org uuid.UUID, now time.Time) ([]SnapshotKey, error) {
	rows, err := q.Query(ctx, `SELECT kid, public_key, created_at, retired_at FROM snapshot_signing_keys
		WHERE organization_id = $1 AND (retired_at IS NULL OR retired_at > $2) ORDER BY created_at DESC, kid`, org, now.Add(-s.overlap()))
	if err != nil {
		return nil, fmt.Errorf("list snapshot signing keys: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (SnapshotKey, error) {
		var k SnapshotKey
		err := row.Scan(&k.KID, &k.PublicKey, &k.CreatedAt, &k.RetiredAt)
		k.Algorithm, k.CreatedAt, k.Active = "Ed25519", k.CreatedAt.UTC(), k.RetiredAt == nil
		return k, err
	})
}

// EnsureSnapshotKeys is SnapshotKeys after creating the organization's
// first key if it has none.
func (s Service) EnsureSnapshotKeys(ctx context.Context, tx pgx.Tx, org uuid.UUID, actor string, now time.Time) ([]SnapshotKey, error) {
	if _, _, err := ledger.LockChain(ctx, tx, org); err != nil {
		return nil, err
	}
	if _, err := s.ensureSnapshotKey(ctx, tx, org, actor, now); err != nil {
		return nil, err
	}
	return s.SnapshotKeys(ctx, tx, org, now)
}

// RotateSnapshotKey retires the active snapshot signing key, creates its
// successor and records SNAPSHOT_KEY_ROTATED. Snapshots are signed with
// the new key at once; the old one stays listed for the overlap. It
// returns the keys now listed.
func (s Service) RotateSnapshotKey(ctx context.Context, tx pgx.Tx, org uuid.UUID, actor string, now time.Time) ([]SnapshotKey, error) {
	if _, _, err := ledger.LockChain(ctx, tx, org); err != nil {
		return nil, err
	}
	var retired *string
	err := tx.QueryRow(ctx, `UPDATE snapshot_signing_keys SET retired_at = $2 WHERE organization_id = $1 AND retired_at IS NULL RETURNING kid`,
		org, stamp(now)).Scan(&retired)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("retire snapshot signing key: %w", err)
	}
	k, err := s.createSnapshotKey(ctx, tx, org, now)
	if err != nil {
		return nil, err
	}
	details := map[string]any{"kid": k.KID, "algorithm": k.Algorithm}
	if retired != nil {
		details["retired"] = *retired
	}
	if _, err := ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "SNAPSHOT_KEY_ROTATED", Actor: actor, SubjectType: "snapshot_signing_key", SubjectID: k.KID,
		Details: details}, now); err != nil {
		return nil, err
	}
	return s.SnapshotKeys(ctx, tx, org, now)
}

// SnapshotSigner returns the organization's active snapshot signing key,
// opened; none is ErrNotConfigured.
func (s Service) SnapshotSigner(ctx context.Context, q db.Querier, org uuid.UUID) (string, ed25519.PrivateKey, error) {
	var kid string
	var sealed []byte
	err := q.QueryRow(ctx, `SELECT kid, private_sealed FROM snapshot_signing_keys WHERE organization_id = $1 AND retired_at IS NULL`, org).Scan(&kid, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, fmt.Errorf("no snapshot signing key: %w", ErrNotConfigured)
	}
	if err != nil {
		return "", nil, fmt.Errorf("load snapshot signing key: %w", err)
	}
	seed, err := s.Sealer.Open(sealed, snapshotKeyAAD(org, kid))
	if err != nil {
		return "", nil, fmt.Errorf("open snapshot signing key %s: %w", kid, err)
	}
	return kid, ed25519.NewKeyFromSeed(seed), nil
}

// UpstreamKey describes an upstream signing key without its secret.
type UpstreamKey struct {
	KID         string             `json:"kid" doc:"Sent by the gateway as X-Knaight-Key-Id on forwarded requests."`
	Environment policy.Environment `json:"environment" enum:"development,staging,production"`
	Algorithm   string             `json:"algorithm" example:"hmac-sha256"`
	CreatedAt   time.Time          `json:"createdAt"`
	RetiredAt   *time.Time         `json:"retiredAt,omitempty"`
	Active      bool               `json:"active" doc:"Whether gateways sign with this key now."`
}

// NewUpstreamKey is a new upstream key with its secret, shown once.
type NewUpstreamKey struct {
	UpstreamKey
	Secret string `json:"secret" doc:"The HMAC-SHA256 key, base64url without padding, for the upstream MCP server to verify with. Shown only in this response."`
}

// UpstreamSecretSize is the size of an upstream key in bytes.
const UpstreamSecretSize = 32

func upstreamAAD(org uuid.UUID, env policy.Environment, kid string) []byte {
	return []byte("upstream-signing-key\x00" + org.String() + "\x00" + string(env) + "\x00" + kid)
}

// SetUpstreamKey creates the environment's upstream key, or replaces its
// active one, and records UPSTREAM_KEY_CREATED or UPSTREAM_KEY_ROTATED.
// Gateways sign with the new key from their next snapshot on.
func (s Service) SetUpstreamKey(ctx context.Context, tx pgx.Tx, org uuid.UUID, env policy.Environment, actor string, now time.Time) (NewUpstreamKey, error) {
	if !env.Valid() {
		return NewUpstreamKey{}, fault.Field("environment", "must be development, staging or production", env)
	}
	if _, _, err := ledger.LockChain(ctx, tx, org); err != nil {
		return NewUpstreamKey{}, err
	}
	var retired *string
	err := tx.QueryRow(ctx, `UPDATE upstream_keys SET retired_at = $3 WHERE organization_id = $1 AND environment = $2 AND retired_at IS NULL RETURNING kid`,
		org, env, stamp(now)).Scan(&retired)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return NewUpstreamKey{}, fmt.Errorf("retire upstream key: %w", err)
	}
	secret := make([]byte, UpstreamSecretSize)
	rand.Read(secret)
	k := NewUpstreamKey{
		UpstreamKey: UpstreamKey{KID: newKID("up_"), Environment: env, Algorithm: "hmac-sha256", CreatedAt: stamp(now), Active: true},
		Secret:      base64.RawURLEncoding.EncodeToString(secret),
	}
	_, err = tx.Exec(ctx, `INSERT INTO upstream_keys (kid, organization_id, environment, secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.KID, org, env, s.Sealer.Seal(secret, upstreamAAD(org, env, k.KID)), k.CreatedAt)
	if err != nil {
		return NewUpstreamKey{}, fmt.Errorf("store upstream key: %w", err)
	}
	typ, details := "UPSTREAM_KEY_CREATED", map[string]any{"kid": k.KID, "environment": env}
	if retired != nil {
		typ, details["retired"] = "UPSTREAM_KEY_ROTATED", *retired
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: typ, Actor: actor, SubjectType: "upstream_key", SubjectID: k.KID, Details: details}, now)
	return k, err
}

// ListUpstreamKeys returns the organization's upstream keys, newest first,
// without secrets.
func ListUpstreamKeys(ctx context.Context, q db.Querier, org uuid.UUID) ([]UpstreamKey, error) {
	rows, err := q.Query(ctx, `SELECT kid, environment, created_at, retired_at FROM upstream_keys WHERE organization_id = $1 ORDER BY created_at DESC, kid`, org)
	if err != nil {
		return nil, fmt.Errorf("list upstream keys: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (UpstreamKey, error) {
		var k UpstreamKey
		err := row.Scan(&k.KID, &k.Environment, &k.CreatedAt, &k.RetiredAt)
		k.Algorithm, k.CreatedAt, k.Active = "hmac-sha256", k.CreatedAt.UTC(), k.RetiredAt == nil
		return k, err
	})
}

// UpstreamSecret returns the environment's active upstream key, opened;
// none is ErrNotConfigured.
func (s Service) UpstreamSecret(ctx context.Context, q db.Querier, org uuid.UUID, env policy.Environment) (string, []byte, error) {
	var kid string
	var sealed []byte
	err := q.QueryRow(ctx, `SELECT kid, secret_sealed FROM upstream_keys WHERE organization_id = $1 AND environment = $2 AND retired_at IS NULL`, org, env).
		Scan(&kid, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, fmt.Errorf("no upstream key in %s: %w", env, ErrNotConfigured)
	}
	if err != nil {
		return "", nil, fmt.Errorf("load upstream key: %w", err)
	}
	secret, err := s.Sealer.Open(sealed, upstreamAAD(org, env, kid))
	if err != nil {
		return "", nil, fmt.Errorf("open upstream key %s: %w", kid, err)
	}
	return kid, secret, nil
}

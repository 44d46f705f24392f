package agents

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/seal"
)

// SecretSize is the size of an HMAC key in bytes.
const SecretSize = 32

// MaxOverlap bounds how long a rotated-out key may stay valid.
const MaxOverlap = 30 * 24 * time.Hour

// Keys issues, rotates and opens agents' HMAC request-signing keys. The
// secrets are sealed with the KEK, bound to organization, agent and key id.
type Keys struct {
	Sealer *seal.Sealer
	// DefaultOverlap is how long the previous keys stay valid after a
	// rotation that does not say.
	DefaultOverlap time.Duration
}

// KeyInfo describes an HMAC key without its secret.
type KeyInfo struct {
	KID       string     `json:"kid"`
	Algorithm string     `json:"algorithm" example:"hmac-sha256"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty" doc:"Set once a rotation retired the key; it verifies signatures until then."`
	Active    bool       `json:"active" doc:"Whether the key still verifies signatures now."`
}

// NewKey is a freshly issued key with its secret, returned once.
type NewKey struct {
	KeyInfo
	Secret string `json:"secret" doc:"The HMAC-SHA256 key, base64url without padding. Shown only in this response."`
}

// Key is an opened key, for the components that sign or verify with it.
type Key struct {
	KeyInfo
	Secret []byte
}

var kidEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newKID() string {
	var b [10]byte
	rand.Read(b[:])
	return "hk_" + strings.ToLower(kidEncoding.EncodeToString(b[:]))
}

func keyAAD(org, agent uuid.UUID, kid string) []byte {
	return appendKeyAAD(nil, org, agent, kid)
}

// appendKeyAAD appends keyAAD(org, agent, kid) to dst, so that LiveKeys
// can build the AAD of thousands of keys in one buffer.
func appendKeyAAD(dst []byte, org, agent uuid.UUID, kid string) []byte {
	dst = append(dst, "agent-hmac-key\x00"...)
	dst = db.AppendUUID(dst, org)
	dst = append(dst, 0)
	dst = db.AppendUUID(dst, agent)
	dst = append(dst, 0)
	return append(dst, kid...)
}

func (k *Keys) create(ctx context.Context, tx pgx.Tx, org, agent uuid.UUID, now time.Time) (NewKey, error) {
	secret := make([]byte, SecretSize)
	rand.Read(secret)
	nk := NewKey{KeyInfo: KeyInfo{KID: newKID(), Algorithm: "hmac-sha256", CreatedAt: stamp(now), Active: true},
		Secret: base64.RawURLEncoding.EncodeToString(secret)}
	_, err := tx.Exec(ctx, `INSERT INTO agent_hmac_keys (kid, organization_id, agent_id, secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5)`,
		nk.KID, org, agent, k.Sealer.Seal(secret, keyAAD(org, agent, nk.KID)), nk.CreatedAt)
	if err != nil {
		return NewKey{}, fmt.Errorf("store hmac key: %w", err)
	}
	return nk, nil
}

// Rotate issues a new key for the agent and limits every key that is still
// valid to overlap from now (nil: DefaultOverlap), recording
// AGENT_KEY_ROTATED. Agents whose registration ended cannot get keys.
func (k *Keys) Rotate(ctx context.Context, tx pgx.Tx, org, agent uuid.UUID, overlap *time.Duration, actor string, now time.Time) (NewKey, error) {
	ov := k.DefaultOverlap
	if overlap != nil {
		ov = *overlap
	}
	if ov < 0 || ov > MaxOverlap {
		return NewKey{}, fault.Field("overlapSeconds", fmt.Sprintf("must be between 0 and %d", int(MaxOverlap.Seconds())), int64(ov.Seconds()))
	}
	a, err := Get(ctx, tx, org, agent)
	if err != nil {
		return NewKey{}, err
	}
	if a.ANS.Status.Terminal() {
		return NewKey{}, fmt.Errorf("agent %s is %s: %w", agent, a.ANS.Status, fault.ErrConflict)
	}
	// Lock the agent's keys so concurrent rotations serialise.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM role_agents WHERE organization_id = $1 AND id = $2 FOR UPDATE`, org, agent); err != nil {
		return NewKey{}, fmt.Errorf("lock agent: %w", err)
	}
	until := stamp(now.Add(ov))
	rows, err := tx.Query(ctx, `UPDATE agent_hmac_keys SET expires_at = $3
		WHERE organization_id = $1 AND agent_id = $2 AND (expires_at IS NULL OR expires_at > $3) RETURNING kid`, org, agent, until)
	if err != nil {
		return NewKey{}, fmt.Errorf("retire hmac keys: %w", err)
	}
	retired, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return NewKey{}, fmt.Errorf("retire hmac keys: %w", err)
	}
	nk, err := k.create(ctx, tx, org, agent, now)
	if err != nil {
		return NewKey{}, err
	}
	return nk, appendEvent(ctx, tx, org, "AGENT_KEY_ROTATED", actor, "agent", agent, map[string]any{
		"kid": nk.KID, "retired": retired, "retiredUntil": until, "overlapSeconds": int64(ov.Seconds()),
	}, now)
}

// List returns the agent's keys, newest first, without secrets.
func (k *Keys) List(ctx context.Context, q db.Querier, org, agent uuid.UUID, now time.Time) ([]KeyInfo, error) {
	keys, err := k.load(ctx, q, org, agent, now, false)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, len(keys))
	for i, key := range keys {
		out[i] = key.KeyInfo
	}
	return out, nil
}

// Active returns the agent's keys that verify signatures now, opened.
func (k *Keys) Active(ctx context.Context, q db.Querier, org, agent uuid.UUID, now time.Time) ([]Key, error) {
	return k.load(ctx, q, org, agent, now, true)
}

func (k *Keys) load(ctx context.Context, q db.Querier, org, agent uuid.UUID, now time.Time, open bool) ([]Key, error) {
	if _, err := Get(ctx, q, org, agent); err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT kid, created_at, expires_at, secret_sealed FROM agent_hmac_keys
		WHERE organization_id = $1 AND agent_id = $2 AND ($3 = false OR expires_at IS NULL OR expires_at > $4)
		ORDER BY created_at DESC, kid`, org, agent, open, now)
	if err != nil {
		return nil, fmt.Errorf("list hmac keys: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) {
		var key Key
		var sealed []byte
		if err := row.Scan(&key.KID, &key.CreatedAt, &key.ExpiresAt, &sealed); err != nil {
			return key, err
		}
		key.Algorithm = "hmac-sha256"
		key.CreatedAt = key.CreatedAt.UTC()
		key.Active = key.ExpiresAt == nil || key.ExpiresAt.After(now)
		if open {
			secret, err := k.Sealer.Open(sealed, keyAAD(org, agent, key.KID))
			if err != nil {
				return key, fmt.Errorf("open hmac key %s: %w", key.KID, err)
			}
			key.Secret = secret
		}
		return key, nil
	})
}

// LiveKeys returns, opened, every key of the organization's agents that
// verifies signatures at now, by agent: what a gateway snapshot carries.
// It reads them in one query, however many agents there are.
//
// A snapshot build reads every key of a large organization here, so a row
// costs only the allocations of what it returns: the row is scanned into
// the same destinations every time (pgx's Scan takes them as interfaces,
// so variables declared per row would each move to the heap), the agent
// id in its binary form (as a uuid.UUID, a sql.Scanner, pgx would format
// it as text and have it parsed), the sealed secret as driver memory that
// Open copies out of, and each key's AAD into one reused buffer.
func (k *Keys) LiveKeys(ctx context.Context, q db.Querier, org uuid.UUID, now time.Time) (map[uuid.UUID][]Key, error) {
	rows, err := q.Query(ctx, `SELECT agent_id, kid, created_at, expires_at, secret_sealed FROM agent_hmac_keys
		WHERE organization_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY agent_id, created_at DESC, kid`, org, now)
	if err != nil {
		return nil, fmt.Errorf("live hmac keys: %w", err)
	}
	defer rows.Close()
	out := map[uuid.UUID][]Key{}
	var (
		agent     uuid.UUID
		kid       string
		createdAt time.Time
		expiresAt *time.Time
		sealed    pgtype.DriverBytes
		aad       []byte
	)
	// Scan sets expiresAt to nil or to a time it allocates, never into the
	// previous row's, so keys do not share it.
	dest := []any{(*[16]byte)(&agent), &kid, &createdAt, &expiresAt, &sealed}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("live hmac keys: %w", err)
		}
		aad = appendKeyAAD(aad[:0], org, agent, kid)
		secret, err := k.Sealer.Open(sealed, aad)
		if err != nil {
			return nil, fmt.Errorf("open hmac key %s: %w", kid, err)
		}
		key := Key{KeyInfo: KeyInfo{KID: kid, Algorithm: "hmac-sha256", CreatedAt: createdAt.UTC(), ExpiresAt: expiresAt, Active: true}, Secret: secret}
		out[agent] = append(out[agent], key)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("live hmac keys: %w", err)
	}
	return out, nil
}

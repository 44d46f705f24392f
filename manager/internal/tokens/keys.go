package tokens

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/seal"
)

// Keys generates, rotates and opens the organizations' token signing keys.
// Private keys and HS256 secrets are sealed with the KEK, bound to their kid.
type Keys struct {
	Sealer *seal.Sealer
	// Opened, when set, keeps keys once unsealed, so that issuing a token
	// does not unseal (and for Ed25519, re-derive) the same key every time.
	Opened *OpenedKeys
}

// OpenedKeys caches unsealed signing keys by kid. An entry is used only
// while the stored sealed form is byte for byte the one it was opened from,
// so a key row restored or replaced under the same kid is opened afresh,
// and a key gone from the database is never used: the row is still read on
// every use, only the unsealing is saved.
type OpenedKeys struct {
	m sync.Map // kid -> *key
}

func (c *OpenedKeys) get(kid string, sealed []byte) *key {
	if c == nil {
		return nil
	}
	v, ok := c.m.Load(kid)
	if !ok {
		return nil
	}
	k := v.(*key)
	if !bytes.Equal(k.sealed, sealed) {
		return nil
	}
	return k
}

func (c *OpenedKeys) put(k *key) {
	if c != nil {
		c.m.Store(k.kid, k)
	}
}

// SigningKey describes a signing key; it never carries private material.
type SigningKey struct {
	KID       string     `json:"kid"`
	Algorithm string     `json:"algorithm"`
	CreatedAt time.Time  `json:"createdAt"`
	RetiredAt *time.Time `json:"retiredAt,omitempty" doc:"Set when a rotation replaced the key; it still verifies the tokens it signed."`
	// PublishedUntil is when the last token the key signed expires; a
	// retired key stays in the JWKS until then.
	PublishedUntil *time.Time `json:"publishedUntil,omitempty"`
	Active         bool       `json:"active"`
}

// key is an opened signing key.
type key struct {
	kid     string
	org     uuid.UUID
	alg     string
	public  ed25519.PublicKey
	private ed25519.PrivateKey // EdDSA
	secret  []byte             // HS256
	sealed  []byte             // the stored form it was opened from
}

// signer returns what golang-jwt signs with.
func (k *key) signer() any {
	if k.alg == HS256 {
		return k.secret
	}
	return k.private
}

// verifier returns what golang-jwt verifies with.
func (k *key) verifier() any {
	if k.alg == HS256 {
		return k.secret
	}
	return k.public
}

var kidEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newKID(alg string) string {
	var b [10]byte
	rand.Read(b[:])
	prefix := "ed_"
	if alg == HS256 {
		prefix = "hs_"
	}
	return prefix + strings.ToLower(kidEncoding.EncodeToString(b[:]))
}

func keyAAD(org uuid.UUID, kid string) []byte {
	return []byte("token-signing-key\x00" + org.String() + "\x00" + kid)
}

// create generates and stores a new active key and records SIGNING_KEY_CREATED.
func (k Keys) create(ctx context.Context, tx pgx.Tx, org uuid.UUID, alg, actor string, now time.Time) (*key, error) {
	nk := &key{kid: newKID(alg), org: org, alg: alg}
	var private, public []byte
	if alg == EdDSA {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		nk.public, nk.private = pub, priv
		private, public = priv.Seed(), pub
	} else {
		nk.secret = make([]byte, 32)
		rand.Read(nk.secret)
		private = nk.secret
	}
	_, err := tx.Exec(ctx, `INSERT INTO signing_keys (kid, organization_id, algorithm, public_key, private_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		nk.kid, org, alg, public, k.Sealer.Seal(private, keyAAD(org, nk.kid)), now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "SIGNING_KEY_CREATED", Actor: actor, SubjectType: "signing_key", SubjectID: nk.kid,
		Details: map[string]any{"kid": nk.kid, "algorithm": alg}}, now)
	return nk, err
}

// active returns the organization's active key of alg, creating the first
// one on demand. Issuing reads the active key without a lock, so concurrent
// issues of one organization do not queue here; only creating a key takes
// the organization's key lock.
func (k Keys) active(ctx context.Context, tx pgx.Tx, org uuid.UUID, alg, actor string, now time.Time) (*key, error) {
	key, err := k.openActive(ctx, tx, org, alg)
	if !errors.Is(err, errUnknownKey) {
		return key, err
	}
	if err := lockKeys(ctx, tx, org); err != nil {
		return nil, err
	}
	// Another transaction may have created it while this one waited.
	key, err = k.openActive(ctx, tx, org, alg)
	if errors.Is(err, errUnknownKey) {
		return k.create(ctx, tx, org, alg, actor, now)
	}
	return key, err
}

// lockKeys serialises the creation and rotation of an organization's keys
// until tx ends. FOR NO KEY UPDATE, not FOR UPDATE: it still excludes the
// other creators, but not the key-share lock that an insert into one of the
// organization's tables takes on this row (its foreign key), perhaps while
// holding the ledger head. FOR UPDATE here, then the ledger head,
// deadlocked with such a writer.
func lockKeys(ctx context.Context, tx pgx.Tx, org uuid.UUID) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE`, org); err != nil {
		return fmt.Errorf("lock organization's keys: %w", err)
	}
	return nil
}

const selectKeyMaterial = `SELECT kid, organization_id, algorithm, public_key, private_sealed FROM signing_keys`

// openActive loads and unseals the organization's active key of alg, or
// answers errUnknownKey.
func (k Keys) openActive(ctx context.Context, q db.Querier, org uuid.UUID, alg string) (*key, error) {
	return k.load(q.QueryRow(ctx, selectKeyMaterial+` WHERE organization_id = $1 AND algorithm = $2 AND retired_at IS NULL`, org, alg))
}

// open loads and unseals a key by kid, whatever its organization.
func (k Keys) open(ctx context.Context, q db.Querier, kid string) (*key, error) {
	return k.load(q.QueryRow(ctx, selectKeyMaterial+` WHERE kid = $1`, kid))
}

func (k Keys) load(row pgx.Row) (*key, error) {
	out := &key{}
	var public []byte
	err := row.Scan(&out.kid, &out.org, &out.alg, &public, &out.sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errUnknownKey
	}
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	if cached := k.Opened.get(out.kid, out.sealed); cached != nil {
		return cached, nil
	}
	private, err := k.Sealer.Open(out.sealed, keyAAD(out.org, out.kid))
	if err != nil {
		return nil, fmt.Errorf("open signing key %s: %w", out.kid, err)
	}
	if out.alg == HS256 {
		out.secret = private
	} else {
		out.private = ed25519.NewKeyFromSeed(private)
		out.public = ed25519.PublicKey(public)
	}
	k.Opened.put(out)
	return out, nil
}

var errUnknownKey = errors.New("unknown signing key")

// Rotate replaces the organization's active key of its current algorithm
// with a new one and records SIGNING_KEY_ROTATED. The retired key keeps
// verifying, and stays in the JWKS, until the last token it signed expires.
func (k Keys) Rotate(ctx context.Context, tx pgx.Tx, org uuid.UUID, actor string, now time.Time) (SigningKey, error) {
	if err := lockKeys(ctx, tx, org); err != nil {
		return SigningKey{}, err
	}
	s, err := GetSettings(ctx, tx, org)
	if err != nil {
		return SigningKey{}, err
	}
	old, err := k.active(ctx, tx, org, s.Algorithm, actor, now)
	if err != nil {
		return SigningKey{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = $2 WHERE kid = $1`, old.kid, now); err != nil {
		return SigningKey{}, fmt.Errorf("retire signing key: %w", err)
	}
	nk, err := k.create(ctx, tx, org, s.Algorithm, actor, now)
	if err != nil {
		return SigningKey{}, err
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "SIGNING_KEY_ROTATED", Actor: actor, SubjectType: "signing_key", SubjectID: nk.kid,
		Details: map[string]any{"kid": nk.kid, "retired": old.kid, "algorithm": s.Algorithm}}, now)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{KID: nk.kid, Algorithm: nk.alg, CreatedAt: now.UTC().Truncate(time.Microsecond), Active: true}, nil
}

const selectKeys = `SELECT k.kid, k.algorithm, k.created_at, k.retired_at,
	(SELECT max(t.expires_at) FROM gateway_tokens t WHERE t.kid = k.kid) AS published_until FROM signing_keys k`

func scanKey(row pgx.CollectableRow) (SigningKey, error) {
	var s SigningKey
	err := row.Scan(&s.KID, &s.Algorithm, &s.CreatedAt, &s.RetiredAt, &s.PublishedUntil)
	s.CreatedAt = s.CreatedAt.UTC()
	s.Active = s.RetiredAt == nil
	return s, err
}

// ListKeys returns the organization's signing keys that still verify
// something at now (active, or retired with unexpired tokens), newest first.
func ListKeys(ctx context.Context, q db.Querier, org uuid.UUID, now time.Time) ([]SigningKey, error) {
	rows, err := q.Query(ctx, `SELECT * FROM (`+selectKeys+` WHERE k.organization_id = $1) s
		WHERE retired_at IS NULL OR published_until > $2 ORDER BY created_at DESC`, org, now)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return pgx.CollectRows(rows, scanKey)
}

// JWK is one public key in JSON Web Key form (RFC 8037 for Ed25519).
type JWK struct {
	KTY string `json:"kty"`
	CRV string `json:"crv"`
	X   string `json:"x"`
	KID string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS returns the public keys of every organization's EdDSA keys that
// still verify a token: active ones, and retired ones until the last token
// they signed expires. HS256 secrets are never published.
func JWKS(ctx context.Context, q db.Querier, now time.Time) ([]JWK, error) {
	rows, err := q.Query(ctx, `SELECT k.kid, k.public_key FROM signing_keys k
		WHERE k.algorithm = 'EdDSA' AND (k.retired_at IS NULL
		   OR EXISTS (SELECT 1 FROM gateway_tokens t WHERE t.kid = k.kid AND t.expires_at > $1))
		ORDER BY k.created_at DESC, k.kid`, now)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (JWK, error) {
		var j JWK
		var pub []byte
		err := row.Scan(&j.KID, &pub)
		j.KTY, j.CRV, j.Alg, j.Use = "OKP", "Ed25519", EdDSA, "sig"
		j.X = base64.RawURLEncoding.EncodeToString(pub)
		return j, err
	})
}

package bundles

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/seal"
)

// Algorithm is the bundle signature algorithm. OPA verifies bundles only
// with RSA, ECDSA or HMAC keys given in its configuration (not EdDSA), and
// HMAC would hand every sidecar the signing secret, so bundles use ES256.
const Algorithm = "ES256"

// VerificationKey is an organization's bundle signing public key, in the form an
// OPA sidecar's keys configuration takes.
type VerificationKey struct {
	KeyID     string    `json:"keyId" doc:"The key id to name in OPA's bundle signing configuration (keyid)."`
	Algorithm string    `json:"algorithm" example:"ES256"`
	PublicKey string    `json:"publicKey" doc:"The PEM-encoded (PKIX) public key, for OPA's keys.<keyId>.key."`
	CreatedAt time.Time `json:"createdAt"`
}

// Keys opens and creates the organizations' bundle signing keys, whose
// private halves are sealed with the KEK, bound to organization and kid.
type Keys struct {
	Sealer *seal.Sealer
}

// privateKey is an opened signing key: the PEM OPA's signer takes.
type privateKey struct {
	VerificationKey
	pem string
}

var kidEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func keyAAD(org uuid.UUID, kid string) []byte {
	return []byte("bundle-signing-key\x00" + org.String() + "\x00" + kid)
}

// get returns the organization's bundle signing key, creating it (and
// recording BUNDLE_SIGNING_KEY_CREATED) on first use.
func (k Keys) get(ctx context.Context, tx pgx.Tx, org uuid.UUID, actor string, now time.Time) (privateKey, error) {
	// Serialise first-key creation per organization. FOR NO KEY UPDATE,
	// not FOR UPDATE: it still excludes the other creators, but not the
	// key-share lock every ledger writer takes on this row (the foreign key
	// of its events) while it holds the ledger head. FOR UPDATE here, then
	// the ledger head, deadlocked with them.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE`, org); err != nil {
		return privateKey{}, fmt.Errorf("lock organization: %w", err)
	}
	var pk privateKey
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT kid, algorithm, public_pem, private_sealed, created_at FROM bundle_signing_keys WHERE organization_id = $1`, org).
		Scan(&pk.KeyID, &pk.Algorithm, &pk.PublicKey, &sealed, &pk.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return k.create(ctx, tx, org, actor, now)
	}
	if err != nil {
		return pk, fmt.Errorf("load bundle signing key: %w", err)
	}
	der, err := k.Sealer.Open(sealed, keyAAD(org, pk.KeyID))
	if err != nil {
		return pk, fmt.Errorf("open bundle signing key %s: %w", pk.KeyID, err)
	}
	pk.CreatedAt = pk.CreatedAt.UTC()
	pk.pem = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return pk, nil
}

// Public returns the organization's bundle signing public key, creating
// the key on first use.
func (k Keys) Public(ctx context.Context, tx pgx.Tx, org uuid.UUID, actor string, now time.Time) (VerificationKey, error) {
	pk, err := k.get(ctx, tx, org, actor, now)
	return pk.VerificationKey, err
}

func (k Keys) create(ctx context.Context, tx pgx.Tx, org uuid.UUID, actor string, now time.Time) (privateKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return privateKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return privateKey{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return privateKey{}, err
	}
	var b [10]byte
	rand.Read(b[:])
	pk := privateKey{
		VerificationKey: VerificationKey{
			KeyID: "bundle_" + strings.ToLower(kidEncoding.EncodeToString(b[:])), Algorithm: Algorithm,
			PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})), CreatedAt: now.UTC().Truncate(time.Microsecond),
		},
		pem: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
	_, err = tx.Exec(ctx, `INSERT INTO bundle_signing_keys (kid, organization_id, algorithm, public_pem, private_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		pk.KeyID, org, pk.Algorithm, pk.PublicKey, k.Sealer.Seal(der, keyAAD(org, pk.KeyID)), pk.CreatedAt)
	if err != nil {
		return privateKey{}, fmt.Errorf("store bundle signing key: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "BUNDLE_SIGNING_KEY_CREATED", Actor: actor, SubjectType: "bundle_signing_key", SubjectID: pk.KeyID,
		Details: map[string]any{"kid": pk.KeyID, "algorithm": pk.Algorithm}}, now)
	return pk, err
}

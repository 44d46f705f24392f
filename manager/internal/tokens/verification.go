package tokens

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/shared/token"
)

// VerificationKeys returns what a gateway needs to verify the
// organization's tokens at now, for its snapshot: every signing key that
// may have signed a live token, that is the active keys (one per algorithm
// the organization has used) and retired keys until the last token they
// signed expires, as the JWKS lists them. Ed25519 keys come with their
// public key only; HS256 keys with their secret, opened from its sealed
// form, which makes the result as secret as the snapshot that carries it.
// Keys are ordered newest first. A key whose material is unusable is an
// error rather than a silent omission, so a broken key fails the snapshot
// build instead of every token.
//
// The list matches what Service.Verify accepts by signature: a token signed
// by a key left out here has expired.
func (k Keys) VerificationKeys(ctx context.Context, q db.Querier, org uuid.UUID, now time.Time) ([]token.Key, error) {
	rows, err := q.Query(ctx, `SELECT k.kid, k.algorithm, k.public_key, k.private_sealed FROM signing_keys k
		WHERE k.organization_id = $1 AND (k.retired_at IS NULL OR EXISTS (SELECT 1 FROM gateway_tokens t
			WHERE t.organization_id = k.organization_id AND t.kid = k.kid AND t.expires_at > $2))
		ORDER BY k.created_at DESC, k.kid`, org, now)
	if err != nil {
		return nil, fmt.Errorf("token verification keys: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (token.Key, error) {
		var out token.Key
		var alg string
		var public, sealed []byte
		if err := row.Scan(&out.ID, &alg, &public, &sealed); err != nil {
			return out, fmt.Errorf("token verification keys: %w", err)
		}
		out.Algorithm = token.Algorithm(alg)
		switch alg {
		case EdDSA:
			if len(public) != ed25519.PublicKeySize {
				return out, fmt.Errorf("signing key %s: %d public key bytes, not %d", out.ID, len(public), ed25519.PublicKeySize)
			}
			out.Public = ed25519.PublicKey(public)
		case HS256:
			if k.Sealer == nil {
				return out, fmt.Errorf("signing key %s: no sealer to open the HS256 secret", out.ID)
			}
			secret, err := k.Sealer.Open(sealed, keyAAD(org, out.ID))
			if err != nil {
				return out, fmt.Errorf("open signing key %s: %w", out.ID, err)
			}
			if len(secret) < token.MinSecretSize {
				return out, fmt.Errorf("signing key %s: %d-byte HS256 secret, less than %d", out.ID, len(secret), token.MinSecretSize)
			}
			out.Secret = secret
		default:
			return out, fmt.Errorf("signing key %s: algorithm %q", out.ID, alg)
		}
		return out, nil
	})
}

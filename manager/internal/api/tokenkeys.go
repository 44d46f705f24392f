package api

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/tokens"
	"github.com/knaight/knaight/shared/snapshot"
	"github.com/knaight/knaight/shared/token"
)

// tokenKeys is the snapshot's token verification keys: the organization's
// signing keys that still verify a token (tokens.Keys.VerificationKeys), in
// the snapshot's form.
func (s *Server) tokenKeys(ctx context.Context, q db.Querier, org uuid.UUID, now time.Time) ([]snapshot.TokenKey, error) {
	keys, err := tokens.Keys{Sealer: s.Sealer}.VerificationKeys(ctx, q, org, now)
	if err != nil {
		return nil, err
	}
	out := make([]snapshot.TokenKey, 0, len(keys))
	for _, k := range keys {
		tk := snapshot.TokenKey{ID: k.ID, Algorithm: string(k.Algorithm)}
		switch k.Algorithm {
		case token.EdDSA:
			tk.Key = k.Public
		case token.HS256:
			tk.Key = k.Secret
		default:
			return nil, fmt.Errorf("token key %s: algorithm %q", k.ID, k.Algorithm)
		}
		out = append(out, tk)
	}
	return out, nil
}

package tokens

import (
	"context"

	"github.com/knaight/knaight/manager/internal/db"
)

// SigningMaterialForTest opens a signing key so tests can forge tokens
// that are correctly signed but wrong in some other way.
func SigningMaterialForTest(ctx context.Context, q db.Querier, k Keys, kid string) (signer, public any, alg string, err error) {
	key, err := k.open(ctx, q, kid)
	if err != nil {
		return nil, nil, "", err
	}
	return key.signer(), key.verifier(), key.alg, nil
}

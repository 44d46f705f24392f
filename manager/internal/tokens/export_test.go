package tokens

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"

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

// IssueTogether issues reqs as one group, as that many requests arriving
// together would be, and returns each one's result.
func IssueTogether(g *Group, org uuid.UUID, reqs []IssueRequest, actor string, now time.Time) ([]Issued, []error) {
	calls := make([]*groupCall, len(reqs))
	for i, r := range reqs {
		calls[i] = &groupCall{org: org, req: r, actor: actor, now: now}
	}
	byRequest := slices.Clone(calls)
	g.issueAll(calls)
	issued, errs := make([]Issued, len(reqs)), make([]error, len(reqs))
	for i, c := range byRequest {
		issued[i], errs[i] = c.issued, c.err
	}
	return issued, errs
}

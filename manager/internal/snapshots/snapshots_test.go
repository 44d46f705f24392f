package snapshots

import (
	"testing"

	"github.com/google/uuid"

	"github.com/knaight/knaight/shared/snapshot"
)

// The token ids must read as PostgreSQL's jti::text did before they were
// formatted here: the canonical, lower-case form uuid.UUID.String writes.
func TestSetTokenIDsWritesTheTextForm(t *testing.T) {
	ids := []uuid.UUID{uuid.Nil, uuid.Max, uuid.MustParse("0123ABCD-4567-89EF-FEDC-BA9876543210")}
	for range 50 {
		ids = append(ids, uuid.New())
	}
	out := make([]snapshot.Revocation, len(ids))
	setTokenIDs(out, ids)
	for i, id := range ids {
		if out[i].TokenID != id.String() {
			t.Fatalf("TokenID %q, want %q", out[i].TokenID, id.String())
		}
	}
	setTokenIDs(nil, nil) // no revocations: nothing to do, no panic
}

package db

import (
	"testing"

	"github.com/google/uuid"
)

func TestAppendUUIDWritesTheTextForm(t *testing.T) {
	ids := []uuid.UUID{uuid.Nil, uuid.Max, uuid.MustParse("0123ABCD-4567-89EF-FEDC-BA9876543210")}
	for range 50 {
		ids = append(ids, uuid.New())
	}
	for _, id := range ids {
		if got := string(AppendUUID([]byte("x"), id)); got != "x"+id.String() {
			t.Fatalf("AppendUUID = %q, want x%q", got, id.String())
		}
	}
}

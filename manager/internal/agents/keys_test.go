package agents

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
)

// The AAD binds every stored secret to its organization, agent and key id,
// so it must stay byte for byte what the manager sealed existing keys
// with, whichever way it is built.
func TestKeyAADIsTheStoredForm(t *testing.T) {
	ids := []uuid.UUID{uuid.Nil, uuid.Max, uuid.MustParse("0123abcd-4567-89ef-fedc-ba9876543210")}
	for range 50 {
		ids = append(ids, uuid.New())
	}
	for i, org := range ids {
		agent, kid := ids[(i+1)%len(ids)], newKID()
		want := []byte("agent-hmac-key\x00" + org.String() + "\x00" + agent.String() + "\x00" + kid)
		if got := keyAAD(org, agent, kid); !bytes.Equal(got, want) {
			t.Fatalf("keyAAD = %q, want %q", got, want)
		}
		if got := appendKeyAAD([]byte("prefix"), org, agent, kid); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("appendKeyAAD = %q, want prefix%q", got, want)
		}
	}
}

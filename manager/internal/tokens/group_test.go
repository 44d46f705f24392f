package tokens_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/tokens"
)

// countEvents counts the organization's ledger events of type typ.
func (f *fixture) countEvents(t *testing.T, typ string) int {
	t.Helper()
	events, err := ledger.List(t.Context(), f.pool, f.org, ledger.Filter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(events)
}

func (f *fixture) verifyLedger(t *testing.T) {
	t.Helper()
	r, err := ledger.Verify(t.Context(), f.pool, f.org)
	if err != nil || !r.OK {
		t.Fatalf("ledger verify: %+v %v", r, err)
	}
}

// A group of requests issued in one transaction: the good ones get their
// tokens, recorded and in the ledger; each bad one is refused with its own
// reason; the organization's first signing key is created once for all.
func TestGroupIssuesTogetherAndRefusesAlone(t *testing.T) {
	f := setup(t, tokens.EdDSA)
	if _, err := f.pool.Exec(t.Context(), `DELETE FROM signing_keys WHERE organization_id = $1`, f.org); err != nil {
		t.Fatal(err)
	}
	keysBefore := f.countEvents(t, "SIGNING_KEY_CREATED")
	good := tokens.IssueRequest{AgentID: f.agent, Scopes: []string{"mcp:read", "mcp:invoke"}, LoA: 2, IssuerID: "test", ArtifactID: "a-1", ArtifactType: "build"}
	reqs := []tokens.IssueRequest{
		good,
		{AgentID: uuid.New(), LoA: 2, IssuerID: "test"},
		good,
		{AgentID: f.agent, LoA: 9, IssuerID: "test"},
		{AgentID: f.agent, LoA: 1, IssuerID: "test", ClientID: "client-1"}, // no scopes at all
	}
	g := &tokens.Group{Service: f.svc, Pool: f.pool}
	issued, errs := tokens.IssueTogether(g, f.org, reqs, "test", f.now)

	refused := map[int]string{1: "agentId", 3: "loaLevel"}
	for i, err := range errs {
		field, bad := refused[i]
		if !bad {
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			continue
		}
		inv, ok := fault.AsInvalid(err)
		if !ok || len(inv.Errors) != 1 || inv.Errors[0].Field != field {
			t.Fatalf("request %d: %v, want the %s field refused", i, err, field)
		}
		if issued[i].Token != "" {
			t.Fatalf("request %d was refused but has a token", i)
		}
	}
	var jtis []uuid.UUID
	for _, i := range []int{0, 2, 4} {
		_, rec, err := f.svc.Verify(t.Context(), f.pool, issued[i].Token, "", f.now)
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		want := reqs[i].Scopes
		if want == nil {
			want = []string{}
		}
		if rec.JTI != issued[i].JTI || !slices.Equal(rec.Scopes, want) || rec.ClientID != reqs[i].ClientID || rec.ArtifactID != reqs[i].ArtifactID {
			t.Fatalf("token %d: stored %+v, issued %+v", i, rec, issued[i].Record)
		}
		jtis = append(jtis, rec.JTI)
	}
	slices.SortFunc(jtis, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if len(slices.Compact(jtis)) != 3 {
		t.Fatalf("token ids repeat: %v", jtis)
	}
	if n := f.countEvents(t, "TOKEN_ISSUED"); n != 3 {
		t.Fatalf("%d TOKEN_ISSUED events, want 3", n)
	}
	if n := f.countEvents(t, "SIGNING_KEY_CREATED") - keysBefore; n != 1 {
		t.Fatalf("%d signing keys created, want 1", n)
	}
	f.verifyLedger(t)
}

// Requests arriving at once through Issue: every one gets its own token.
func TestGroupIssuesConcurrentRequests(t *testing.T) {
	f := setup(t, tokens.HS256)
	g := &tokens.Group{Service: f.svc, Pool: f.pool}
	const n = 40
	tokensIssued := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := g.Issue(t.Context(), f.org, tokens.IssueRequest{AgentID: f.agent, Scopes: []string{"mcp:read"}, LoA: 2, IssuerID: "test"}, "test", f.now)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			if _, _, err := f.svc.Verify(t.Context(), f.pool, out.Token, "", f.now); err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			tokensIssued[i] = out.Token
		})
	}
	wg.Wait()
	slices.Sort(tokensIssued)
	if len(slices.Compact(tokensIssued)) != n {
		t.Fatal("tokens repeat")
	}
	if got := f.countEvents(t, "TOKEN_ISSUED"); got != n {
		t.Fatalf("%d TOKEN_ISSUED events, want %d", got, n)
	}
	f.verifyLedger(t)
}

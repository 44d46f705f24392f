package filter

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/decision"
)

// TestAppendRecord checks the reflection-free encoder against encoding/json,
// byte for byte.
func TestAppendRecord(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	from, to := at.Add(-time.Minute), at
	cases := []decision.Record{
		{ID: strings.Repeat("a", 32), Kind: decision.KindDecision, Time: at, Organization: "acme", Environment: "production"},
		{ID: strings.Repeat("b", 32), Kind: decision.KindDecision, Time: at, Organization: "acme", Environment: "production",
			Agent: fxAgent, TokenID: fxRevoked, HTTPMethod: "POST", Path: "/mcp?x=<y>&z", MCPMethod: "tools/call",
			Name: "deploy \"prod\"\n\t\u2028\x01 é \xff", Allow: true, Reason: decision.Allowed, Message: "ok",
			TrustLevel: "L3", TrustScore: 32.5, PolicyID: "pol", BundleRevision: "r1", SnapshotVersion: 9, LatencyMicros: 41},
		{ID: strings.Repeat("c", 32), Kind: decision.KindDecision, Time: at, Organization: "acme", Environment: "staging",
			Reason: decision.TokenMissing, Status: 401, Message: "a \\ b"},
		{ID: strings.Repeat("d", 32), Kind: decision.KindGap, Time: at, Organization: "acme", Environment: "staging",
			Lost: 3, LostFrom: &from, LostTo: &to},
	}
	for _, r := range cases {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendRecord(nil, &r); string(got) != string(want) {
			t.Errorf("appendRecord\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendRecord(f *testing.F) {
	f.Add("ans://v1.0.0.a.example", "/mcp", "tools/call", "deploy", "msg", 1.5)
	f.Add("\xff\xfe", "<>&\u2028\u2029", "\x00\x1f\"\\", "é€😀", "", -0.0)
	f.Fuzz(func(t *testing.T, agent, path, method, name, msg string, score float64) {
		r := decision.Record{ID: strings.Repeat("e", 32), Kind: decision.KindDecision, Time: time.Unix(1, 5).UTC(),
			Organization: "acme", Environment: "production", Agent: agent, Path: path, MCPMethod: method, Name: name,
			Message: msg, Reason: decision.Replay, TrustScore: score}
		want, err := json.Marshal(r)
		if err != nil {
			return // NaN and infinities: encoding/json refuses them, the filter never makes them
		}
		if got := appendRecord(nil, &r); string(got) != string(want) {
			t.Errorf("appendRecord\n got %s\nwant %s", got, want)
		}
	})
}

package decision_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/policy"
)

var t0 = time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)

// denial is a complete record of a denied request, as the filter makes it.
func denial() decision.Record {
	return decision.Record{
		ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Kind: decision.KindDecision, Time: t0,
		Organization: "acme", Environment: "production",
		Agent: "ans://v1.0.0.deploy-bot.agents.acme.example", TokenID: "1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
		HTTPMethod: "POST", Path: "/mcp?session=3f1c", MCPMethod: "tools/call", Name: "deploy_prod",
		Allow: false, Reason: decision.ScopeMissing, Message: `role template "deployer" in production requires the scopes "mcp:deploy"`,
		Status: 403, TrustLevel: "L3", TrustScore: 71.5, PolicyID: "p-1", BundleRevision: "r7",
		SnapshotVersion: 42, LatencyMicros: 120,
	}
}

func allow() decision.Record {
	r := denial()
	r.Allow, r.Reason, r.Message, r.Status = true, decision.Allowed, "", 0
	return r
}

func gap() decision.Record {
	from, to := t0.Add(-time.Hour), t0.Add(-time.Minute)
	return decision.Record{
		ID: "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5", Kind: decision.KindGap, Time: t0,
		Organization: "acme", Environment: "production",
		Lost: 1500, LostFrom: &from, LostTo: &to,
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		rec  decision.Record
	}{
		{"denial", denial()},
		{"allow", allow()},
		{"gap", gap()},
		{"decision before any snapshot", func() decision.Record {
			r := denial()
			r.Agent, r.TokenID, r.MCPMethod, r.Name, r.TrustLevel, r.TrustScore, r.PolicyID, r.BundleRevision, r.SnapshotVersion =
				"", "", "", "", "", 0, "", "", 0
			r.Reason, r.Status = decision.SnapshotUnavailable, 503
			return r
		}()},
		{"gap without bounds", func() decision.Record { r := gap(); r.LostFrom, r.LostTo = nil, nil; return r }()},
		{"path of exactly MaxPathLen bytes", func() decision.Record {
			r := denial()
			r.Path = "/" + strings.Repeat("p", decision.MaxPathLen-1)
			return r
		}()},
		{"message of exactly MaxTextLen bytes", func() decision.Record {
			r := denial()
			r.Message = strings.Repeat("m", decision.MaxTextLen)
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.rec.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	long := strings.Repeat("x", decision.MaxTextLen+1)
	tests := []struct {
		name   string
		rec    decision.Record
		change func(r *decision.Record)
		// field is the FieldError's Field: the JSON field at fault.
		field string
	}{
		{"empty id", denial(), func(r *decision.Record) { r.ID = "" }, "id"},
		{"id of 31 digits", denial(), func(r *decision.Record) { r.ID = r.ID[:31] }, "id"},
		{"id of 33 digits", denial(), func(r *decision.Record) { r.ID += "0" }, "id"},
		{"id in upper case", denial(), func(r *decision.Record) { r.ID = strings.ToUpper(r.ID) }, "id"},
		{"id with one upper-case digit", denial(), func(r *decision.Record) { r.ID = "F" + r.ID[1:] }, "id"},
		{"id not hex", denial(), func(r *decision.Record) { r.ID = "g" + r.ID[1:] }, "id"},
		{"id as a UUID", denial(), func(r *decision.Record) { r.ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" }, "id"},
		{"zero time", denial(), func(r *decision.Record) { r.Time = time.Time{} }, "time"},
		{"gap with zero time", gap(), func(r *decision.Record) { r.Time = time.Time{} }, "time"},
		{"unknown reason", denial(), func(r *decision.Record) { r.Reason = "forbidden" }, "reason"},
		{"reason in upper case", denial(), func(r *decision.Record) { r.Reason = "SCOPE_MISSING" }, "reason"},
		{"decision without reason", denial(), func(r *decision.Record) { r.Reason = "" }, "reason"},
		{"allow with a deny reason", allow(), func(r *decision.Record) { r.Reason = decision.ScopeMissing }, "allow"},
		{"allow with the filter's deny reason", allow(), func(r *decision.Record) { r.Reason = decision.Replay }, "allow"},
		{"deny with reason allowed", denial(), func(r *decision.Record) { r.Reason = decision.Allowed }, "allow"},
		{"gap that lost nothing", gap(), func(r *decision.Record) { r.Lost = 0 }, ""},
		{"gap with a reason", gap(), func(r *decision.Record) { r.Reason = decision.InternalError }, ""},
		{"gap with reason allowed", gap(), func(r *decision.Record) { r.Reason = decision.Allowed }, ""},
		{"gap that allows", gap(), func(r *decision.Record) { r.Allow = true }, ""},
		{"decision with lost", denial(), func(r *decision.Record) { r.Lost = 1 }, "lost"},
		{"decision with lostFrom", allow(), func(r *decision.Record) { r.LostFrom = &t0 }, "lost"},
		{"decision with lostTo", denial(), func(r *decision.Record) { r.LostTo = &t0 }, "lost"},
		{"unknown kind", denial(), func(r *decision.Record) { r.Kind = "audit" }, "kind"},
		{"no kind", denial(), func(r *decision.Record) { r.Kind = "" }, "kind"},
		{"kind in upper case", gap(), func(r *decision.Record) { r.Kind = "GAP" }, "kind"},
		{"path over MaxPathLen", denial(), func(r *decision.Record) { r.Path = "/" + strings.Repeat("p", decision.MaxPathLen) }, "path"},
		{"message over MaxTextLen", denial(), func(r *decision.Record) { r.Message = long }, "message"},
		{"agent over MaxTextLen", denial(), func(r *decision.Record) { r.Agent = long }, "agent"},
		{"tool name over MaxTextLen", denial(), func(r *decision.Record) { r.Name = long }, "name"},
		{"organization over MaxTextLen", gap(), func(r *decision.Record) { r.Organization = long }, "organization"},
		{"bundle revision over MaxTextLen", allow(), func(r *decision.Record) { r.BundleRevision = long }, "bundleRevision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rec
			if err := r.Validate(); err != nil {
				t.Fatalf("the record is invalid before the change: %v", err)
			}
			tt.change(&r)
			err := r.Validate()
			var fe *decision.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate: %v, want a *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Fatalf("Validate: field %q (%v), want %q", fe.Field, err, tt.field)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
		})
	}
}

func TestReasons(t *testing.T) {
	reasons := decision.Reasons()
	seen := map[decision.Reason]bool{}
	code := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	for _, r := range reasons {
		if seen[r] {
			t.Errorf("%q is listed twice", r)
		}
		seen[r] = true
		if !r.Valid() {
			t.Errorf("%q is listed but not Valid", r)
		}
		if !code.MatchString(string(r)) {
			t.Errorf("%q is not a lower-case snake_case code", r)
		}
	}
	// The policy's reasons pass through the filter into records unchanged.
	for _, r := range policy.Reasons() {
		if !seen[decision.Reason(r)] {
			t.Errorf("policy reason %q is missing", r)
		}
	}
	for _, r := range []decision.Reason{"", "allow", "Allowed", "denied", "scope_missing "} {
		if r.Valid() {
			t.Errorf("%q is Valid", r)
		}
	}
	reasons[0] = "changed"
	if decision.Reasons()[0] == "changed" {
		t.Error("Reasons returns the package's own slice")
	}
}

func TestRecordJSONRoundTrip(t *testing.T) {
	for _, want := range []decision.Record{denial(), allow(), gap()} {
		t.Run(want.Kind+" "+string(want.Reason), func(t *testing.T) {
			b, err := json.Marshal(decision.Batch{Records: []decision.Record{want}})
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > decision.MaxRecordJSON {
				t.Fatalf("a typical record encodes to %d bytes, over MaxRecordJSON", len(b))
			}
			var got decision.Batch
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Records) != 1 || !reflect.DeepEqual(got.Records[0], want) {
				t.Fatalf("round trip of\n%+v\ngave\n%+v", want, got.Records)
			}
			if err := got.Records[0].Validate(); err != nil {
				t.Fatalf("Validate after the round trip: %v", err)
			}
		})
	}
}

// TestRecordJSONFieldNames pins the wire names of contract 2: the manager
// and the filter are built separately, so a renamed field would drop data
// silently.
func TestRecordJSONFieldNames(t *testing.T) {
	tests := []struct {
		name string
		rec  decision.Record
		want string
	}{
		{"allow leaves empty fields out", decision.Record{
			ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Kind: decision.KindDecision, Time: t0,
			Organization: "acme", Environment: "production", Allow: true, Reason: decision.Allowed,
		}, `{"id":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","kind":"decision","time":"2025-06-02T12:00:00Z",` +
			`"organization":"acme","environment":"production","allow":true,"reason":"allowed"}`},
		{"denial", denial(), `{"id":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","kind":"decision","time":"2025-06-02T12:00:00Z",` +
			`"organization":"acme","environment":"production","agent":"ans://v1.0.0.deploy-bot.agents.acme.example",` +
			`"tokenId":"1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0","httpMethod":"POST","path":"/mcp?session=3f1c",` +
			`"mcpMethod":"tools/call","name":"deploy_prod","allow":false,"reason":"scope_missing",` +
			`"message":"role template \"deployer\" in production requires the scopes \"mcp:deploy\"","status":403,` +
			`"trustLevel":"L3","trustScore":71.5,"policyId":"p-1","bundleRevision":"r7","snapshotVersion":42,"latencyUs":120}`},
		{"gap", gap(), `{"id":"a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5","kind":"gap","time":"2025-06-02T12:00:00Z",` +
			`"organization":"acme","environment":"production","allow":false,` +
			`"lost":1500,"lostFrom":"2025-06-02T11:00:00Z","lostTo":"2025-06-02T11:59:00Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("JSON\n%s\nwant\n%s", b, tt.want)
			}
		})
	}
}

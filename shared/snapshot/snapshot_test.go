package snapshot_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/snapshot"
)

var t0 = time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)

// validSnapshot returns a snapshot that uses every field, so that each
// Validate and Decode case changes exactly one thing of a valid whole.
func validSnapshot() *snapshot.Snapshot {
	retired := t0.Add(time.Hour)
	return &snapshot.Snapshot{
		Schema:         snapshot.Schema,
		Version:        42,
		Organization:   "acme",
		OrganizationID: "4b0c5e0e-7c53-4f6e-9a57-1b2f6d1c9e01",
		Environment:    policy.Production,
		IssuedAt:       t0,
		Issuer:         "https://knaight.example.com",
		TokenKeys: []snapshot.TokenKey{
			{ID: "ed_2025", Algorithm: snapshot.AlgEdDSA, Key: bytes.Repeat([]byte{1}, 32)},
			{ID: "hs_2025", Algorithm: snapshot.AlgHS256, Key: bytes.Repeat([]byte{2}, 48)},
		},
		Revocations: []snapshot.Revocation{{TokenID: "1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", ExpiresAt: t0.Add(15 * time.Minute)}},
		Agents: []snapshot.Agent{
			{
				ANSName: "ans://v1.0.0.deploy-bot.agents.acme.example", ID: "9d3f2a61-0b7e-4c1a-8e5d-6f2b7c8d9e0a",
				Status: snapshot.StatusActive, RoleTemplate: "deployer", TrustLevel: policy.L3, TrustScore: 71.5,
				Keys: []snapshot.HMACKey{
					{ID: "hk_new", Secret: bytes.Repeat([]byte{3}, 32)},
					{ID: "hk_old", Secret: bytes.Repeat([]byte{4}, 16), ExpiresAt: &retired},
				},
			},
			{
				ANSName: "ans://v1.0.0.old-bot.agents.acme.example", ID: "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5",
				Status: "SUSPENDED", RoleTemplate: "deployer", TrustLevel: policy.L1, TrustScore: 12,
			},
		},
		Bundle: snapshot.Bundle{ID: "b-7", Revision: "r7", Policies: []policy.Policy{{
			ID: "p-1", RoleTemplate: "deployer", Environment: policy.Production,
			MinTrustLevel: policy.L3, MinLoA: policy.LoAVerified,
			RequiredScopes:   []string{"mcp:tools"},
			AllowedEndpoints: []string{"tools/call:deploy_*", "tools/list"},
			Constraints: policy.Constraints{
				MaxBodyBytes: 1 << 20,
				TimeWindows:  []policy.TimeWindow{{Days: []string{"mon", "fri"}, Start: "08:00", End: "18:00"}},
			},
		}}},
		Upstream: snapshot.UpstreamKey{ID: "up_1", Secret: bytes.Repeat([]byte{5}, 32)},
		ProtectedResource: snapshot.ProtectedResource{
			AuthorizationServers:  []string{"https://knaight.example.com"},
			ScopesSupported:       []string{"mcp:tools"},
			ResourceDocumentation: "https://docs.example.com/mcp",
		},
		Settings: snapshot.Settings{ClockSkewSeconds: 300, MaxStalenessSeconds: 600},
	}
}

func TestValidateAcceptsValidSnapshots(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *snapshot.Snapshot)
	}{
		{"every field in use", func(*snapshot.Snapshot) {}},
		{"no bundle denies everything but is valid", func(s *snapshot.Snapshot) { s.Bundle = snapshot.Bundle{} }},
		{"no token keys, revocations or agents", func(s *snapshot.Snapshot) { s.TokenKeys, s.Revocations, s.Agents = nil, nil, nil }},
		{"an inactive agent keeps its trust level", func(s *snapshot.Snapshot) { s.Agents[0].Status = "REVOKED" }},
		{"an inactive agent without trust level", func(s *snapshot.Snapshot) { s.Agents[1].TrustLevel = policy.LevelNone }},
		{"the same HMAC kid in two agents", func(s *snapshot.Snapshot) { s.Agents[1].Keys = s.Agents[0].Keys[:1] }},
		{"HMAC secret of exactly 16 bytes", func(s *snapshot.Snapshot) { s.Agents[0].Keys[0].Secret = make([]byte, 16) }},
		{"HS256 key of exactly 32 bytes", func(s *snapshot.Snapshot) { s.TokenKeys[1].Key = make([]byte, 32) }},
		{"staging snapshot with staging policies", func(s *snapshot.Snapshot) {
			s.Environment, s.Bundle.Policies[0].Environment = policy.Staging, policy.Staging
		}},
		{"settings at their lower bounds", func(s *snapshot.Snapshot) {
			s.Settings = snapshot.Settings{ClockSkewSeconds: snapshot.MinClockSkewSeconds, MaxStalenessSeconds: snapshot.MinMaxStalenessSeconds}
		}},
		{"settings at their upper bounds", func(s *snapshot.Snapshot) {
			s.Settings = snapshot.Settings{ClockSkewSeconds: snapshot.MaxClockSkewSeconds, MaxStalenessSeconds: snapshot.MaxMaxStalenessSeconds}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSnapshot()
			tt.change(s)
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// What the manager validates, the filter must decode as it was.
			got, err := snapshot.Decode(encode(t, s))
			if err != nil {
				t.Fatalf("Decode(Encode(s)): %v", err)
			}
			if !reflect.DeepEqual(got, s) {
				t.Fatalf("Decode(Encode(s)) =\n%+v\nwant\n%+v", got, s)
			}
		})
	}
}

func TestValidateRejectsEachInvalidField(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *snapshot.Snapshot)
		// want is part of the error, so that a case fails for its own
		// reason and not for another field's.
		want string
	}{
		{"another schema", func(s *snapshot.Snapshot) { s.Schema = "knaight-snapshot-v2" }, "schema"},
		{"no schema", func(s *snapshot.Snapshot) { s.Schema = "" }, "schema"},
		{"version 0", func(s *snapshot.Snapshot) { s.Version = 0 }, "version is 0"},
		{"no organization slug", func(s *snapshot.Snapshot) { s.Organization = "" }, "organization"},
		{"no organization id", func(s *snapshot.Snapshot) { s.OrganizationID = "" }, "organizationId"},
		{"unknown environment", func(s *snapshot.Snapshot) { s.Environment = "prod" }, "invalid environment"},
		{"environment in upper case", func(s *snapshot.Snapshot) { s.Environment = "Production" }, "invalid environment"},
		{"no environment", func(s *snapshot.Snapshot) { s.Environment = "" }, "invalid environment"},
		{"no issuer", func(s *snapshot.Snapshot) { s.Issuer = "" }, "issuer"},
		{"token key without kid", func(s *snapshot.Snapshot) { s.TokenKeys[0].ID = "" }, "tokenKeys[0]: kid"},
		{"repeated token kid", func(s *snapshot.Snapshot) { s.TokenKeys[1].ID = s.TokenKeys[0].ID }, "tokenKeys[1]: kid"},
		{"EdDSA key of 31 bytes", func(s *snapshot.Snapshot) { s.TokenKeys[0].Key = make([]byte, 31) }, "tokenKeys[0]: EdDSA key of 31 bytes"},
		{"EdDSA key of 33 bytes", func(s *snapshot.Snapshot) { s.TokenKeys[0].Key = make([]byte, 33) }, "tokenKeys[0]: EdDSA key of 33 bytes"},
		{"EdDSA private key (64 bytes)", func(s *snapshot.Snapshot) { s.TokenKeys[0].Key = make([]byte, 64) }, "tokenKeys[0]: EdDSA key of 64 bytes"},
		{"HS256 secret of 31 bytes", func(s *snapshot.Snapshot) { s.TokenKeys[1].Key = make([]byte, 31) }, "tokenKeys[1]: HS256 key of 31 bytes"},
		{"unknown algorithm", func(s *snapshot.Snapshot) { s.TokenKeys[0].Algorithm = "RS256" }, "tokenKeys[0]: RS256 key"},
		{"algorithm in lower case", func(s *snapshot.Snapshot) { s.TokenKeys[0].Algorithm = "eddsa" }, "tokenKeys[0]: eddsa key"},
		{"alg none", func(s *snapshot.Snapshot) { s.TokenKeys[1].Algorithm = "none" }, "tokenKeys[1]: none key"},
		{"revocation without jti", func(s *snapshot.Snapshot) { s.Revocations[0].TokenID = "" }, "revocations[0]: jti is empty"},
		{"agent without ANS name", func(s *snapshot.Snapshot) { s.Agents[1].ANSName = "" }, "agents[1]: ANS name"},
		{"repeated ANS name", func(s *snapshot.Snapshot) { s.Agents[1].ANSName = s.Agents[0].ANSName }, "agents[1]: ANS name"},
		{"agent without status", func(s *snapshot.Snapshot) { s.Agents[1].Status = "" }, "agents[1]: status is empty"},
		{"ACTIVE agent without trust level", func(s *snapshot.Snapshot) { s.Agents[0].TrustLevel = policy.LevelNone }, "agents[0]: trust level"},
		{"ACTIVE agent with trust level 6", func(s *snapshot.Snapshot) { s.Agents[0].TrustLevel = policy.L5 + 1 }, "agents[0]: trust level"},
		{"inactive agent with trust level 6", func(s *snapshot.Snapshot) { s.Agents[1].TrustLevel = policy.L5 + 1 }, "agents[1]: trust level"},
		{"HMAC secret of 15 bytes", func(s *snapshot.Snapshot) { s.Agents[0].Keys[1].Secret = make([]byte, 15) }, "agents[0].keys[1]"},
		{"HMAC key without kid", func(s *snapshot.Snapshot) { s.Agents[0].Keys[0].ID = "" }, "agents[0].keys[0]"},
		{"repeated HMAC kid in one agent", func(s *snapshot.Snapshot) { s.Agents[0].Keys[1].ID = s.Agents[0].Keys[0].ID }, "agents[0].keys[1]"},
		{"policies without a bundle id", func(s *snapshot.Snapshot) { s.Bundle.ID = "" }, "bundle has policies but no id"},
		{"policy of another environment", func(s *snapshot.Snapshot) { s.Bundle.Policies[0].Environment = policy.Development }, "bundle.policies[0]: environment"},
		{"policy that does not compile", func(s *snapshot.Snapshot) { s.Bundle.Policies[0].AllowedEndpoints = nil }, "bundle: "},
		{"two policies for one role template", func(s *snapshot.Snapshot) {
			p := s.Bundle.Policies[0]
			p.ID = "p-2"
			s.Bundle.Policies = append(s.Bundle.Policies, p)
		}, "bundle: "},
		{"no upstream kid", func(s *snapshot.Snapshot) { s.Upstream.ID = "" }, "upstream"},
		{"upstream key of 31 bytes", func(s *snapshot.Snapshot) { s.Upstream.Secret = make([]byte, 31) }, "upstream"},
		{"no authorization servers", func(s *snapshot.Snapshot) { s.ProtectedResource.AuthorizationServers = nil }, "authorization_servers"},
		{"clock skew 0", func(s *snapshot.Snapshot) { s.Settings.ClockSkewSeconds = 0 }, "clockSkewSeconds 0"},
		{"negative clock skew", func(s *snapshot.Snapshot) { s.Settings.ClockSkewSeconds = -300 }, "clockSkewSeconds -300"},
		{"clock skew over an hour", func(s *snapshot.Snapshot) { s.Settings.ClockSkewSeconds = snapshot.MaxClockSkewSeconds + 1 }, "clockSkewSeconds"},
		{"staleness under 5 s", func(s *snapshot.Snapshot) { s.Settings.MaxStalenessSeconds = snapshot.MinMaxStalenessSeconds - 1 }, "maxStalenessSeconds"},
		{"staleness over a week", func(s *snapshot.Snapshot) { s.Settings.MaxStalenessSeconds = snapshot.MaxMaxStalenessSeconds + 1 }, "maxStalenessSeconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSnapshot()
			tt.change(s)
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want an error about %q", err, tt.want)
			}
			// Decode must refuse what Validate refuses.
			data, err := snapshot.Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := snapshot.Decode(data); err == nil {
				t.Fatal("Decode accepted it")
			}
		})
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	want := validSnapshot()
	data, err := snapshot.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := snapshot.Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(Encode(s)) =\n%+v\nwant\n%+v", got, want)
	}
	again, err := snapshot.Encode(got)
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("Encode is not stable: %v\n%s\n%s", err, again, data)
	}
}

// TestDecodeRejectsUnknownFields adds one field the filter does not know at
// each level of a valid snapshot: whatever it says, the filter cannot
// enforce it, so the whole snapshot is refused.
func TestDecodeRejectsUnknownFields(t *testing.T) {
	tests := []struct {
		name string
		at   func(doc map[string]any) map[string]any
	}{
		{"top level", func(d map[string]any) map[string]any { return d }},
		{"token key", func(d map[string]any) map[string]any { return elem(d, "tokenKeys", 0) }},
		{"revocation", func(d map[string]any) map[string]any { return elem(d, "revocations", 0) }},
		{"agent", func(d map[string]any) map[string]any { return elem(d, "agents", 1) }},
		{"agent's HMAC key", func(d map[string]any) map[string]any { return elem(elem(d, "agents", 0), "keys", 1) }},
		{"bundle", func(d map[string]any) map[string]any { return d["bundle"].(map[string]any) }},
		{"policy", func(d map[string]any) map[string]any { return elem(d["bundle"].(map[string]any), "policies", 0) }},
		{"policy constraints", func(d map[string]any) map[string]any {
			return elem(d["bundle"].(map[string]any), "policies", 0)["constraints"].(map[string]any)
		}},
		{"policy time window", func(d map[string]any) map[string]any {
			return elem(elem(d["bundle"].(map[string]any), "policies", 0)["constraints"].(map[string]any), "timeWindows", 0)
		}},
		{"upstream key", func(d map[string]any) map[string]any { return d["upstream"].(map[string]any) }},
		{"protected resource", func(d map[string]any) map[string]any { return d["protectedResource"].(map[string]any) }},
		{"settings", func(d map[string]any) map[string]any { return d["settings"].(map[string]any) }},
	}
	data, err := snapshot.Encode(validSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			tt.at(doc)["allowAll"] = true
			bad, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if s, err := snapshot.Decode(bad); err == nil {
				t.Fatalf("Decode accepted an unknown field: %+v", s)
			}
		})
	}
}

func elem(doc map[string]any, list string, i int) map[string]any {
	return doc[list].([]any)[i].(map[string]any)
}

func TestDecodeRejectsMalformedJSON(t *testing.T) {
	data, err := snapshot.Encode(validSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	valid := string(data)
	tests := []struct{ name, doc string }{
		{"empty", ""},
		{"null", "null"},
		{"array", "[" + valid + "]"},
		{"truncated", valid[:len(valid)-1]},
		{"trailing data", valid + "x"},
		{"two snapshots", valid + valid},
		{"version as string", strings.Replace(valid, `"version":42`, `"version":"42"`, 1)},
		{"negative version", strings.Replace(valid, `"version":42`, `"version":-42`, 1)},
		{"fractional version", strings.Replace(valid, `"version":42`, `"version":42.5`, 1)},
		{"key not base64", strings.Replace(valid, `"kid":"up_1","secret":"`, `"kid":"up_1","secret":"!`, 1)},
		{"trust level as number", strings.Replace(valid, `"trustLevel":"L3"`, `"trustLevel":3`, 1)},
		{"trust level L0", strings.Replace(valid, `"trustLevel":"L3"`, `"trustLevel":"L0"`, 1)},
		{"issuedAt not RFC 3339", strings.Replace(valid, `"issuedAt":"2025-06-02T12:00:00Z"`, `"issuedAt":"2025-06-02 12:00:00"`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.doc == valid {
				t.Fatal("the case does not change the document")
			}
			if s, err := snapshot.Decode([]byte(tt.doc)); err == nil {
				t.Fatalf("Decode accepted it: %+v", s)
			}
		})
	}
	// The replacements above must have hit: the valid document decodes.
	if _, err := snapshot.Decode(data); err != nil {
		t.Fatal(err)
	}
}

func TestSettingsDurations(t *testing.T) {
	s := snapshot.Settings{ClockSkewSeconds: 300, MaxStalenessSeconds: 3600}
	if got := s.ClockSkew(); got != 5*time.Minute {
		t.Errorf("ClockSkew() = %v, want 5m", got)
	}
	if got := s.MaxStaleness(); got != time.Hour {
		t.Errorf("MaxStaleness() = %v, want 1h", got)
	}
}

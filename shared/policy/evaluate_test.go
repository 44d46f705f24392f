package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// monday0800 is 2025-06-02 08:00 UTC, a Monday, the start of the deployer's
// production time window.
var monday0800 = time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC)

func evalPolicies() []Policy {
	return []Policy{
		{
			ID: "pol-deployer-prod", RoleTemplate: "deployer", Environment: Production,
			MinTrustLevel: L3, MinLoA: LoAVerified,
			RequiredScopes: []string{"mcp:tools", "deploy", "audit:write"},
			AllowedEndpoints: []string{
				"initialize", "notifications/*", "tools/list",
				"tools/call:deploy_*", "tools/call:status",
				"resources/read:file:///docs/*", "resources/read:https://wiki.example/a:b",
				"prompts/get:summarize",
			},
			Constraints: Constraints{
				MaxBodyBytes: 1024,
				TimeWindows: []TimeWindow{
					{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "08:00", End: "18:00"},
					{Days: []string{"sat"}, Start: "10:00", End: "12:00"},
				},
			},
		},
		{
			ID: "pol-deployer-staging", RoleTemplate: "deployer", Environment: Staging,
			MinTrustLevel: L1, MinLoA: LoASelfAsserted, AllowedEndpoints: []string{"*"},
		},
		{
			ID: "pol-reader-prod", RoleTemplate: "reader", Environment: Production,
			MinTrustLevel: L2, MinLoA: LoASelfAsserted,
			AllowedEndpoints: []string{"tools/*", "resources/read", "prompts/get:*"},
			Constraints:      Constraints{TimeWindows: []TimeWindow{{Start: "00:00", End: "24:00"}}},
		},
	}
}

func mustCompile(tb testing.TB, ps []Policy) *Set {
	tb.Helper()
	s, err := Compile(ps)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// deployerInput passes every rule of the deployer's production policy, each
// at its boundary: the minimum level and LoA, exactly the required scopes,
// the maximum body and the first minute of the window.
func deployerInput() Input {
	return Input{
		RoleTemplate: "deployer", Environment: Production,
		TrustLevel: L3, LoA: LoAVerified,
		Scopes: []string{"audit:write", "deploy", "mcp:tools"},
		Method: "tools/call", Name: "deploy_web",
		BodyBytes: 1024, Time: monday0800,
	}
}

const deployerSubject = `role template "deployer" in production`

func TestEvaluate(t *testing.T) {
	set := mustCompile(t, evalPolicies())
	tests := []struct {
		name    string
		edit    func(in *Input)
		reason  Reason
		message string // checked when not empty
		missing string
	}{
		{"request meeting every requirement exactly is allowed", func(in *Input) {}, ReasonAllowed, deployerSubject + " allows the request", ""},

		// Rule 1: a policy for the role template and environment.
		{"same role in an environment without a policy is denied", func(in *Input) { in.Environment = Development },
			ReasonPolicyMissing, `no policy for role template "deployer" in environment "development"`, ""},
		{"unknown role template is denied", func(in *Input) { in.RoleTemplate = "intruder" }, ReasonPolicyMissing, "", ""},
		{"environment differing only in case has no policy", func(in *Input) { in.Environment = "Production" },
			ReasonPolicyMissing, `no policy for role template "deployer" in environment "Production"`, ""},
		{"empty role template has no policy", func(in *Input) { in.RoleTemplate = "" }, ReasonPolicyMissing, "", ""},
		{"long role template is cut to 128 runes in the message", func(in *Input) { in.RoleTemplate = strings.Repeat("é", 200) },
			ReasonPolicyMissing, `no policy for role template "` + strings.Repeat("é", 128) + `" in environment "production"`, ""},

		// Rule 2: trust level.
		{"higher trust level is allowed", func(in *Input) { in.TrustLevel = L5 }, ReasonAllowed, "", ""},
		{"one trust level below the minimum is denied", func(in *Input) { in.TrustLevel = L2 },
			ReasonTrustBelowThreshold, deployerSubject + " requires trust level L3; the agent has L2", ""},
		{"agent without a trust level is denied", func(in *Input) { in.TrustLevel = LevelNone },
			ReasonTrustBelowThreshold, deployerSubject + " requires trust level L3; the agent has none", ""},
		{"out-of-range trust level counts as none", func(in *Input) { in.TrustLevel = 9 },
			ReasonTrustBelowThreshold, deployerSubject + " requires trust level L3; the agent has none", ""},

		// Rule 3: level of assurance.
		{"higher LoA is allowed", func(in *Input) { in.LoA = LoAVeryHigh }, ReasonAllowed, "", ""},
		{"one LoA below the minimum is denied", func(in *Input) { in.LoA = LoASelfAsserted },
			ReasonLoABelowRequired, deployerSubject + " requires LoA2; the token has LoA1", ""},
		{"token without LoA is denied", func(in *Input) { in.LoA = LoANone },
			ReasonLoABelowRequired, deployerSubject + " requires LoA2; the token has none", ""},
		{"out-of-range LoA counts as none", func(in *Input) { in.LoA = 7 },
			ReasonLoABelowRequired, deployerSubject + " requires LoA2; the token has none", ""},

		// Rule 4: scopes.
		{"extra and repeated scopes are allowed", func(in *Input) { in.Scopes = append(in.Scopes, "deploy", "other") }, ReasonAllowed, "", ""},
		{"one missing scope is named", func(in *Input) { in.Scopes = []string{"mcp:tools", "audit:write"} },
			ReasonScopeMissing, deployerSubject + ` requires the scopes "mcp:tools deploy audit:write"; the token lacks "deploy"`, "deploy"},
		{"every missing scope is named in policy order", func(in *Input) { in.Scopes = []string{"deploy"} },
			ReasonScopeMissing, deployerSubject + ` requires the scopes "mcp:tools deploy audit:write"; the token lacks "mcp:tools audit:write"`, "mcp:tools audit:write"},
		{"token without scopes lacks them all", func(in *Input) { in.Scopes = nil },
			ReasonScopeMissing, "", "mcp:tools deploy audit:write"},
		{"scopes are compared case-sensitively", func(in *Input) { in.Scopes = []string{"MCP:tools", "deploy", "audit:write"} },
			ReasonScopeMissing, "", "mcp:tools"},
		{"a scope string holding several scopes is not split", func(in *Input) { in.Scopes = []string{"mcp:tools deploy audit:write"} },
			ReasonScopeMissing, "", "mcp:tools deploy audit:write"},

		// Rule 5: endpoint.
		{"exact method is allowed", func(in *Input) { in.Method, in.Name = "tools/list", "" }, ReasonAllowed, "", ""},
		{"name is ignored for methods without one", func(in *Input) { in.Method, in.Name = "tools/list", "anything" }, ReasonAllowed, "", ""},
		{"method wildcard allows a matching method", func(in *Input) { in.Method, in.Name = "notifications/initialized", "" }, ReasonAllowed, "", ""},
		{"method wildcard needs its literal prefix", func(in *Input) { in.Method, in.Name = "notifications", "" },
			ReasonEndpointNotAllowed, deployerSubject + ` does not allow method "notifications"`, ""},
		{"unlisted method is denied", func(in *Input) { in.Method, in.Name = "tools/delete", "" },
			ReasonEndpointNotAllowed, deployerSubject + ` does not allow method "tools/delete"`, ""},
		{"empty method is denied", func(in *Input) { in.Method, in.Name = "", "" },
			ReasonEndpointNotAllowed, deployerSubject + ` does not allow method ""`, ""},
		{"methods are compared case-sensitively", func(in *Input) { in.Method, in.Name = "Tools/list", "" }, ReasonEndpointNotAllowed, "", ""},
		{"tool name glob allows an empty star", func(in *Input) { in.Name = "deploy_" }, ReasonAllowed, "", ""},
		{"tool name glob needs its literal part", func(in *Input) { in.Name = "deploy" },
			ReasonEndpointNotAllowed, deployerSubject + ` does not allow tools/call with tool name "deploy"`, ""},
		{"exact tool name is allowed", func(in *Input) { in.Name = "status" }, ReasonAllowed, "", ""},
		{"tool names are compared case-sensitively", func(in *Input) { in.Name = "Status" }, ReasonEndpointNotAllowed, "", ""},
		{"tool call without a name is denied", func(in *Input) { in.Name = "" },
			ReasonEndpointNotAllowed, deployerSubject + " does not allow tools/call without a tool name", ""},
		{"resource URI glob allows a URI below it", func(in *Input) { in.Method, in.Name = "resources/read", "file:///docs/a/b.md" }, ReasonAllowed, "", ""},
		{"resource URI outside the glob is denied", func(in *Input) { in.Method, in.Name = "resources/read", "file:///etc/passwd" },
			ReasonEndpointNotAllowed, deployerSubject + ` does not allow resources/read with resource URI "file:///etc/passwd"`, ""},
		{"resource URI with colons matches exactly", func(in *Input) { in.Method, in.Name = "resources/read", "https://wiki.example/a:b" }, ReasonAllowed, "", ""},
		{"resource URI is not a prefix match", func(in *Input) { in.Method, in.Name = "resources/read", "https://wiki.example/a:bc" }, ReasonEndpointNotAllowed, "", ""},
		{"resource read without a URI is denied", func(in *Input) { in.Method, in.Name = "resources/read", "" },
			ReasonEndpointNotAllowed, deployerSubject + " does not allow resources/read without a resource URI", ""},
		{"exact prompt name is allowed", func(in *Input) { in.Method, in.Name = "prompts/get", "summarize" }, ReasonAllowed, "", ""},
		{"other prompt is denied", func(in *Input) { in.Method, in.Name = "prompts/get", "leak" },
			ReasonEndpointNotAllowed, deployerSubject + ` does not allow prompts/get with prompt name "leak"`, ""},
		{"prompt get without a name is denied", func(in *Input) { in.Method, in.Name = "prompts/get", "" },
			ReasonEndpointNotAllowed, deployerSubject + " does not allow prompts/get without a prompt name", ""},
		{"name of another method's pattern does not carry over", func(in *Input) { in.Method, in.Name = "prompts/get", "status" }, ReasonEndpointNotAllowed, "", ""},
		{"control characters in a name are quoted in the message", func(in *Input) { in.Name = "x\n\"y" },
			ReasonEndpointNotAllowed, deployerSubject + ` does not allow tools/call with tool name "x\n\"y"`, ""},
		{"long name is cut to 128 runes in the message", func(in *Input) { in.Name = strings.Repeat("n", 1000) },
			ReasonEndpointNotAllowed, deployerSubject + ` does not allow tools/call with tool name "` + strings.Repeat("n", 128) + `"`, ""},

		// Rule 6: constraints.
		{"body one byte over the limit is denied", func(in *Input) { in.BodyBytes = 1025 },
			ReasonConstraintViolated, deployerSubject + " allows request bodies of at most 1024 bytes; the request has 1025", ""},
		{"empty body is allowed", func(in *Input) { in.BodyBytes = 0 }, ReasonAllowed, "", ""},
		{"unknown body size is denied under a limit", func(in *Input) { in.BodyBytes = -1 },
			ReasonConstraintViolated, deployerSubject + " allows request bodies of at most 1024 bytes; the request has -1", ""},
		{"last second inside the window is allowed", func(in *Input) { in.Time = monday0800.Add(10*time.Hour - time.Nanosecond) }, ReasonAllowed, "", ""},
		{"window end is outside", func(in *Input) { in.Time = monday0800.Add(10 * time.Hour) },
			ReasonConstraintViolated, deployerSubject + " allows requests only during mon,tue,wed,thu,fri 08:00-18:00 or sat 10:00-12:00 UTC; it is mon 18:00 UTC", ""},
		{"just before the window start is outside", func(in *Input) { in.Time = monday0800.Add(-time.Second) },
			ReasonConstraintViolated, deployerSubject + " allows requests only during mon,tue,wed,thu,fri 08:00-18:00 or sat 10:00-12:00 UTC; it is mon 07:59 UTC", ""},
		{"second window allows its day", func(in *Input) { in.Time = time.Date(2025, 6, 7, 11, 30, 0, 0, time.UTC) }, ReasonAllowed, "", ""},
		{"a day in no window is outside", func(in *Input) { in.Time = time.Date(2025, 6, 8, 11, 30, 0, 0, time.UTC) },
			ReasonConstraintViolated, deployerSubject + " allows requests only during mon,tue,wed,thu,fri 08:00-18:00 or sat 10:00-12:00 UTC; it is sun 11:30 UTC", ""},
		{"time is judged in UTC", func(in *Input) { in.Time = time.Date(2025, 6, 2, 9, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)) },
			ReasonConstraintViolated, deployerSubject + " allows requests only during mon,tue,wed,thu,fri 08:00-18:00 or sat 10:00-12:00 UTC; it is mon 07:30 UTC", ""},

		// Other policies of the set.
		{"catch-all pattern allows any method", func(in *Input) { in.Environment, in.Method, in.Name = Staging, "anything/at-all", "" }, ReasonAllowed, "", ""},
		{"catch-all pattern still needs a tool name", func(in *Input) { in.Environment, in.Name = Staging, "" },
			ReasonEndpointNotAllowed, `role template "deployer" in staging does not allow tools/call without a tool name`, ""},
		{"policy without constraints allows any body and time", func(in *Input) {
			in.Environment, in.BodyBytes, in.Time = Staging, 64<<20, time.Date(2025, 6, 8, 3, 0, 0, 0, time.UTC)
		}, ReasonAllowed, "", ""},
		{"method wildcard allows every tool", func(in *Input) { in.RoleTemplate, in.Name = "reader", "rm_rf" }, ReasonAllowed, "", ""},
		{"bare resources/read allows every URI", func(in *Input) {
			in.RoleTemplate, in.Method, in.Name = "reader", "resources/read", "file:///etc/passwd"
		}, ReasonAllowed, "", ""},
		{"name glob of a lone star allows every prompt", func(in *Input) { in.RoleTemplate, in.Method, in.Name = "reader", "prompts/get", "x" }, ReasonAllowed, "", ""},
		{"name glob of a lone star still needs a name", func(in *Input) { in.RoleTemplate, in.Method, in.Name = "reader", "prompts/get", "" }, ReasonEndpointNotAllowed, "", ""},
		{"whole-day window allows midnight", func(in *Input) { in.RoleTemplate, in.Time = "reader", time.Date(2025, 6, 8, 0, 0, 0, 0, time.UTC) }, ReasonAllowed, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := deployerInput()
			tt.edit(&in)
			d := set.Evaluate(&in)
			if d.Reason != tt.reason || d.Allow != (tt.reason == ReasonAllowed) {
				t.Fatalf("Evaluate = %+v, want reason %s", d, tt.reason)
			}
			if tt.message != "" && d.Message != tt.message {
				t.Errorf("message = %q\nwant      %q", d.Message, tt.message)
			}
			if d.MissingScopes != tt.missing {
				t.Errorf("missing scopes = %q, want %q", d.MissingScopes, tt.missing)
			}
			wantID := map[string]string{"deployer/production": "pol-deployer-prod", "deployer/staging": "pol-deployer-staging", "reader/production": "pol-reader-prod"}[in.RoleTemplate+"/"+string(in.Environment)]
			if d.PolicyID != wantID {
				t.Errorf("policy id = %q, want %q", d.PolicyID, wantID)
			}
			if ref := referenceEvaluate(evalPolicies(), &in); d != ref {
				t.Errorf("reference evaluator disagrees:\n got %+v\nwant %+v", d, ref)
			}
		})
	}
}

// TestEvaluateRuleOrder breaks two rules at a time: the earlier rule's reason
// must win, whatever else is wrong.
func TestEvaluateRuleOrder(t *testing.T) {
	set := mustCompile(t, evalPolicies())
	breaks := []struct {
		reason Reason
		edit   func(in *Input)
	}{
		{ReasonPolicyMissing, func(in *Input) { in.Environment = Development }},
		{ReasonTrustBelowThreshold, func(in *Input) { in.TrustLevel = L2 }},
		{ReasonLoABelowRequired, func(in *Input) { in.LoA = LoASelfAsserted }},
		{ReasonScopeMissing, func(in *Input) { in.Scopes = []string{"mcp:tools"} }},
		{ReasonEndpointNotAllowed, func(in *Input) { in.Name = "drop_database" }},
		{ReasonConstraintViolated, func(in *Input) { in.BodyBytes = 4096 }},               // body size ...
		{ReasonConstraintViolated, func(in *Input) { in.Time = in.Time.Add(-time.Hour) }}, // ... before the window
	}
	for i, first := range breaks {
		for _, later := range breaks[i+1:] {
			in := deployerInput()
			first.edit(&in)
			later.edit(&in)
			d := set.Evaluate(&in)
			if d.Reason != first.reason {
				t.Errorf("%s and %s both broken: got %s (%s)", first.reason, later.reason, d.Reason, d.Message)
			}
		}
	}
	// Body size is checked before the time window: the message says which.
	in := deployerInput()
	in.BodyBytes, in.Time = 4096, in.Time.Add(-time.Hour)
	if d := set.Evaluate(&in); !strings.Contains(d.Message, "request bodies") {
		t.Errorf("body and window broken: message %q should name the body size", d.Message)
	}
	// Everything broken at once: the policy is found, so trust decides.
	in = Input{RoleTemplate: "deployer", Environment: Production, Method: "x", BodyBytes: -5}
	if d := set.Evaluate(&in); d.Reason != ReasonTrustBelowThreshold {
		t.Errorf("everything broken: got %s", d.Reason)
	}
}

func TestEvaluateWithoutSetOrInputDenies(t *testing.T) {
	var none *Set
	in := deployerInput()
	for name, d := range map[string]Decision{
		"nil set":   none.Evaluate(&in),
		"empty set": mustCompile(t, nil).Evaluate(&in),
		"nil input": mustCompile(t, evalPolicies()).Evaluate(nil),
	} {
		if d.Allow || d.Reason != ReasonPolicyMissing || d.PolicyID != "" {
			t.Errorf("%s: %+v, want a policy_missing deny", name, d)
		}
	}
}

func TestCompileKeepsNoReferenceToItsInput(t *testing.T) {
	ps := evalPolicies()
	set := mustCompile(t, ps)
	ps[0].RequiredScopes[0] = "changed"
	ps[0].AllowedEndpoints[3] = "tools/call:other"
	ps[0].Constraints.TimeWindows[0].Days[0] = "sun"
	in := deployerInput()
	if d := set.Evaluate(&in); !d.Allow {
		t.Fatalf("editing the policies after Compile changed the Set: %+v", d)
	}
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(ps []Policy) []Policy
		fields []string
	}{
		{"valid policies compile", func(ps []Policy) []Policy { return ps }, nil},
		{"no policies compile to an empty set", func(ps []Policy) []Policy { return nil }, nil},
		{"policies without ids compile", func(ps []Policy) []Policy {
			for i := range ps {
				ps[i].ID = ""
			}
			return ps
		}, nil},
		{"invalid policies are reported with their index", func(ps []Policy) []Policy {
			ps[0].MinLoA = 9
			ps[2].AllowedEndpoints = []string{"tools/list", "tools/list:x"}
			ps[2].Constraints.TimeWindows[0].End = "25:00"
			return ps
		}, []string{"[0].minLoa", "[2].allowedEndpoints[1]", "[2].constraints.timeWindows[0].end"}},
		{"empty policy reports every required field under its index", func(ps []Policy) []Policy { return append(ps, Policy{}) },
			[]string{"[3].roleTemplate", "[3].environment", "[3].minTrustLevel", "[3].minLoa", "[3].allowedEndpoints"}},
		{"second policy for the same role and environment is rejected", func(ps []Policy) []Policy {
			dup := evalPolicies()[1]
			dup.ID = "pol-other"
			return append(ps, dup)
		}, []string{"[3]"}},
		{"repeated policy id is rejected", func(ps []Policy) []Policy {
			ps[2].ID = ps[0].ID
			return ps
		}, []string{"[2].id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Compile(tt.edit(evalPolicies()))
			if got := validationFields(t, err); !equalStrings(got, tt.fields) {
				t.Fatalf("fields = %q, want %q (error: %v)", got, tt.fields, err)
			}
			if (err == nil) != (set != nil) {
				t.Fatalf("Compile = %v, %v: want a Set or an error", set, err)
			}
		})
	}

	_, err := Compile(append(evalPolicies(), evalPolicies()[0]))
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("duplicate: %v", err)
	}
	if fe := ve.Errors[0]; fe.Message != "duplicates [0]: one policy per role template and environment" {
		t.Errorf("duplicate message = %q", fe.Message)
	}
}

func TestInputJSONShape(t *testing.T) {
	in := deployerInput()
	in.Time = time.Date(2026, 11, 23, 11, 0, 0, 500, time.FixedZone("CET", 3600))
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"roleTemplate":"deployer","environment":"production","trustLevel":"L3","loa":2,` +
		`"scopes":["audit:write","deploy","mcp:tools"],"method":"tools/call","name":"deploy_web","bodyBytes":1024,` +
		`"time":"2026-11-23T10:00:00.0000005Z"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}

	b, err = json.Marshal(&Input{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"roleTemplate":"","environment":"","trustLevel":"none","loa":0,"scopes":[],"method":"","name":"","bodyBytes":0,"time":"2026-01-01T00:00:00Z"}`; string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestDecisionJSONShape(t *testing.T) {
	set := mustCompile(t, evalPolicies())
	in := deployerInput()
	in.Scopes = nil
	b, err := json.Marshal(set.Evaluate(&in))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"allow":false,"reason":"scope_missing","message":"role template \"deployer\" in production requires the scopes \"mcp:tools deploy audit:write\"; the token lacks \"mcp:tools deploy audit:write\"","policyId":"pol-deployer-prod","missingScopes":"mcp:tools deploy audit:write"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	in = deployerInput()
	b, _ = json.Marshal(set.Evaluate(&in))
	if want := `{"allow":true,"reason":"allowed","message":"role template \"deployer\" in production allows the request","policyId":"pol-deployer-prod","missingScopes":""}`; string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestReasonsAreClosedAndFresh(t *testing.T) {
	rs := Reasons()
	want := []Reason{"allowed", "policy_missing", "trust_below_threshold", "loa_below_required", "scope_missing", "endpoint_not_allowed", "constraint_violated"}
	if !slices.Equal(rs, want) {
		t.Fatalf("Reasons() = %q", rs)
	}
	rs[0] = "changed"
	if Reasons()[0] != ReasonAllowed {
		t.Fatal("Reasons() shares its slice")
	}
}

// allowInputs reach the allow path through each kind of lookup.
func allowInputs() []Input {
	var ins []Input
	for _, mn := range [][2]string{
		{"tools/call", "deploy_web"},                  // name glob
		{"tools/call", "status"},                      // exact name
		{"tools/list", ""},                            // exact method
		{"notifications/initialized", ""},             // method glob
		{"resources/read", "file:///docs/guide/a.md"}, // URI glob
	} {
		in := deployerInput()
		in.Method, in.Name = mn[0], mn[1]
		ins = append(ins, in)
	}
	return ins
}

func TestEvaluateAllowDoesNotAllocate(t *testing.T) {
	set := mustCompile(t, evalPolicies())
	for _, in := range allowInputs() {
		allocs := testing.AllocsPerRun(100, func() {
			if !set.Evaluate(&in).Allow {
				t.Fatalf("%s %s denied", in.Method, in.Name)
			}
		})
		if allocs != 0 {
			t.Errorf("allowing %s %q allocates %v times per call, want 0", in.Method, in.Name, allocs)
		}
	}
}

// referenceEvaluate is docs/policy.md transcribed as directly as possible,
// with no lookup structures and no precomputation: the compiled Set must
// always agree with it, message included.
func referenceEvaluate(policies []Policy, in *Input) Decision {
	if in == nil {
		in = &Input{}
	}
	var p *Policy
	for i := range policies {
		if policies[i].RoleTemplate == in.RoleTemplate && policies[i].Environment == in.Environment {
			p = &policies[i]
		}
	}
	if p == nil {
		return Decision{Reason: ReasonPolicyMissing, Message: fmt.Sprintf("no policy for role template %.128q in environment %.128q", in.RoleTemplate, string(in.Environment))}
	}
	subject := fmt.Sprintf("role template %q in %s", p.RoleTemplate, p.Environment)
	deny := func(r Reason, msg string) Decision {
		return Decision{Reason: r, Message: subject + msg, PolicyID: p.ID}
	}

	rank, level := 0, "none"
	if in.TrustLevel >= 1 && in.TrustLevel <= 5 {
		rank, level = int(in.TrustLevel), fmt.Sprintf("L%d", in.TrustLevel)
	}
	if rank < int(p.MinTrustLevel) {
		return deny(ReasonTrustBelowThreshold, fmt.Sprintf(" requires trust level L%d; the agent has %s", p.MinTrustLevel, level))
	}
	rank, level = 0, "none"
	if in.LoA >= 1 && in.LoA <= 4 {
		rank, level = int(in.LoA), fmt.Sprintf("LoA%d", in.LoA)
	}
	if rank < int(p.MinLoA) {
		return deny(ReasonLoABelowRequired, fmt.Sprintf(" requires LoA%d; the token has %s", p.MinLoA, level))
	}
	var missing []string
	for _, s := range p.RequiredScopes {
		if !slices.Contains(in.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		d := deny(ReasonScopeMissing, fmt.Sprintf(" requires the scopes %q; the token lacks %q", strings.Join(p.RequiredScopes, " "), strings.Join(missing, " ")))
		d.MissingScopes = strings.Join(missing, " ")
		return d
	}
	noun, named := map[string]string{"tools/call": "tool name", "resources/read": "resource URI", "prompts/get": "prompt name"}[in.Method]
	if named && in.Name == "" {
		return deny(ReasonEndpointNotAllowed, fmt.Sprintf(" does not allow %s without a %s", in.Method, noun))
	}
	allowed := false
	for _, s := range p.AllowedEndpoints {
		e, err := ParseEndpoint(s)
		if err != nil {
			panic(err)
		}
		allowed = allowed || e.Match(in.Method, in.Name)
	}
	if !allowed {
		if named {
			return deny(ReasonEndpointNotAllowed, fmt.Sprintf(" does not allow %s with %s %.128q", in.Method, noun, in.Name))
		}
		return deny(ReasonEndpointNotAllowed, fmt.Sprintf(" does not allow method %.128q", in.Method))
	}
	if max := p.Constraints.MaxBodyBytes; max > 0 && (in.BodyBytes < 0 || in.BodyBytes > max) {
		return deny(ReasonConstraintViolated, fmt.Sprintf(" allows request bodies of at most %d bytes; the request has %d", max, in.BodyBytes))
	}
	if ws := p.Constraints.TimeWindows; len(ws) > 0 {
		inside := false
		var texts []string
		for _, w := range ws {
			inside = inside || w.Contains(in.Time)
			days := "daily"
			if len(w.Days) > 0 {
				days = strings.Join(w.Days, ",")
			}
			texts = append(texts, days+" "+w.Start+"-"+w.End)
		}
		if !inside {
			t := in.Time.UTC()
			day := strings.ToLower(t.Weekday().String()[:3])
			return deny(ReasonConstraintViolated, fmt.Sprintf(" allows requests only during %s UTC; it is %s %02d:%02d UTC", strings.Join(texts, " or "), day, t.Hour(), t.Minute()))
		}
	}
	return Decision{Allow: true, Reason: ReasonAllowed, Message: subject + " allows the request", PolicyID: p.ID}
}

func FuzzEvaluate(f *testing.F) {
	f.Add("deployer", uint8(3), uint8(2), "mcp:tools deploy", "tools/list\ntools/call:deploy_*\nresources/read:file:///*", int64(1024), "mon,fri 09:00 17:00",
		true, uint8(2), uint8(3), uint8(2), "deploy mcp:tools", "tools/call", "deploy_x", int64(10), int64(1748854800))
	f.Add("r", uint8(1), uint8(1), "", "*", int64(0), "", true, uint8(2), uint8(0), uint8(0), "", "tools/call", "", int64(-1), int64(0))
	f.Add("r", uint8(5), uint8(4), "a b c", "notifications/*\nprompts/get:x*y", int64(1), "00:00 24:00\nsun 23:59 24:00",
		false, uint8(1), uint8(9), uint8(200), "c a", "prompts/get", "xay", int64(2), int64(-62135596800))
	f.Fuzz(func(t *testing.T, role string, minTrust, minLoA uint8, scopes, endpoints string, maxBody int64, windows string,
		sameRole bool, env, trust, loa uint8, held, method, name string, body, unix int64) {
		p := Policy{
			ID: "fuzzed", RoleTemplate: role, Environment: Production,
			MinTrustLevel: TrustLevel(minTrust), MinLoA: LoA(minLoA),
			RequiredScopes: strings.Fields(scopes), AllowedEndpoints: strings.Split(endpoints, "\n"),
			Constraints: Constraints{MaxBodyBytes: maxBody},
		}
		for line := range strings.SplitSeq(windows, "\n") {
			switch fs := strings.Fields(line); len(fs) {
			case 2:
				p.Constraints.TimeWindows = append(p.Constraints.TimeWindows, TimeWindow{Start: fs[0], End: fs[1]})
			case 3:
				p.Constraints.TimeWindows = append(p.Constraints.TimeWindows, TimeWindow{Days: strings.Split(fs[0], ","), Start: fs[1], End: fs[2]})
			}
		}
		policies := []Policy{p, {ID: "fixed", RoleTemplate: "fixed", Environment: Staging, MinTrustLevel: L1, MinLoA: LoASelfAsserted, AllowedEndpoints: []string{"*"}}}
		set, err := Compile(policies)
		if err != nil {
			if validationFields(t, err) == nil {
				t.Fatal("Compile failed without fields")
			}
			return
		}
		in := Input{
			RoleTemplate: "fixed", Environment: Environments()[int(env)%3],
			TrustLevel: TrustLevel(trust), LoA: LoA(loa), Scopes: strings.Fields(held),
			Method: method, Name: name, BodyBytes: body, Time: time.Unix(unix, 0),
		}
		if sameRole {
			in.RoleTemplate = role
		}
		d := set.Evaluate(&in)
		if d.Allow != (d.Reason == ReasonAllowed) {
			t.Fatalf("allow %v with reason %s", d.Allow, d.Reason)
		}
		if !slices.Contains(Reasons(), d.Reason) {
			t.Fatalf("reason %q is not in Reasons()", d.Reason)
		}
		if (d.MissingScopes != "") != (d.Reason == ReasonScopeMissing) || (d.PolicyID == "") != (d.Reason == ReasonPolicyMissing) || d.Message == "" {
			t.Fatalf("inconsistent decision %+v", d)
		}
		if ref := referenceEvaluate(policies, &in); d != ref {
			t.Fatalf("Set and reference disagree on %+v:\n  set %+v\n  ref %+v", in, d, ref)
		}
	})
}

// benchPolicies are a realistic organization: three role templates in
// three environments, 10 to 20 endpoint patterns each, scopes and windows.
func benchPolicies() []Policy {
	var ps []Policy
	for _, role := range []string{"assistant", "deployer", "auditor"} {
		for i, env := range Environments() {
			eps := []string{"initialize", "ping", "notifications/*", "tools/list", "resources/list", "resources/templates/list", "prompts/list"}
			for j := range 2 + 4*i {
				eps = append(eps, fmt.Sprintf("tools/call:%s_tool_%d", role, j))
			}
			eps = append(eps, "tools/call:"+role+"_*", "resources/read:file:///srv/"+role+"/*/docs/*", "resources/read:https://wiki.example/"+role+"/*", "prompts/get:summarize_*")
			ps = append(ps, Policy{
				ID: role + "-" + string(env), RoleTemplate: role, Environment: env,
				MinTrustLevel: TrustLevel(i + 2), MinLoA: LoA(i + 1),
				RequiredScopes:   []string{"mcp:tools", "mcp:resources", role},
				AllowedEndpoints: eps,
				Constraints: Constraints{MaxBodyBytes: 1 << 20, TimeWindows: []TimeWindow{
					{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "06:00", End: "22:00"},
					{Days: []string{"sat", "sun"}, Start: "10:00", End: "14:00"},
				}},
			})
		}
	}
	return ps
}

func benchInput() Input {
	return Input{
		RoleTemplate: "deployer", Environment: Production, TrustLevel: L4, LoA: LoAStrong,
		Scopes: []string{"openid", "mcp:tools", "mcp:resources", "deployer"},
		Method: "tools/call", Name: "deployer_rollout", BodyBytes: 2048, Time: monday0800,
	}
}

var decisionSink Decision

func BenchmarkEvaluateAllow(b *testing.B) {
	ps := benchPolicies()
	set := mustCompile(b, ps)
	for _, c := range []struct{ name, method, tool string }{
		{"exact-method", "tools/list", ""},
		{"exact-name", "tools/call", "deployer_tool_9"},
		{"name-glob", "tools/call", "deployer_rollout"},
		{"uri-glob", "resources/read", "file:///srv/deployer/app/docs/runbook.md"},
	} {
		in := benchInput()
		in.Method, in.Name = c.method, c.tool
		if !set.Evaluate(&in).Allow {
			b.Fatalf("%s is denied", c.name)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				decisionSink = set.Evaluate(&in)
			}
		})
	}
	// Baseline in the same run: the reference evaluator, which finds the
	// policy by scanning, parses every pattern and formats its messages on
	// each call: what compiling once per snapshot saves.
	b.Run("baseline-reference", func(b *testing.B) {
		in := benchInput()
		b.ReportAllocs()
		for b.Loop() {
			decisionSink = referenceEvaluate(ps, &in)
		}
	})
}

func BenchmarkEvaluateDeny(b *testing.B) {
	set := mustCompile(b, benchPolicies())
	for _, c := range []struct {
		reason Reason
		edit   func(in *Input)
	}{
		{ReasonPolicyMissing, func(in *Input) { in.RoleTemplate = "intruder" }},
		{ReasonTrustBelowThreshold, func(in *Input) { in.TrustLevel = L2 }},
		{ReasonScopeMissing, func(in *Input) { in.Scopes = in.Scopes[:2] }},
		{ReasonEndpointNotAllowed, func(in *Input) { in.Name = "drop_database" }},
		{ReasonConstraintViolated, func(in *Input) { in.Time = in.Time.Add(-3 * time.Hour) }},
	} {
		in := benchInput()
		c.edit(&in)
		if d := set.Evaluate(&in); d.Reason != c.reason {
			b.Fatalf("got %s, want %s", d.Reason, c.reason)
		}
		b.Run(string(c.reason), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				decisionSink = set.Evaluate(&in)
			}
		})
	}
}

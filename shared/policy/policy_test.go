package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func validPolicy() Policy {
	return Policy{
		ID:               "pol-1",
		RoleTemplate:     "deployer",
		Environment:      Production,
		MinTrustLevel:    L3,
		MinLoA:           LoAStrong,
		RequiredScopes:   []string{"mcp:tools", "deploy"},
		AllowedEndpoints: []string{"initialize", "notifications/*", "tools/list", "tools/call:deploy_*", "resources/read:file:///docs/*"},
		Constraints: Constraints{
			MaxBodyBytes: 1 << 20,
			TimeWindows:  []TimeWindow{{Days: []string{"mon", "tue"}, Start: "09:00", End: "17:00"}},
		},
	}
}

func fieldsOf(errs []FieldError) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Field)
	}
	return out
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }

func validationFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("error %v does not wrap ErrInvalidPolicy", err)
	}
	if len(ve.Errors) == 0 {
		t.Fatal("ValidationError with no errors")
	}
	return fieldsOf(ve.Errors)
}

func TestValidate(t *testing.T) {
	many := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return out
	}
	tests := []struct {
		name   string
		edit   func(p *Policy)
		fields []string
	}{
		{"complete policy is valid", func(p *Policy) {}, nil},
		{"policy without id, scopes or constraints is valid", func(p *Policy) {
			p.ID, p.RequiredScopes, p.Constraints = "", nil, Constraints{}
		}, nil},
		{"catch-all endpoint is valid", func(p *Policy) { p.AllowedEndpoints = []string{"*"} }, nil},
		{"limits themselves are valid", func(p *Policy) {
			p.RoleTemplate = strings.Repeat("r", MaxRoleTemplateLen)
			p.RequiredScopes = many("s", MaxScopes)
			p.AllowedEndpoints = many("m", MaxEndpoints)
			p.Constraints.MaxBodyBytes = MaxBodyBytesLimit
			p.Constraints.TimeWindows = make([]TimeWindow, MaxTimeWindows)
			for i := range p.Constraints.TimeWindows {
				p.Constraints.TimeWindows[i] = TimeWindow{Start: "00:00", End: "24:00"}
			}
		}, nil},

		{"zero policy reports every required field", func(p *Policy) { *p = Policy{} },
			[]string{"roleTemplate", "environment", "minTrustLevel", "minLoa", "allowedEndpoints"}},
		{"several problems are reported at once with exact paths", func(p *Policy) {
			p.Environment = "prod"
			p.MinLoA = 5
			p.RequiredScopes = []string{"ok", "has space", "ok", ""}
			p.AllowedEndpoints = []string{"tools/list", "tools/list:x", "tools/list", "tools/call:deploy"}
			p.Constraints.MaxBodyBytes = -1
			p.Constraints.TimeWindows = []TimeWindow{
				{Start: "09:00", End: "17:00"},
				{Days: []string{"mon", "xyz"}, Start: "25:00", End: "08:00"},
			}
		}, []string{
			"environment", "minLoa",
			"requiredScopes[1]", "requiredScopes[2]", "requiredScopes[3]",
			"allowedEndpoints[1]", "allowedEndpoints[2]",
			"constraints.maxBodyBytes",
			"constraints.timeWindows[1].days[1]", "constraints.timeWindows[1].start",
		}},
		{"trust level out of range is rejected", func(p *Policy) { p.MinTrustLevel = 6 }, []string{"minTrustLevel"}},
		{"long role template is rejected", func(p *Policy) { p.RoleTemplate = strings.Repeat("r", MaxRoleTemplateLen+1) }, []string{"roleTemplate"}},
		{"role template with control character is rejected", func(p *Policy) { p.RoleTemplate = "a\tb" }, []string{"roleTemplate"}},
		{"role template with surrounding space is rejected", func(p *Policy) { p.RoleTemplate = "deployer " }, []string{"roleTemplate"}},
		{"role template with invalid UTF-8 is rejected", func(p *Policy) { p.RoleTemplate = "a\xff" }, []string{"roleTemplate"}},
		{"id with control character is rejected", func(p *Policy) { p.ID = "x\n" }, []string{"id"}},
		{"scope with quote or backslash is rejected", func(p *Policy) { p.RequiredScopes = []string{`a"b`, `a\b`, "é"} },
			[]string{"requiredScopes[0]", "requiredScopes[1]", "requiredScopes[2]"}},
		{"scope with every allowed character is valid", func(p *Policy) { p.RequiredScopes = []string{"!#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~"} }, nil},
		{"overlong scope is rejected", func(p *Policy) { p.RequiredScopes = []string{strings.Repeat("s", MaxScopeLen+1)} }, []string{"requiredScopes[0]"}},
		{"too many scopes are reported once", func(p *Policy) { p.RequiredScopes = append(many("s", MaxScopes), "") }, []string{"requiredScopes"}},
		{"empty endpoint list is rejected", func(p *Policy) { p.AllowedEndpoints = []string{} }, []string{"allowedEndpoints"}},
		{"too many endpoints are reported once", func(p *Policy) { p.AllowedEndpoints = many("m", MaxEndpoints+1) }, []string{"allowedEndpoints"}},
		{"body limit over 64 MiB is rejected", func(p *Policy) { p.Constraints.MaxBodyBytes = MaxBodyBytesLimit + 1 }, []string{"constraints.maxBodyBytes"}},
		{"too many time windows are reported once", func(p *Policy) {
			p.Constraints.TimeWindows = make([]TimeWindow, MaxTimeWindows+1)
		}, []string{"constraints.timeWindows"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPolicy()
			tt.edit(&p)
			got := validationFields(t, p.Validate())
			if !equalStrings(got, tt.fields) {
				t.Fatalf("fields = %q\nwant     %q\nerror: %v", got, tt.fields, p.Validate())
			}
		})
	}
}

func TestValidateNilPolicy(t *testing.T) {
	var p *Policy
	if got := validationFields(t, p.Validate()); !equalStrings(got, []string{""}) {
		t.Fatalf("fields = %q", got)
	}
}

func TestValidationErrorDetails(t *testing.T) {
	p := validPolicy()
	p.AllowedEndpoints = []string{"tools/call", "tools/list:x", "tools/call"}
	err := p.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	want := []FieldError{
		{Field: "allowedEndpoints[1]", Message: "invalid endpoint pattern: a ':name' is only allowed after tools/call, resources/read or prompts/get", Value: "tools/list:x"},
		{Field: "allowedEndpoints[2]", Message: "duplicates allowedEndpoints[0]", Value: "tools/call"},
	}
	if !slices.Equal(ve.Errors, want) {
		t.Fatalf("errors = %+v\nwant %+v", ve.Errors, want)
	}
	msg := err.Error()
	for _, s := range []string{"invalid policy", "allowedEndpoints[1]:", "allowedEndpoints[2]: duplicates"} {
		if !strings.Contains(msg, s) {
			t.Errorf("Error() = %q, missing %q", msg, s)
		}
	}
}

func TestValidationErrorMessageIsBounded(t *testing.T) {
	var errs []FieldError
	for i := range 25 {
		errs = append(errs, FieldError{Field: fmt.Sprintf("f%d", i), Message: "bad"})
	}
	msg := (&ValidationError{Errors: errs}).Error()
	if !strings.HasSuffix(msg, "; and 15 more") || strings.Contains(msg, "f10:") {
		t.Fatalf("Error() = %q", msg)
	}
}

func TestPolicyJSONShape(t *testing.T) {
	b, err := json.Marshal(validPolicy())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":"pol-1","roleTemplate":"deployer","environment":"production","minTrustLevel":"L3","minLoa":3,` +
		`"requiredScopes":["mcp:tools","deploy"],` +
		`"allowedEndpoints":["initialize","notifications/*","tools/list","tools/call:deploy_*","resources/read:file:///docs/*"],` +
		`"constraints":{"maxBodyBytes":1048576,"timeWindows":[{"days":["mon","tue"],"start":"09:00","end":"17:00"}]}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}

	back, err := ParsePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := json.Marshal(back); string(b2) != want {
		t.Fatalf("round trip changed the policy:\n%s", b2)
	}

	// Empty lists are written as [] and empty constraints as {}, not null.
	b, err = json.Marshal(&Policy{RoleTemplate: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"roleTemplate":"r","environment":"","minTrustLevel":"none","minLoa":0,"requiredScopes":[],"allowedEndpoints":[],"constraints":{}}`; string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestParsePolicy(t *testing.T) {
	const base = `"roleTemplate":"deployer","environment":"staging","minTrustLevel":"L2","minLoa":2,"allowedEndpoints":["tools/list"]`
	tests := []struct {
		name   string
		doc    string
		fields []string // nil: valid
	}{
		{"minimal document is valid", `{` + base + `}`, nil},
		{"null lists and constraints count as absent", `{` + base + `,"id":null,"requiredScopes":null,"constraints":null}`, nil},
		{"empty constraints object is valid", `{` + base + `,"constraints":{"timeWindows":[]}}`, nil},

		{"unknown top-level key is rejected", `{` + base + `,"maxBodyBytes":10}`, []string{"maxBodyBytes"}},
		{"key names are case-sensitive", `{` + base + `,"RoleTemplate":"x"}`, []string{"RoleTemplate"}},
		{"unknown constraint key is rejected", `{` + base + `,"constraints":{"allowedOrigins":["x"]}}`, []string{"constraints.allowedOrigins"}},
		{"unknown time window key is rejected", `{` + base + `,"constraints":{"timeWindows":[{"start":"09:00","end":"10:00","tz":"CET"}]}}`, []string{"constraints.timeWindows[0].tz"}},
		{"repeated key is rejected", `{` + base + `,"minTrustLevel":"L1"}`, []string{"minTrustLevel"}},
		{"wrong types are all reported with paths", `{"roleTemplate":1,"environment":"staging","minTrustLevel":3,"minLoa":"2","allowedEndpoints":["tools/list",7,"x:y"],"requiredScopes":"a","constraints":{"maxBodyBytes":1.5,"timeWindows":[{"days":"mon","start":900,"end":"10:00"}]}}`,
			[]string{"roleTemplate", "minTrustLevel", "minLoa", "allowedEndpoints[1]", "requiredScopes",
				"constraints.maxBodyBytes", "constraints.timeWindows[0].days", "constraints.timeWindows[0].start",
				// validation problems of fields that did decode come after
				"allowedEndpoints[2]"}},
		{"unknown trust level is a decoding error once", `{` + strings.Replace(base, `"L2"`, `"L9"`, 1) + `}`, []string{"minTrustLevel"}},
		{"out-of-range LoA is a decoding error once", `{` + strings.Replace(base, `"minLoa":2`, `"minLoa":300`, 1) + `}`, []string{"minLoa"}},
		{"null element in a list is rejected", `{` + base + `,"requiredScopes":["a",null]}`, []string{"requiredScopes[1]"}},
		{"time window that is not an object is rejected", `{` + base + `,"constraints":{"timeWindows":["09:00-10:00"]}}`, []string{"constraints.timeWindows[0]"}},
		{"missing fields are reported by validation", `{"roleTemplate":"r"}`, []string{"environment", "minTrustLevel", "minLoa", "allowedEndpoints"}},
		{"array document is one error about the document", `[]`, []string{""}},
		{"null document reports every required field", `null`, []string{"roleTemplate", "environment", "minTrustLevel", "minLoa", "allowedEndpoints"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.doc))
			got := validationFields(t, err)
			if !equalStrings(got, tt.fields) {
				t.Fatalf("fields = %q\nwant     %q\nerror: %v", got, tt.fields, err)
			}
			if err != nil && !isZeroPolicy(p) {
				t.Errorf("ParsePolicy returned %+v along with an error", p)
			}
		})
	}
}

func isZeroPolicy(p Policy) bool {
	return p.ID == "" && p.RoleTemplate == "" && p.Environment == "" && p.MinTrustLevel == 0 && p.MinLoA == 0 &&
		p.RequiredScopes == nil && p.AllowedEndpoints == nil && p.Constraints.MaxBodyBytes == 0 && p.Constraints.TimeWindows == nil
}

func TestParsePolicyRejectsMalformedJSON(t *testing.T) {
	for _, doc := range []string{``, `{`, `{"roleTemplate":"r"} x`, `{'a':1}`} {
		_, err := ParsePolicy([]byte(doc))
		var ve *ValidationError
		if !errors.Is(err, ErrInvalidPolicy) || errors.As(err, &ve) {
			t.Errorf("ParsePolicy(%q) = %v; want a plain error wrapping ErrInvalidPolicy", doc, err)
		}
	}
}

func TestDecodeErrorValueIsTheRawJSONValue(t *testing.T) {
	_, err := ParsePolicy([]byte(`{"roleTemplate":"r","environment":"staging","minTrustLevel":"L2","minLoa":12345678901234567890,"allowedEndpoints":["*"],"constraints":{"x":{"a":[1]}}}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Fatalf("got %v", err)
	}
	if v, _ := json.Marshal(ve.Errors); string(v) != `[{"field":"minLoa","message":"must be an integer from 1 (self-asserted) to 4 (very high)","value":12345678901234567890},{"field":"constraints.x","message":"unknown field (names are case-sensitive)","value":{"a":[1]}}]` {
		t.Fatalf("errors JSON = %s", v)
	}
}

func TestUnmarshalInsideALargerDocument(t *testing.T) {
	var bundle struct {
		Policies []Policy `json:"policies"`
	}
	err := json.Unmarshal([]byte(`{"policies":[{"roleTemplate":"r","constraints":{"bogus":1}}]}`), &bundle)
	if got := validationFields(t, err); !equalStrings(got, []string{"constraints.bogus"}) {
		t.Fatalf("fields = %q", got)
	}
	var c Constraints
	err = json.Unmarshal([]byte(`{"maxBodyBytes":5,"timeWindows":[{"start":"01:00","end":"02:00","x":1}]}`), &c)
	if got := validationFields(t, err); !equalStrings(got, []string{"timeWindows[0].x"}) {
		t.Fatalf("fields = %q", got)
	}
	var w TimeWindow
	if err := json.Unmarshal([]byte(`{"days":["mon"],"start":"01:00","end":"02:00"}`), &w); err != nil || w.Start != "01:00" || !slices.Equal(w.Days, []string{"mon"}) {
		t.Fatalf("TimeWindow decode = %+v, %v", w, err)
	}
}

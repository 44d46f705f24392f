package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits enforced by Validate. They keep a policy small enough to evaluate
// per request in the filter and to report errors about in one response.
const (
	MaxIDLen           = 128
	MaxRoleTemplateLen = 128
	MaxScopes          = 64
	MaxScopeLen        = 256
	MaxEndpoints       = 256
	MaxTimeWindows     = 32
	MaxBodyBytesLimit  = 64 << 20 // 64 MiB, the largest MaxBodyBytes
)

// Policy says what agents of one role template may do in one environment.
// Everything not allowed is denied: a request is allowed only if the agent
// meets MinTrustLevel and MinLoA, holds every RequiredScopes entry, calls an
// endpoint matching one of AllowedEndpoints, and satisfies Constraints. There
// is no "allow everything" default; an empty AllowedEndpoints is invalid
// rather than permissive, and a catch-all must be written as "*".
//
// A Policy must pass Validate (or come from ParsePolicy) before it is stored
// or evaluated.
type Policy struct {
	// ID identifies a stored policy; the manager assigns it, so it may be
	// empty in a create request.
	ID string `json:"id,omitempty"`
	// RoleTemplate is the role template the policy applies to.
	RoleTemplate string `json:"roleTemplate"`
	// Environment is the environment the policy applies to.
	Environment Environment `json:"environment"`
	// MinTrustLevel is the lowest trust level allowed, L1..L5.
	MinTrustLevel TrustLevel `json:"minTrustLevel"`
	// MinLoA is the lowest level of assurance allowed, 1..4; there is no
	// "not required" value.
	MinLoA LoA `json:"minLoa"`
	// RequiredScopes are OAuth scope tokens (RFC 6749 §3.3) the agent must
	// all hold; empty requires none.
	RequiredScopes []string `json:"requiredScopes"`
	// AllowedEndpoints are endpoint patterns as accepted by ParseEndpoint;
	// at least one is required.
	AllowedEndpoints []string `json:"allowedEndpoints"`
	// Constraints narrow what the endpoints allow further.
	Constraints Constraints `json:"constraints"`
}

// Constraints are extra conditions on an allowed request. Decoding rejects
// unknown keys, because a constraint this version does not understand would
// otherwise be silently dropped and the policy would allow more than its
// author wrote.
type Constraints struct {
	// MaxBodyBytes caps the request body size; 0 means the policy sets no
	// limit (the gateway's own limit still applies), otherwise 1..64 MiB.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// TimeWindows, if not empty, allows requests only when the current time
	// falls in at least one window; empty means at any time.
	TimeWindows []TimeWindow `json:"timeWindows,omitempty"`
}

// ParsePolicy decodes a policy document strictly (unknown keys at any level
// are rejected and key names are case-sensitive, unlike plain encoding/json)
// and validates it. On failure the error wraps ErrInvalidPolicy and is a
// *ValidationError listing every decoding and validation problem with its
// field path, unless data is not JSON at all. This is the one entry point the
// manager's API and the filter should use for untrusted input.
func ParsePolicy(data []byte) (Policy, error) {
	var p Policy
	var decodeErrs []FieldError
	if err := json.Unmarshal(data, &p); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return Policy{}, fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
		}
		decodeErrs = ve.Errors
	}
	errs := decodeErrs
	// A field that failed to decode holds a zero value; validating it again
	// would only repeat the problem in other words.
	for _, fe := range p.validate() {
		dup := false
		for _, de := range decodeErrs {
			if under(fe.Field, de.Field) {
				dup = true
				break
			}
		}
		if !dup {
			errs = append(errs, fe)
		}
	}
	if len(errs) > 0 {
		return Policy{}, &ValidationError{Errors: errs}
	}
	return p, nil
}

// Validate checks every field and returns nil or a *ValidationError (wrapping
// ErrInvalidPolicy) that lists all problems found. Lists longer than their
// limit are reported once, without checking each element, so that the error
// stays small for absurd input.
func (p *Policy) Validate() error {
	if p == nil {
		return &ValidationError{Errors: []FieldError{{Message: "policy is missing"}}}
	}
	if errs := p.validate(); len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

func (p *Policy) validate() []FieldError {
	var errs []FieldError
	if p.ID != "" {
		checkText(&errs, "id", p.ID, MaxIDLen)
	}
	if p.RoleTemplate == "" {
		addErr(&errs, "roleTemplate", "required", nil)
	} else {
		checkText(&errs, "roleTemplate", p.RoleTemplate, MaxRoleTemplateLen)
	}
	switch {
	case p.Environment == "":
		addErr(&errs, "environment", "required: one of development, staging, production", nil)
	case !p.Environment.Valid():
		addErr(&errs, "environment", "must be one of development, staging, production", string(p.Environment))
	}
	switch {
	case p.MinTrustLevel == LevelNone:
		addErr(&errs, "minTrustLevel", "required: one of L1, L2, L3, L4, L5", nil)
	case !p.MinTrustLevel.Valid():
		addErr(&errs, "minTrustLevel", "must be one of L1, L2, L3, L4, L5", uint8(p.MinTrustLevel))
	}
	switch {
	case p.MinLoA == LoANone:
		addErr(&errs, "minLoa", "required: an integer from 1 (self-asserted) to 4 (very high)", nil)
	case !p.MinLoA.Valid():
		addErr(&errs, "minLoa", "must be an integer from 1 (self-asserted) to 4 (very high)", uint8(p.MinLoA))
	}
	validateScopes(&errs, p.RequiredScopes)
	validateEndpoints(&errs, p.AllowedEndpoints)
	p.Constraints.validate("constraints", &errs)
	return errs
}

// checkText rejects what would make an identifier ambiguous when displayed
// or compared: invalid UTF-8, control characters, surrounding space.
func checkText(errs *[]FieldError, field, s string, maxLen int) {
	switch {
	case len(s) > maxLen:
		addErr(errs, field, fmt.Sprintf("at most %d bytes", maxLen), s)
	case !utf8.ValidString(s):
		addErr(errs, field, "must be valid UTF-8", s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		addErr(errs, field, "must not contain control characters", s)
	case strings.TrimSpace(s) != s:
		addErr(errs, field, "must not start or end with white space", s)
	}
}

// isScopeToken implements RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B /
// %x5D-7E ), i.e. printable ASCII except space, '"' and '\'.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func validateScopes(errs *[]FieldError, scopes []string) {
	if len(scopes) > MaxScopes {
		addErr(errs, "requiredScopes", fmt.Sprintf("at most %d scopes", MaxScopes), len(scopes))
		return
	}
	seen := make(map[string]int, len(scopes))
	for i, s := range scopes {
		f := indexPath("requiredScopes", i)
		switch {
		case s == "":
			addErr(errs, f, "must not be empty", s)
		case len(s) > MaxScopeLen:
			addErr(errs, f, fmt.Sprintf("at most %d bytes", MaxScopeLen), s)
		case !isScopeToken(s):
			addErr(errs, f, `must be an OAuth scope token: printable ASCII without space, '"' or '\'`, s)
		default:
			if j, dup := seen[s]; dup {
				addErr(errs, f, "duplicates "+indexPath("requiredScopes", j), s)
			} else {
				seen[s] = i
			}
		}
	}
}

func validateEndpoints(errs *[]FieldError, eps []string) {
	switch {
	case len(eps) == 0:
		addErr(errs, "allowedEndpoints", `at least one endpoint pattern is required (everything else is denied; "*" allows all)`, nil)
		return
	case len(eps) > MaxEndpoints:
		addErr(errs, "allowedEndpoints", fmt.Sprintf("at most %d endpoint patterns", MaxEndpoints), len(eps))
		return
	}
	// ParseEndpoint does not normalize, so equal strings are exactly the
	// equal patterns.
	seen := make(map[string]int, len(eps))
	for i, s := range eps {
		f := indexPath("allowedEndpoints", i)
		if _, reason := parseEndpoint(s); reason != "" {
			addErr(errs, f, "invalid endpoint pattern: "+reason, s)
			continue
		}
		if j, dup := seen[s]; dup {
			addErr(errs, f, "duplicates "+indexPath("allowedEndpoints", j), s)
		} else {
			seen[s] = i
		}
	}
}

func (c Constraints) validate(prefix string, errs *[]FieldError) {
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > MaxBodyBytesLimit {
		addErr(errs, joinPath(prefix, "maxBodyBytes"), fmt.Sprintf("must be 0 (no policy limit) or 1 to %d bytes (64 MiB)", MaxBodyBytesLimit), c.MaxBodyBytes)
	}
	f := joinPath(prefix, "timeWindows")
	if len(c.TimeWindows) > MaxTimeWindows {
		addErr(errs, f, fmt.Sprintf("at most %d time windows", MaxTimeWindows), len(c.TimeWindows))
		return
	}
	for i, w := range c.TimeWindows {
		w.validate(indexPath(f, i), errs)
	}
}

// MarshalJSON writes empty lists as [] rather than null, so that consumers
// such as the OPA bundle need not treat null specially.
func (p Policy) MarshalJSON() ([]byte, error) {
	type plain Policy // drops the methods, avoiding recursion
	v := plain(p)
	if v.RequiredScopes == nil {
		v.RequiredScopes = []string{}
	}
	if v.AllowedEndpoints == nil {
		v.AllowedEndpoints = []string{}
	}
	return json.Marshal(v)
}

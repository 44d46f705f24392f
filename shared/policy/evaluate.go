package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SemanticsVersion names the evaluation semantics specified in
// docs/policy.md: the rules, their order, the reason codes and the message
// templates. Any change that can change a Decision gets a new version, and
// the Rego library in bundles/ states the version it implements.
const SemanticsVersion = "knaight-policy-v1"

// Reason is why a request was allowed or denied: one code from the closed
// list of Reasons. Callers branch on it (the filter answers scope_missing
// with an insufficient_scope challenge) and record it in the decision record.
type Reason string

// The reason codes, in the order of the rules that produce them. Only
// ReasonAllowed goes with an allow.
const (
	ReasonAllowed             Reason = "allowed"
	ReasonPolicyMissing       Reason = "policy_missing"
	ReasonTrustBelowThreshold Reason = "trust_below_threshold"
	ReasonLoABelowRequired    Reason = "loa_below_required"
	ReasonScopeMissing        Reason = "scope_missing"
	ReasonEndpointNotAllowed  Reason = "endpoint_not_allowed"
	ReasonConstraintViolated  Reason = "constraint_violated"
)

// Reasons returns every reason code Evaluate can return, ReasonAllowed
// first, then the denials in rule order. The slice is a fresh copy.
func Reasons() []Reason {
	return []Reason{
		ReasonAllowed, ReasonPolicyMissing, ReasonTrustBelowThreshold, ReasonLoABelowRequired,
		ReasonScopeMissing, ReasonEndpointNotAllowed, ReasonConstraintViolated,
	}
}

// Input is what the policy judges about one request. The filter fills it
// after it has verified the token, the request signature and the agent's
// identity and ANS status; the evaluator takes all of it as established and
// judges policy only. Its JSON form (MarshalJSON) is the input document of
// the OPA library, field for field.
type Input struct {
	// RoleTemplate is the agent's role template, from the snapshot.
	RoleTemplate string `json:"roleTemplate"`
	// Environment is the gateway's environment, from its configuration.
	Environment Environment `json:"environment"`
	// TrustLevel is the agent's current level; anything but L1..L5 counts
	// as no level.
	TrustLevel TrustLevel `json:"trustLevel"`
	// LoA is the token's level of assurance; anything but 1..4 counts as
	// none.
	LoA LoA `json:"loa"`
	// Scopes are the token's scope tokens (its "scope" claim split at
	// spaces). Order and duplicates do not matter.
	Scopes []string `json:"scopes"`
	// Method is the JSON-RPC method of the MCP request or notification.
	Method string `json:"method"`
	// Name is the tool name (tools/call), resource URI (resources/read) or
	// prompt name (prompts/get), and "" when the request carries none. It is
	// ignored for every other method.
	Name string `json:"name"`
	// BodyBytes is the length of the request body in bytes; a negative
	// value (unknown) never satisfies a body size limit.
	BodyBytes int64 `json:"bodyBytes"`
	// Time is when the request arrived; only its UTC weekday, hour and
	// minute are used. The caller must set it.
	Time time.Time `json:"time"`
}

// MarshalJSON writes the input document of docs/policy.md: Scopes as []
// rather than null, and Time in UTC (RFC 3339 with "Z").
func (in Input) MarshalJSON() ([]byte, error) {
	type plain Input // drops the methods, avoiding recursion
	v := plain(in)
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	v.Time = v.Time.UTC()
	return json.Marshal(v)
}

// Decision is the outcome of Evaluate. Its JSON form is the decision
// document of the OPA library, field for field.
type Decision struct {
	// Allow is true only with ReasonAllowed.
	Allow bool `json:"allow"`
	// Reason is one of Reasons().
	Reason Reason `json:"reason"`
	// Message says, for a human, what the policy required and what the
	// request had. Templates are in docs/policy.md.
	Message string `json:"message"`
	// PolicyID is the ID of the policy that decided, "" with
	// ReasonPolicyMissing (or when the policy has no ID).
	PolicyID string `json:"policyId"`
	// MissingScopes lists, with ReasonScopeMissing only, every required
	// scope the token lacks, in policy order, separated by single spaces:
	// ready for the scope= parameter of an insufficient_scope challenge.
	MissingScopes string `json:"missingScopes"`
}

// Set is a compiled, immutable list of policies, built once per snapshot
// and evaluated per request from any number of goroutines. A nil *Set has
// no policies and denies every request.
type Set struct {
	byKey map[setKey]*compiled
}

type setKey struct {
	role string
	env  Environment
}

// namedMethods are the methods whose requests carry a name, with the noun
// messages use for it; a compiled policy keeps its name patterns per index.
var namedMethods = [...]struct{ method, noun string }{
	{MethodToolsCall, "tool name"},
	{MethodResourcesRead, "resource URI"},
	{MethodPromptsGet, "prompt name"},
}

func namedIndex(method string) int {
	for i, m := range namedMethods {
		if m.method == method {
			return i
		}
	}
	return -1
}

// compiled is one policy in the form Evaluate needs: patterns sorted into
// exact-match maps and glob lists, windows parsed, and the strings of the
// allow path built in advance so that allowing allocates nothing.
type compiled struct {
	id       string
	subject  string // `role template "deployer" in production`
	allowMsg string
	minTrust TrustLevel
	minLoA   LoA
	scopes   []string
	// scopesText is scopes joined by spaces, for messages.
	scopesText string
	// methods are method patterns without '*' or name: any name is allowed.
	methods map[string]struct{}
	// methodGlobs are method patterns with '*' (and so without a name).
	methodGlobs []string
	// names and nameGlobs are name patterns by namedMethods index.
	names     [len(namedMethods)]map[string]struct{}
	nameGlobs [len(namedMethods)][]string
	maxBody   int64
	windows   []window
	// windowsText describes windows for messages.
	windowsText string
}

// window is a validated TimeWindow in minutes since midnight UTC.
type window struct {
	days       uint8 // bit time.Weekday set for each listed day; 0: every day
	start, end int
}

// Compile validates every policy and compiles the list into a Set. Policies
// are keyed by role template and environment, so two policies with the same
// pair, or with the same non-empty ID, are rejected. On failure the error is
// a *ValidationError (wrapping ErrInvalidPolicy) listing every problem, with
// field paths prefixed by the policy's index, such as "[2].minLoa"; the
// caller must then keep its previous Set, never use part of a list.
func Compile(policies []Policy) (*Set, error) {
	var errs []FieldError
	s := &Set{byKey: make(map[setKey]*compiled, len(policies))}
	firstByKey := make(map[setKey]int, len(policies))
	firstByID := make(map[string]int, len(policies))
	for i := range policies {
		p := &policies[i]
		at := indexPath("", i)
		if pe := p.validate(); len(pe) > 0 {
			for _, fe := range pe {
				if fe.Field == "" {
					fe.Field = at
				} else {
					fe.Field = at + "." + fe.Field
				}
				errs = append(errs, fe)
			}
			continue
		}
		k := setKey{p.RoleTemplate, p.Environment}
		if j, dup := firstByKey[k]; dup {
			addErr(&errs, at, "duplicates "+indexPath("", j)+": one policy per role template and environment",
				map[string]string{"roleTemplate": p.RoleTemplate, "environment": string(p.Environment)})
			continue
		}
		if j, dup := firstByID[p.ID]; dup && p.ID != "" {
			addErr(&errs, at+".id", "duplicates "+indexPath("", j)+".id", p.ID)
			continue
		}
		firstByKey[k] = i
		firstByID[p.ID] = i
		s.byKey[k] = compile(p)
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	return s, nil
}

// compile builds the lookup form of a policy that passed validate.
func compile(p *Policy) *compiled {
	c := &compiled{
		id:         p.ID,
		subject:    fmt.Sprintf("role template %q in %s", p.RoleTemplate, p.Environment),
		minTrust:   p.MinTrustLevel,
		minLoA:     p.MinLoA,
		scopes:     slices.Clone(p.RequiredScopes),
		scopesText: strings.Join(p.RequiredScopes, " "),
		maxBody:    p.Constraints.MaxBodyBytes,
	}
	c.allowMsg = c.subject + " allows the request"
	for _, s := range p.AllowedEndpoints {
		e, _ := parseEndpoint(s) // validated
		switch {
		case e.HasName:
			i := namedIndex(e.Method)
			if strings.IndexByte(e.Name, '*') >= 0 {
				c.nameGlobs[i] = append(c.nameGlobs[i], e.Name)
				continue
			}
			if c.names[i] == nil {
				c.names[i] = make(map[string]struct{})
			}
			c.names[i][e.Name] = struct{}{}
		case strings.IndexByte(e.Method, '*') >= 0:
			c.methodGlobs = append(c.methodGlobs, e.Method)
		default:
			if c.methods == nil {
				c.methods = make(map[string]struct{})
			}
			c.methods[e.Method] = struct{}{}
		}
	}
	texts := make([]string, 0, len(p.Constraints.TimeWindows))
	for _, tw := range p.Constraints.TimeWindows {
		var w window
		w.start, _ = parseClock(tw.Start, false) // validated
		w.end, _ = parseClock(tw.End, true)
		for _, d := range tw.Days {
			wd, _ := parseDay(d)
			w.days |= 1 << wd
		}
		c.windows = append(c.windows, w)
		days := "daily"
		if len(tw.Days) > 0 {
			days = strings.Join(tw.Days, ",")
		}
		texts = append(texts, days+" "+tw.Start+"-"+tw.End)
	}
	c.windowsText = strings.Join(texts, " or ")
	return c
}

var noInput Input

// Evaluate judges in against the policy for its role template and
// environment, applying the rules of docs/policy.md in order; the first
// rule that fails decides, and a request no rule denies is allowed. It
// never panics and treats a nil in as the zero Input. It allocates nothing
// when it allows; a denial formats its message.
func (s *Set) Evaluate(in *Input) Decision {
	if in == nil {
		in = &noInput
	}
	// 1. A policy for the role template and environment. Request-supplied
	// strings are quoted with %.128q, cut to 128 runes, so that a megabyte
	// resource URI does not become a megabyte log line; OPA's sprintf does
	// the same.
	var c *compiled
	if s != nil {
		c = s.byKey[setKey{in.RoleTemplate, in.Environment}]
	}
	if c == nil {
		return Decision{Reason: ReasonPolicyMissing, Message: fmt.Sprintf(
			"no policy for role template %.128q in environment %.128q", in.RoleTemplate, in.Environment)}
	}
	deny := func(r Reason, format string, args ...any) Decision {
		return Decision{Reason: r, Message: c.subject + fmt.Sprintf(format, args...), PolicyID: c.id}
	}

	// 2. Trust level.
	level := in.TrustLevel
	if !level.Valid() {
		level = LevelNone
	}
	if level < c.minTrust {
		return deny(ReasonTrustBelowThreshold, " requires trust level %s; the agent has %s", c.minTrust, level)
	}

	// 3. Level of assurance.
	loa := in.LoA
	if !loa.Valid() {
		loa = LoANone
	}
	if loa < c.minLoA {
		return deny(ReasonLoABelowRequired, " requires %s; the token has %s", c.minLoA, loa)
	}

	// 4. Scopes.
	for i, sc := range c.scopes {
		if !slices.Contains(in.Scopes, sc) {
			missing := c.missingScopes(i, in.Scopes)
			d := deny(ReasonScopeMissing, " requires the scopes %q; the token lacks %q", c.scopesText, missing)
			d.MissingScopes = missing
			return d
		}
	}

	// 5. Endpoint.
	named := namedIndex(in.Method)
	if named >= 0 && in.Name == "" {
		return deny(ReasonEndpointNotAllowed, " does not allow %s without a %s", in.Method, namedMethods[named].noun)
	}
	if !c.allowsEndpoint(in.Method, in.Name, named) {
		if named >= 0 {
			return deny(ReasonEndpointNotAllowed, " does not allow %s with %s %.128q", in.Method, namedMethods[named].noun, in.Name)
		}
		return deny(ReasonEndpointNotAllowed, " does not allow method %.128q", in.Method)
	}

	// 6. Constraints: body size, then time windows.
	if c.maxBody > 0 && (in.BodyBytes < 0 || in.BodyBytes > c.maxBody) {
		return deny(ReasonConstraintViolated, " allows request bodies of at most %d bytes; the request has %d", c.maxBody, in.BodyBytes)
	}
	if len(c.windows) > 0 {
		t := in.Time.UTC()
		wd := t.Weekday()
		h, m, _ := t.Clock()
		if !c.inWindow(wd, h*60+m) {
			return deny(ReasonConstraintViolated, " allows requests only during %s UTC; it is %s %02d:%02d UTC", c.windowsText, dayNames[wd], h, m)
		}
	}

	return Decision{Allow: true, Reason: ReasonAllowed, Message: c.allowMsg, PolicyID: c.id}
}

// missingScopes joins, in policy order, the required scopes from index
// first on that held does not contain.
func (c *compiled) missingScopes(first int, held []string) string {
	var b strings.Builder
	for _, sc := range c.scopes[first:] {
		if slices.Contains(held, sc) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(sc)
	}
	return b.String()
}

// allowsEndpoint reports whether some pattern matches; named is
// namedIndex(method). The order of the checks is only for speed.
func (c *compiled) allowsEndpoint(method, name string, named int) bool {
	if _, ok := c.methods[method]; ok {
		return true
	}
	for _, g := range c.methodGlobs {
		if glob(g, method) {
			return true
		}
	}
	if named < 0 {
		return false
	}
	if _, ok := c.names[named][name]; ok {
		return true
	}
	for _, g := range c.nameGlobs[named] {
		if glob(g, name) {
			return true
		}
	}
	return false
}

func (c *compiled) inWindow(wd time.Weekday, minute int) bool {
	for _, w := range c.windows {
		if (w.days == 0 || w.days&(1<<wd) != 0) && w.start <= minute && minute < w.end {
			return true
		}
	}
	return false
}

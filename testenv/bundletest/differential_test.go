package bundletest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/knaight/knaight/shared/policy"
)

// decisionQuery is the query a sidecar asks the library.
const decisionQuery = "data.knaight.policy.decision"

// differentialSeed fixes the generated policies and inputs, so that a
// failure can be reproduced; it is logged with every mismatch.
const differentialSeed uint64 = 0x6b6e6169676874 // "knaight"

const (
	differentialSets         = 300
	differentialInputsPerSet = 40
)

// loadPolicyModule parses bundles/knaight/policy/policy.rego once.
func loadPolicyModule(tb testing.TB) *ast.Module {
	tb.Helper()
	path := filepath.Join(BundlesDir(), filepath.FromSlash(PolicyModulePath))
	src, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("reading the policy library: %v", err)
	}
	mod, err := ast.ParseModuleWithOpts(path, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		tb.Fatalf("parsing %s: %v", path, err)
	}
	return mod
}

// opaEvaluator is the library prepared for one policy set, as a sidecar
// would hold it.
type opaEvaluator struct {
	pq rego.PreparedEvalQuery
}

// prepareOPA loads policies as data.knaight.policies, in the JSON form of
// policy.Policy.MarshalJSON, and prepares the decision query.
func prepareOPA(ctx context.Context, mod *ast.Module, policies []policy.Policy) (*opaEvaluator, error) {
	raw, err := json.Marshal(policies)
	if err != nil {
		return nil, err
	}
	var data any
	if err := util.UnmarshalJSON(raw, &data); err != nil {
		return nil, err
	}
	// AST values on read: OPA's store at its fastest for a read-only
	// evaluation (the server's --optimize-store-for-read-speed), so that
	// the benchmark compares with OPA at its best.
	store := inmem.NewFromObjectWithOpts(map[string]any{"knaight": map[string]any{"policies": data}}, inmem.OptReturnASTValuesOnRead(true))
	pq, err := rego.New(
		rego.Query(decisionQuery),
		rego.ParsedModule(mod),
		rego.Store(store),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &opaEvaluator{pq: pq}, nil
}

// decodeInput turns an input into the document OPA receives: exactly the
// bytes of Input.MarshalJSON, decoded with numbers kept as numbers.
func decodeInput(in *policy.Input) (any, []byte, error) {
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, nil, err
	}
	var v any
	if err := util.UnmarshalJSON(raw, &v); err != nil {
		return nil, raw, err
	}
	return v, raw, nil
}

// eval returns the library's decision document for one input, checking
// that it has exactly the five keys of a Decision with their JSON types.
func (o *opaEvaluator) eval(ctx context.Context, input any) (policy.Decision, error) {
	rs, err := o.pq.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return policy.Decision{}, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return policy.Decision{}, fmt.Errorf("decision undefined or ambiguous: %d results", len(rs))
	}
	m, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return policy.Decision{}, fmt.Errorf("decision is %T, not an object", rs[0].Expressions[0].Value)
	}
	if len(m) != 5 {
		return policy.Decision{}, fmt.Errorf("decision has %d keys, want 5: %v", len(m), m)
	}
	var d policy.Decision
	var okAll [5]bool
	d.Allow, okAll[0] = m["allow"].(bool)
	var reason string
	reason, okAll[1] = m["reason"].(string)
	d.Reason = policy.Reason(reason)
	d.Message, okAll[2] = m["message"].(string)
	d.PolicyID, okAll[3] = m["policyId"].(string)
	d.MissingScopes, okAll[4] = m["missingScopes"].(string)
	for i, ok := range okAll {
		if !ok {
			return policy.Decision{}, fmt.Errorf("decision key %d has the wrong type: %v", i, m)
		}
	}
	return d, nil
}

func TestDifferentialGoVsOPA(t *testing.T) {
	ctx := context.Background()
	mod := loadPolicyModule(t)
	seed := differentialSeed
	if v := os.Getenv("BUNDLETEST_SEED"); v != "" {
		// Another seed, for a longer search: BUNDLETEST_SEED=123 go test ...
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("BUNDLETEST_SEED: %v", err)
		}
		seed = n
	}
	g := newGen(seed)
	reasons := map[policy.Reason]int{}
	features := map[string]int{}
	start := time.Now()
	total, mismatches := 0, 0
	for set := range differentialSets {
		policies := g.policySet()
		goSet, err := policy.Compile(policies)
		if err != nil {
			t.Fatalf("seed %#x, set %d: the generator made an invalid policy set: %v\n%s", seed, set, err, mustJSON(policies))
		}
		opa, err := prepareOPA(ctx, mod, policies)
		if err != nil {
			t.Fatalf("preparing OPA: %v", err)
		}
		for i := range differentialInputsPerSet {
			in := g.input(policies, features)
			doc, raw, err := decodeInput(&in)
			if err != nil {
				t.Fatalf("encoding input: %v", err)
			}
			want := goSet.Evaluate(&in)
			got, err := opa.eval(ctx, doc)
			total++
			reasons[want.Reason]++
			if err == nil && got == want {
				continue
			}
			mismatches++
			if mismatches <= 5 {
				t.Errorf("seed %#x, set %d, input %d: decisions differ\npolicies: %s\ninput:    %s\nGo:       %s\nOPA:      %s (error: %v)",
					seed, set, i, mustJSON(policies), raw, mustJSON(want), mustJSON(got), err)
			}
		}
		if mismatches > 5 {
			t.Fatalf("seed %#x: stopping after %d mismatches", seed, mismatches)
		}
	}
	t.Logf("seed %#x: %d policy sets, %d inputs, %d mismatches, %v", seed, differentialSets, total, mismatches, time.Since(start).Round(time.Millisecond))
	t.Logf("reasons: %v", reasons)
	t.Logf("input features: %v", features)
	for _, r := range policy.Reasons() {
		if reasons[r] < 100 {
			t.Errorf("reason %s was decided only %d times; the generator does not cover it well", r, reasons[r])
		}
	}
	for _, f := range []string{"unnamed named method", "body at limit", "body over limit", "time at window edge", "long name", "name with colon and slash", "missing policy"} {
		if features[f] < 20 {
			t.Errorf("input feature %q generated only %d times", f, features[f])
		}
	}
}

// TestExamplePolicies checks that bundles/examples/policies.json holds a
// valid, compilable policy list and that the library and the Go evaluator
// agree on it for a few typical requests.
func TestExamplePolicies(t *testing.T) {
	policies := loadExamplePolicies(t)
	if len(policies) != 9 {
		t.Fatalf("examples/policies.json holds %d policies, want the 9 of the seeded baseline", len(policies))
	}
	set, err := policy.Compile(policies)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opa, err := prepareOPA(ctx, loadPolicyModule(t), policies)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	inputs := []policy.Input{
		{RoleTemplate: "observer", Environment: policy.Production, TrustLevel: policy.L2, LoA: 2, Scopes: []string{"mcp:read"}, Method: "tools/list", Time: now},
		{RoleTemplate: "observer", Environment: policy.Production, TrustLevel: policy.L2, LoA: 2, Scopes: []string{"mcp:read"}, Method: "tools/call", Name: "x", Time: now},
		{RoleTemplate: "assistant", Environment: policy.Staging, TrustLevel: policy.L2, LoA: 1, Scopes: []string{"mcp:read"}, Method: "tools/call", Name: "x", Time: now},
		{RoleTemplate: "assistant", Environment: policy.Staging, TrustLevel: policy.L2, LoA: 2, Scopes: []string{"mcp:read"}, Method: "tools/call", Name: "x", Time: now},
		{RoleTemplate: "privileged", Environment: policy.Production, TrustLevel: policy.L4, LoA: 3, Scopes: []string{"mcp:read", "mcp:invoke", "mcp:privileged"}, Method: "tools/call", Name: "deploy", BodyBytes: 1<<20 + 1, Time: now},
		{RoleTemplate: "privileged", Environment: policy.Production, TrustLevel: policy.L4, LoA: 3, Scopes: []string{"mcp:read", "mcp:invoke", "mcp:privileged"}, Method: "logging/setLevel", BodyBytes: 100, Time: now},
		{RoleTemplate: "auditor", Environment: policy.Production, TrustLevel: policy.L5, LoA: 4, Method: "ping", Time: now},
	}
	for i := range inputs {
		doc, rawIn, err := decodeInput(&inputs[i])
		if err != nil {
			t.Fatal(err)
		}
		want := set.Evaluate(&inputs[i])
		got, err := opa.eval(ctx, doc)
		if err != nil || got != want {
			t.Errorf("input %s:\nGo:  %s\nOPA: %s (error: %v)", rawIn, mustJSON(want), mustJSON(got), err)
		}
		t.Logf("%s -> %s", rawIn, mustJSON(want))
	}
}

// loadExamplePolicies reads bundles/examples/policies.json strictly: no
// unknown keys, every policy as policy.ParsePolicy accepts it.
func loadExamplePolicies(tb testing.TB) []policy.Policy {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(BundlesDir(), "examples", "policies.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var doc struct {
		Knaight struct {
			Policies []json.RawMessage `json:"policies"`
		} `json:"knaight"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		tb.Fatalf("examples/policies.json: %v", err)
	}
	var policies []policy.Policy
	for i, r := range doc.Knaight.Policies {
		p, err := policy.ParsePolicy(r)
		if err != nil {
			tb.Fatalf("examples/policies.json, policy %d: %v", i, err)
		}
		policies = append(policies, p)
	}
	return policies
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// gen generates valid policy sets and inputs aimed at their boundaries.
type gen struct {
	r *rand.Rand
}

func newGen(seed uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

var (
	roleTemplates = []string{
		"deployer", "observer", "assistant", "privileged", "a b", `q"uote`, `back\slash`,
		"é-ü", "emoji 😀", "nbsp\u00a0inside", "x/y:z", "%d %s %q", strings.Repeat("r", 128),
		strings.Repeat("é", 64), "zero\u200bwidth",
	}
	environments  = []string{"development", "staging", "production"}
	scopeTokens   = []string{"mcp:read", "mcp:invoke", "mcp:privileged", "deploy", "a/b", "x!#$%&'()", "s~[]^`{|}", "openid"}
	namedMethods  = []string{policy.MethodToolsCall, policy.MethodResourcesRead, policy.MethodPromptsGet}
	methodGlobs   = []string{"*", "tools/*", "*/list", "*s*", "t*l*", "**", "*o*/*a*", "*.*", "notifications/*", "*/call", "resources/*/list", "ab*ba", "a*a", "*a*a*", "tools*/*call"}
	exactMethods  = []string{"tools/call", "resources/read", "prompts/get", "tools/list", "initialize", "ping", "a.b", "completion/complete", "logging/setLevel", "Tools/call", "resources/templates/list", "notifications/initialized"}
	methodPieces  = []string{"tools", "/", "call", "list", "s", "o", "a", ".", "x", ":", "resources", "read", "prompts", "get", "notifications", "l", "T"}
	namePieces    = []string{"deploy_", "a", "b", "ab", ":", "/", "?", "[", "]", "{", "}", `\`, ".", "é", "😀", "file://", `"`, " ", "%", "docs"}
	inputOddities = []string{"\n", "\x00", "\u2028", "\u00a0", "\x7f", "\t", "\ufeff", "'", "\U0010ffff"}
)

func (g *gen) pieces(from []string, lo, hi int) string {
	var b strings.Builder
	for range lo + g.r.IntN(hi-lo+1) {
		b.WriteString(g.pick(from))
	}
	return b.String()
}

func (g *gen) endpoint() string {
	switch g.r.IntN(4) {
	case 0:
		return g.pick(methodGlobs)
	case 1:
		return g.pick(exactMethods)
	default:
		// A name pattern: pieces with stars in between.
		var b strings.Builder
		for range 1 + g.r.IntN(4) {
			if g.chance(0.45) {
				b.WriteByte('*')
			}
			b.WriteString(g.pieces(namePieces, 0, 2))
		}
		if g.chance(0.3) {
			b.WriteByte('*')
		}
		name := b.String()
		if name == "" {
			name = "*"
		}
		return g.pick(namedMethods) + ":" + name
	}
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func (g *gen) window() policy.TimeWindow {
	var w policy.TimeWindow
	if g.chance(0.6) {
		for _, i := range g.r.Perm(7)[:1+g.r.IntN(7)] {
			w.Days = append(w.Days, dayNames[i])
		}
	}
	start := g.r.IntN(1440)
	end := start + 1 + g.r.IntN(1440-start)
	switch g.r.IntN(6) {
	case 0:
		start = 0
	case 1:
		end = 1440
	case 2:
		end = start + 1
	}
	w.Start, w.End = clock(start), clock(end)
	return w
}

func (g *gen) policySet() []policy.Policy {
	n := 1 + g.r.IntN(6)
	seen := map[string]bool{}
	var ps []policy.Policy
	for i := range n {
		p := policy.Policy{
			RoleTemplate:  g.pick(roleTemplates),
			Environment:   policy.Environment(g.pick(environments)),
			MinTrustLevel: policy.TrustLevel(1 + g.r.IntN(5)),
			MinLoA:        policy.LoA(1 + g.r.IntN(4)),
		}
		key := p.RoleTemplate + "\x00" + string(p.Environment)
		if seen[key] {
			continue
		}
		seen[key] = true
		switch g.r.IntN(4) {
		case 0:
		case 1:
			p.ID = fmt.Sprintf(`id "%d" é`, i)
		default:
			p.ID = fmt.Sprintf("pol-%d", i)
		}
		for _, j := range g.r.Perm(len(scopeTokens))[:g.r.IntN(4)] {
			p.RequiredScopes = append(p.RequiredScopes, scopeTokens[j])
		}
		eps := map[string]bool{}
		for range 1 + g.r.IntN(6) {
			e := g.endpoint()
			if !eps[e] {
				eps[e] = true
				p.AllowedEndpoints = append(p.AllowedEndpoints, e)
			}
		}
		if g.chance(0.5) {
			p.Constraints.MaxBodyBytes = []int64{1, 100, 1 << 20, policy.MaxBodyBytesLimit, 1 + g.r.Int64N(1<<16)}[g.r.IntN(5)]
		}
		if g.chance(0.5) {
			for range 1 + g.r.IntN(4) {
				p.Constraints.TimeWindows = append(p.Constraints.TimeWindows, g.window())
			}
		}
		ps = append(ps, p)
	}
	return ps
}

// fill replaces every '*' of a glob with a random run, so that the result
// matches it (before an occasional mutation).
func (g *gen) fill(glob string, pieces []string) string {
	var b strings.Builder
	for i, part := range strings.Split(glob, "*") {
		if i > 0 {
			b.WriteString(g.pieces(pieces, 0, 3))
		}
		b.WriteString(part)
	}
	return b.String()
}

func (g *gen) mutate(s string) string {
	switch g.r.IntN(4) {
	case 0:
		if s != "" {
			rs := []rune(s)
			i := g.r.IntN(len(rs))
			return string(rs[:i]) + string(rs[i+1:])
		}
	case 1:
		return s + g.pick(namePieces)
	case 2:
		return g.pick(namePieces) + s
	}
	return strings.ToUpper(s)
}

func (g *gen) input(ps []policy.Policy, features map[string]int) policy.Input {
	var in policy.Input
	var p *policy.Policy
	if g.chance(0.9) {
		p = &ps[g.r.IntN(len(ps))]
		in.RoleTemplate, in.Environment = p.RoleTemplate, p.Environment
	} else {
		in.RoleTemplate = g.pick(roleTemplates)
		in.Environment = policy.Environment(g.pick(environments))
		switch g.r.IntN(5) {
		case 0:
			in.RoleTemplate = strings.Repeat("é", 100+g.r.IntN(60))
		case 1:
			in.Environment = policy.Environment(g.pick([]string{"", "Production", "prod", "dev\n", `"staging"`}))
		case 2:
			in.RoleTemplate += g.pick(inputOddities)
		}
		for i := range ps {
			if ps[i].RoleTemplate == in.RoleTemplate && ps[i].Environment == in.Environment {
				p = &ps[i]
			}
		}
		if p == nil {
			features["missing policy"]++
		}
	}
	if p == nil {
		p = &ps[0] // only to shape the rest of the input
	}

	// Trust and LoA: mostly at or near the policy's minimum.
	switch g.r.IntN(4) {
	case 0:
		in.TrustLevel = policy.TrustLevel(g.r.IntN(8)) // 0, 6, 7: none
	default:
		in.TrustLevel = min(p.MinTrustLevel+policy.TrustLevel(g.r.IntN(3)), policy.L5)
		if g.chance(0.2) {
			in.TrustLevel--
		}
	}
	switch g.r.IntN(4) {
	case 0:
		in.LoA = policy.LoA([]uint8{0, 1, 2, 3, 4, 5, 200, 255}[g.r.IntN(8)])
	default:
		in.LoA = min(p.MinLoA+policy.LoA(g.r.IntN(2)), 4)
		if g.chance(0.15) {
			in.LoA--
		}
	}

	// Scopes: usually all required ones, sometimes some missing, plus
	// extras, duplicates and a space-joined pair that must not be split.
	if !g.chance(0.05) {
		in.Scopes = []string{}
		drop := g.chance(0.2)
		for _, s := range p.RequiredScopes {
			if !drop || g.chance(0.5) {
				in.Scopes = append(in.Scopes, s)
			}
		}
		for range g.r.IntN(3) {
			in.Scopes = append(in.Scopes, g.pick(scopeTokens))
		}
		if g.chance(0.05) {
			in.Scopes = append(in.Scopes, "mcp:read mcp:invoke")
		}
		g.r.Shuffle(len(in.Scopes), func(i, j int) { in.Scopes[i], in.Scopes[j] = in.Scopes[j], in.Scopes[i] })
	}

	// Method and name: usually derived from one of the policy's patterns.
	ep := g.pick(p.AllowedEndpoints)
	method, name, hasName := strings.Cut(ep, ":")
	switch g.r.IntN(6) {
	case 0:
		in.Method = g.pick(append(exactMethods, "", "tools/delete", "notifications", "tools", "x:y/z", "a", "aa", "aba", "abba", "tools/call"))
	case 1:
		in.Method = g.pieces(methodPieces, 0, 5)
	default:
		in.Method = g.fill(method, methodPieces)
		if g.chance(0.1) {
			in.Method = g.mutate(in.Method)
		}
	}
	if g.chance(0.3) && !hasName {
		in.Method = g.pick(namedMethods)
	}
	switch {
	case g.chance(0.08):
		in.Name = ""
	case g.chance(0.05):
		in.Name = strings.Repeat(g.pick([]string{"n", "é", "😀", `"`}), 100+g.r.IntN(100))
		features["long name"]++
	case hasName && g.chance(0.8):
		in.Name = g.fill(name, namePieces)
		if g.chance(0.25) {
			in.Name = g.mutate(in.Name)
		}
	default:
		in.Name = g.pieces(namePieces, 1, 5)
	}
	if g.chance(0.05) {
		in.Name += g.pick(inputOddities)
	}
	if g.chance(0.05) {
		in.Method += g.pick(inputOddities)
	}
	if slices.Contains(namedMethods, in.Method) && in.Name == "" {
		features["unnamed named method"]++
	}
	if strings.Contains(in.Name, ":") && strings.Contains(in.Name, "/") {
		features["name with colon and slash"]++
	}

	// Body size around the limit.
	max := p.Constraints.MaxBodyBytes
	switch g.r.IntN(8) {
	case 0:
		in.BodyBytes = -1 - g.r.Int64N(1000)
	case 1:
		in.BodyBytes = []int64{math.MaxInt64, math.MinInt64, 0}[g.r.IntN(3)]
	case 2, 3:
		in.BodyBytes = max
		features["body at limit"]++
	case 4:
		in.BodyBytes = max + 1
		features["body over limit"]++
	case 5:
		in.BodyBytes = max - 1
	default:
		in.BodyBytes = g.r.Int64N(2*max + 10)
	}

	in.Time = g.time(p, features)
	return in
}

// time returns a time between 1700 and 2250 (OPA represents 1678..2261),
// usually at a minute around an edge of one of the policy's windows.
func (g *gen) time(p *policy.Policy, features map[string]int) time.Time {
	day := time.Date(1700+g.r.IntN(550), time.January, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.r.IntN(366))
	minute := g.r.IntN(1440)
	if ws := p.Constraints.TimeWindows; len(ws) > 0 && g.chance(0.8) {
		w := ws[g.r.IntN(len(ws))]
		start := parseMinutes(w.Start)
		end := parseMinutes(w.End)
		minute = []int{start - 1, start, end - 1, end, start + g.r.IntN(end-start)}[g.r.IntN(5)]
		if len(w.Days) > 0 && g.chance(0.7) {
			target := slices.Index(dayNames, g.pick(w.Days))
			day = day.AddDate(0, 0, (target-int(day.Weekday())+7)%7)
		}
		features["time at window edge"]++
	}
	t := day.Add(time.Duration(minute) * time.Minute)
	switch g.r.IntN(4) {
	case 0:
		t = t.Add(59*time.Second + 999999999)
	case 1:
		t = t.Add(time.Duration(g.r.Int64N(int64(time.Minute))))
	case 2:
		t = t.Add(time.Duration(g.r.IntN(60)) * time.Second)
	}
	if g.chance(0.2) {
		t = t.In(time.FixedZone("", (g.r.IntN(29)-14)*3600+g.r.IntN(2)*1800))
	}
	return t
}

func parseMinutes(hhmm string) int {
	var h, m int
	fmt.Sscanf(hhmm, "%d:%d", &h, &m)
	return h*60 + m
}

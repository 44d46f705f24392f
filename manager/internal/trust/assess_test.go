package trust

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/policy"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func sig(id, kind string, value float64, observed time.Time) Signal {
	return Signal{ID: id, Source: "test", Kind: kind, Value: value, ObservedAt: observed}
}

func expiring(s Signal, at time.Time) Signal {
	s.ExpiresAt = &at
	return s
}

func dims(a Assessment) map[Dimension]float64 {
	m := map[Dimension]float64{}
	for _, d := range a.Dimensions {
		m[d.Dimension] = d.Score
	}
	return m
}

// TestWorkedExample is the worked example of docs/trust.md, number for
// number.
func TestWorkedExample(t *testing.T) {
	expiry := t0.Add(7 * 24 * time.Hour)
	admin := Signal{ID: "sig-1", Source: "admin:alice@example.com", Kind: "identity.admin_attestation", Value: 1, ObservedAt: t0}
	dns := Signal{ID: "sig-2", Source: "dns", Kind: "identity.dns_verified", Value: 1, ObservedAt: t0}
	org := Signal{ID: "sig-3", Source: "github", Kind: "github.org_verified", Value: 1, ObservedAt: t0}
	scorecard := Signal{ID: "sig-4", Source: "scorecard", Kind: "scorecard.score", Value: 8, ObservedAt: t0, ExpiresAt: &expiry}

	tests := []struct {
		name      string
		signals   []Signal
		now       time.Time
		wantScore float64
		wantLevel policy.TrustLevel
		wantDims  map[Dimension]float64
		wantNext  *time.Time
		wantUnmet []string // of L3
	}{
		{"step 1: admin attestation and DNS make L2", []Signal{admin, dns}, t0,
			18, policy.L2, map[Dimension]float64{DimIdentity: 0.6}, nil,
			[]string{"score 18.00 < 28.00", "publisher 0.0000 < 0.3000", "supply_chain 0.0000 < 0.2500"}},
		{"step 2: a verified GitHub org keeps L2", []Signal{admin, dns, org}, t0,
			24, policy.L2, map[Dimension]float64{DimIdentity: 0.6, DimPublisher: 0.4}, nil,
			[]string{"score 24.00 < 28.00", "supply_chain 0.0000 < 0.2500"}},
		{"step 3: a fresh Scorecard 8 makes L3", []Signal{admin, dns, org, scorecard}, t0,
			32, policy.L3, map[Dimension]float64{DimIdentity: 0.6, DimPublisher: 0.4, DimSupplyChain: 0.32}, &expiry,
			nil},
		{"step 3b: one second before expiry still L3", []Signal{admin, dns, org, scorecard}, expiry.Add(-time.Second),
			29.28, policy.L3, map[Dimension]float64{DimIdentity: 0.5595, DimPublisher: 0.379, DimSupplyChain: 0.2722}, &expiry,
			nil},
		{"step 4: the Scorecard signal expires and the agent drops to L2", []Signal{admin, dns, org, scorecard}, expiry,
			22.47, policy.L2, map[Dimension]float64{DimIdentity: 0.5595, DimPublisher: 0.379}, nil,
			[]string{"score 22.47 < 28.00", "supply_chain 0.0000 < 0.2500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assess(tt.signals, DefaultThresholds(), tt.now)
			if a.Score != tt.wantScore || a.Level != tt.wantLevel {
				t.Errorf("score, level = %v, %v, want %v, %v", a.Score, a.Level, tt.wantScore, tt.wantLevel)
			}
			for _, d := range Dimensions() {
				if got := a.Dimension(d); got != tt.wantDims[d] {
					t.Errorf("dimension %s = %v, want %v", d, got, tt.wantDims[d])
				}
			}
			if !reflect.DeepEqual(a.NextChange, tt.wantNext) {
				t.Errorf("NextChange = %v, want %v", a.NextChange, tt.wantNext)
			}
			if got := a.Levels[1].Unmet; !reflect.DeepEqual(got, tt.wantUnmet) {
				t.Errorf("L3 unmet = %q, want %q", got, tt.wantUnmet)
			}
			if a.ModelVersion != ModelVersion || !a.AssessedAt.Equal(tt.now) {
				t.Errorf("model, assessedAt = %q, %v", a.ModelVersion, a.AssessedAt)
			}
		})
	}

	// The decay factors quoted in the document.
	a := Assess([]Signal{admin, dns, org, scorecard}, DefaultThresholds(), expiry)
	want := []struct {
		decay   float64
		counted bool
		reason  string
	}{{0.9734, true, ""}, {0.8507, true, ""}, {0.9475, true, ""}, {0, false, ReasonExpired}}
	for i, w := range want {
		c := a.Contributions[i]
		if round(c.Decay, 4) != w.decay || c.Counted != w.counted || c.Reason != w.reason {
			t.Errorf("contribution %d = %+v, want decay %v counted %v reason %q", i, c, w.decay, w.counted, w.reason)
		}
	}
}

func TestNoSignalsIsL1(t *testing.T) {
	a := Assess(nil, DefaultThresholds(), t0)
	if a.Score != 0 || a.Level != policy.L1 || a.NextChange != nil {
		t.Errorf("Assess(nil) = score %v level %v next %v", a.Score, a.Level, a.NextChange)
	}
	if len(a.Dimensions) != 5 || len(a.Levels) != 4 || a.Contributions == nil {
		t.Errorf("Assess(nil) shape = %+v", a)
	}
	b, _ := json.Marshal(a)
	if !strings.Contains(string(b), `"contributions":[]`) || !strings.Contains(string(b), `"level":"L1"`) {
		t.Errorf("JSON = %s", b)
	}
}

func TestDecay(t *testing.T) {
	spec, _ := LookupKind("scorecard.score") // half-life 30 days, weight 0.4 of 1
	tests := []struct {
		name      string
		age       time.Duration
		wantDecay float64
	}{
		{"fresh signal has no decay", 0, 1},
		{"one half-life halves the contribution", spec.HalfLife, 0.5},
		{"two half-lives quarter it", 2 * spec.HalfLife, 0.25},
		{"half a half-life is 1/sqrt(2)", spec.HalfLife / 2, math.Sqrt(0.5)},
		{"within clock skew in the future counts as fresh", -time.Minute, 1},
		{"exactly at clock skew in the future counts as fresh", -ClockSkew, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assess([]Signal{sig("s", "scorecard.score", 10, t0.Add(-tt.age))}, DefaultThresholds(), t0)
			c := a.Contributions[0]
			if math.Abs(c.Decay-tt.wantDecay) > 1e-15 || !c.Counted {
				t.Errorf("decay = %v counted %v, want %v", c.Decay, c.Counted, tt.wantDecay)
			}
			if want := round(0.4*tt.wantDecay, 4); a.Dimension(DimSupplyChain) != want {
				t.Errorf("supply_chain = %v, want %v", a.Dimension(DimSupplyChain), want)
			}
			if math.Abs(c.Weighted-0.4*tt.wantDecay) > 1e-15 {
				t.Errorf("weighted = %v, want %v", c.Weighted, 0.4*tt.wantDecay)
			}
		})
	}
}

func TestLiveness(t *testing.T) {
	tests := []struct {
		name       string
		signal     Signal
		wantLive   bool
		wantReason string
	}{
		{"no expiry is live", sig("s", "identity.dns_verified", 1, t0.Add(-time.Hour)), true, ""},
		{"expiry in the future is live", expiring(sig("s", "identity.dns_verified", 1, t0.Add(-time.Hour)), t0.Add(time.Nanosecond)), true, ""},
		{"expiry now is expired", expiring(sig("s", "identity.dns_verified", 1, t0.Add(-time.Hour)), t0), false, ReasonExpired},
		{"expiry in the past is expired", expiring(sig("s", "identity.dns_verified", 1, t0.Add(-time.Hour)), t0.Add(-time.Minute)), false, ReasonExpired},
		{"observed within clock skew is live", sig("s", "identity.dns_verified", 1, t0.Add(ClockSkew)), true, ""},
		{"observed beyond clock skew is not live", sig("s", "identity.dns_verified", 1, t0.Add(ClockSkew+time.Nanosecond)), false, ReasonFuture},
		{"expired wins over future", expiring(sig("s", "identity.dns_verified", 1, t0.Add(time.Hour)), t0), false, ReasonExpired},
		{"unknown kind never counts", sig("s", "github.stars", 1, t0), false, ReasonUnknownKind},
		{"invalid value never counts", sig("s", "scorecard.score", 42, t0), false, ReasonInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assess([]Signal{tt.signal}, DefaultThresholds(), t0)
			c := a.Contributions[0]
			if c.Live != tt.wantLive || c.Counted != tt.wantLive || c.Reason != tt.wantReason {
				t.Fatalf("contribution = %+v, want live=counted=%v reason %q", c, tt.wantLive, tt.wantReason)
			}
			if !tt.wantLive && (a.Score != 0 || c.Decay != 0 || c.Weighted != 0) {
				t.Errorf("a signal that is not live contributed: score %v, %+v", a.Score, c)
			}
			if tt.wantLive && a.Score == 0 {
				t.Error("a live signal contributed nothing")
			}
		})
	}
}

func TestMissingEvidenceCountsAsZero(t *testing.T) {
	// Only one of the three identity kinds: identity = 0.2 / (0.4+0.4+0.2).
	a := Assess([]Signal{sig("s", "identity.dns_verified", 1, t0)}, DefaultThresholds(), t0)
	if got := a.Dimension(DimIdentity); got != 0.2 {
		t.Errorf("identity = %v, want 0.2", got)
	}
	if a.Score != 6 || a.Level != policy.L1 {
		t.Errorf("score, level = %v, %v, want 6, L1", a.Score, a.Level)
	}
	// A false boolean is evidence of "not satisfied": same as missing.
	b := Assess([]Signal{sig("s", "identity.dns_verified", 1, t0), sig("t", "identity.admin_attestation", 0, t0)}, DefaultThresholds(), t0)
	if b.Score != a.Score || b.Level != a.Level {
		t.Errorf("a false attestation changed the score: %v vs %v", b.Score, a.Score)
	}
}

func TestEverythingMaximalIsL5(t *testing.T) {
	var signals []Signal
	for _, k := range Kinds() {
		v := k.Max
		if k.Normalization == NormInverse {
			v = k.Min
		}
		signals = append(signals, sig(k.Kind, k.Kind, v, t0))
	}
	a := Assess(signals, DefaultThresholds(), t0)
	if a.Score != 100 || a.Level != policy.L5 {
		t.Errorf("score, level = %v, %v, want 100, L5", a.Score, a.Level)
	}
	for _, d := range a.Dimensions {
		if d.Score != 1 {
			t.Errorf("%s = %v, want 1", d.Dimension, d.Score)
		}
	}
}

func TestStrongestSignalOfAKindCounts(t *testing.T) {
	old := sig("a-old", "scorecard.score", 9, t0.Add(-60*24*time.Hour)) // 0.9 × 0.25 = 0.225
	fresh := sig("b-fresh", "scorecard.score", 6, t0)                   // 0.6
	a := Assess([]Signal{old, fresh}, DefaultThresholds(), t0)
	if a.Contributions[0].Counted || a.Contributions[0].Reason != ReasonSuperseded || !a.Contributions[0].Live {
		t.Errorf("old = %+v, want live and superseded", a.Contributions[0])
	}
	if !a.Contributions[1].Counted || a.Contributions[1].Reason != "" {
		t.Errorf("fresh = %+v, want counted", a.Contributions[1])
	}
	if got := a.Dimension(DimSupplyChain); got != 0.24 {
		t.Errorf("supply_chain = %v, want 0.4 × 0.6 = 0.24", got)
	}

	// Equal contributions: the later observation counts, then the smaller ID.
	x := sig("x", "identity.dns_verified", 1, t0)
	y := sig("y", "identity.dns_verified", 1, t0.Add(time.Minute)) // within skew: also decay 1
	z := sig("w", "identity.dns_verified", 1, t0.Add(time.Minute))
	for _, order := range [][]Signal{{x, y, z}, {z, y, x}, {y, x, z}} {
		a := Assess(order, DefaultThresholds(), t0)
		for _, c := range a.Contributions {
			if c.Counted != (c.SignalID == "w") {
				t.Errorf("order %v: %s counted = %v, want only w counted", ids(order), c.SignalID, c.Counted)
			}
		}
	}
}

func ids(s []Signal) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].ID
	}
	return out
}

func TestNextChange(t *testing.T) {
	e1, e2 := t0.Add(48*time.Hour), t0.Add(24*time.Hour)
	tests := []struct {
		name    string
		signals []Signal
		want    *time.Time
	}{
		{"no expiry, nothing pending", []Signal{sig("a", "identity.dns_verified", 1, t0)}, nil},
		{"earliest expiry of live signals", []Signal{
			expiring(sig("a", "identity.dns_verified", 1, t0), e1),
			expiring(sig("b", "scorecard.score", 5, t0), e2),
			expiring(sig("c", "scorecard.score", 1, t0), e1), // superseded but live
		}, &e2},
		{"expired signals are ignored", []Signal{expiring(sig("a", "identity.dns_verified", 1, t0.Add(-time.Hour)), t0)}, nil},
		{"a future signal coming within skew", []Signal{
			expiring(sig("a", "identity.dns_verified", 1, t0), e1),
			sig("f", "scorecard.score", 5, t0.Add(time.Hour)),
		}, ptr(t0.Add(time.Hour - ClockSkew))},
		{"a future signal that expires before it is live is ignored", []Signal{
			expiring(sig("f", "scorecard.score", 5, t0.Add(time.Hour)), t0.Add(time.Hour-ClockSkew)),
		}, nil},
		{"unknown kinds are ignored", []Signal{expiring(sig("a", "nope", 1, t0), e2)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assess(tt.signals, DefaultThresholds(), t0)
			if (a.NextChange == nil) != (tt.want == nil) || (tt.want != nil && !a.NextChange.Equal(*tt.want)) {
				t.Errorf("NextChange = %v, want %v", a.NextChange, tt.want)
			}
		})
	}
}

func ptr(t time.Time) *time.Time { return &t }

func TestLevelIsMonotone(t *testing.T) {
	// Thresholds where L3's own requirement is met but L2's is not: L3 is
	// not granted because L2 is not met.
	th := DefaultThresholds()
	th.Levels[policy.L2] = LevelRequirement{MinScore: 0, Dimensions: map[Dimension]float64{DimRuntime: 0.5}}
	th.Levels[policy.L3] = LevelRequirement{MinScore: 0, Dimensions: map[Dimension]float64{DimIdentity: 0.1}}
	a := Assess([]Signal{sig("a", "identity.dns_verified", 1, t0)}, th, t0)
	if a.Level != policy.L1 || a.Levels[0].Met || !a.Levels[1].Met {
		t.Errorf("level = %v, checks %+v", a.Level, a.Levels)
	}

	// A level missing from the thresholds cannot be reached, nor any above.
	th = DefaultThresholds()
	delete(th.Levels, policy.L3)
	for _, l := range []policy.TrustLevel{policy.L4, policy.L5} {
		th.Levels[l] = LevelRequirement{}
	}
	a = Assess([]Signal{sig("a", "identity.dns_verified", 1, t0), sig("b", "identity.admin_attestation", 1, t0)}, th, t0)
	if a.Level != policy.L2 || a.Levels[1].Unmet[0] != "no requirement configured for L3" {
		t.Errorf("level = %v, checks %+v", a.Level, a.Levels)
	}
}

func TestAssessIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := Kinds()
	for round := 0; round < 200; round++ {
		n := rng.IntN(20)
		signals := make([]Signal, n)
		for i := range signals {
			k := kinds[rng.IntN(len(kinds))]
			v := k.Min + rng.Float64()*(min(k.Max, 400)-k.Min)
			if k.Integer {
				v = math.Floor(v)
			}
			s := Signal{
				ID:         string(rune('a' + rng.IntN(5))),
				Source:     "src",
				Kind:       k.Kind,
				Value:      v,
				ObservedAt: t0.Add(-time.Duration(rng.IntN(200*24)) * time.Hour).Add(time.Duration(rng.IntN(3)) * ClockSkew),
			}
			if rng.IntN(2) == 0 {
				s.ExpiresAt = ptr(t0.Add(time.Duration(rng.IntN(100)-50) * time.Hour))
			}
			signals[i] = s
		}
		want := Assess(signals, DefaultThresholds(), t0)
		perm := rng.Perm(n)
		shuffled := make([]Signal, n)
		for i, p := range perm {
			shuffled[i] = signals[p]
		}
		got := Assess(shuffled, DefaultThresholds(), t0.In(time.FixedZone("X", 3600)))
		if got.Score != want.Score || got.Level != want.Level ||
			!reflect.DeepEqual(got.Dimensions, want.Dimensions) || !reflect.DeepEqual(got.Levels, want.Levels) ||
			!reflect.DeepEqual(got.NextChange, want.NextChange) || !got.AssessedAt.Equal(want.AssessedAt) {
			t.Fatalf("round %d: shuffled input changed the assessment:\n got %+v\nwant %+v", round, got, want)
		}
		// Contributions follow the input order; as a set they are identical.
		for i, p := range perm {
			if !reflect.DeepEqual(got.Contributions[i], want.Contributions[p]) && !hasIdenticalCopy(signals, p) {
				t.Fatalf("round %d: contribution %d = %+v, want %+v", round, i, got.Contributions[i], want.Contributions[p])
			}
		}
		// Bit for bit: the same input twice gives the same JSON.
		b1, _ := json.Marshal(want)
		b2, _ := json.Marshal(Assess(signals, DefaultThresholds(), t0))
		if string(b1) != string(b2) {
			t.Fatalf("round %d: repeated Assess differs", round)
		}
	}
}

// hasIdenticalCopy reports whether the input holds a fully identical copy of
// signals[p]: which copy is marked counted then depends on input order.
func hasIdenticalCopy(signals []Signal, p int) bool {
	n := 0
	for _, s := range signals {
		if reflect.DeepEqual(s, signals[p]) {
			n++
		}
	}
	return n > 1
}

func TestAssessDoesNotModifyInput(t *testing.T) {
	signals := []Signal{sig("b", "scorecard.score", 5, t0), sig("a", "scorecard.score", 9, t0)}
	before := slices.Clone(signals)
	Assess(signals, DefaultThresholds(), t0)
	if !reflect.DeepEqual(signals, before) {
		t.Error("Assess modified its input")
	}
}

func TestSignalValidate(t *testing.T) {
	good := expiring(sig("s", "scorecard.score", 7, t0), t0.Add(time.Hour))
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	tests := []struct {
		name     string
		mutate   func(*Signal)
		wantPath string
	}{
		{"missing id", func(s *Signal) { s.ID = " " }, "id"},
		{"missing source", func(s *Signal) { s.Source = "" }, "source"},
		{"unknown kind", func(s *Signal) { s.Kind = "x" }, "kind"},
		{"value out of range", func(s *Signal) { s.Value = 10.5 }, "value"},
		{"missing observedAt", func(s *Signal) { s.ObservedAt = time.Time{} }, "observedAt"},
		{"expiry before observation", func(s *Signal) { s.ExpiresAt = ptr(t0) }, "expiresAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.mutate(&s)
			err := s.Validate()
			fe, ok := firstFieldError(err)
			if !ok || fe.Path != tt.wantPath {
				t.Errorf("Validate() = %v, want first path %q", err, tt.wantPath)
			}
		})
	}
}

func firstFieldError(err error) (*FieldError, bool) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		fe, ok := j.Unwrap()[0].(*FieldError)
		return fe, ok
	}
	return nil, false
}

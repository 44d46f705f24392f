package trust

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/knaight/knaight/shared/policy"
)

// ClockSkew is the tolerance for a signal observed in the future: up to it,
// the signal is live with age 0; beyond it, the signal is not live.
const ClockSkew = 5 * time.Minute

// Signal is one piece of externally sourced evidence about an agent, as
// recorded by a connector, a verified signed webhook or an admin attestation.
// The trust model never creates signals; it only scores them.
type Signal struct {
	// ID identifies the recorded signal; it breaks ties deterministically.
	ID string `json:"id"`
	// Source names who produced it, e.g. "github", "scorecard", "scw",
	// "isaca", "admin:alice@example.com".
	Source string `json:"source"`
	// Kind is one of the catalogue (Kinds).
	Kind string `json:"kind"`
	// Value is the raw value in the kind's unit (see ValidateValue).
	Value float64 `json:"value"`
	// ObservedAt is when the source observed the value.
	ObservedAt time.Time `json:"observedAt"`
	// ExpiresAt, if set, is the first instant at which the signal is no
	// longer live.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// Validate checks a signal before it is stored: non-empty id and source, a
// catalogue kind, a value in range, a set observedAt and an expiresAt (if
// any) after observedAt. Errors are *FieldError (joined) named by JSON field.
func (s Signal) Validate() error {
	var errs []error
	add := func(path, reason string) { errs = append(errs, &FieldError{Path: path, Reason: reason}) }
	if strings.TrimSpace(s.ID) == "" {
		add("id", "required")
	}
	if strings.TrimSpace(s.Source) == "" {
		add("source", "required: every signal names the connector, webhook or admin that produced it")
	}
	if _, ok := kindIndex[s.Kind]; !ok {
		add("kind", fmt.Sprintf("unknown signal kind %q", clip(s.Kind)))
	} else if err := ValidateValue(s.Kind, s.Value); err != nil {
		add("value", err.Error())
	}
	if s.ObservedAt.IsZero() {
		add("observedAt", "required")
	} else if s.ExpiresAt != nil && !s.ExpiresAt.After(s.ObservedAt) {
		add("expiresAt", "must be after observedAt")
	}
	return errors.Join(errs...)
}

// Reasons a contribution does not count (Contribution.Reason).
const (
	ReasonExpired      = "expired"
	ReasonFuture       = "observed in the future"
	ReasonSuperseded   = "superseded by a stronger signal of the same kind"
	ReasonUnknownKind  = "unknown kind"
	ReasonInvalidValue = "invalid value"
)

// Contribution explains what one input signal did to the assessment.
type Contribution struct {
	SignalID  string    `json:"signalId"`
	Source    string    `json:"source"`
	Kind      string    `json:"kind"`
	Dimension Dimension `json:"dimension,omitempty"`
	// Weight is the kind's weight inside its dimension.
	Weight float64 `json:"weight"`
	// Normalized is the raw value mapped to [0,1].
	Normalized float64 `json:"normalized"`
	// Decay is 0.5^(age/halfLife) for a live signal, 0 otherwise.
	Decay float64 `json:"decay"`
	// Weighted is Weight × Normalized × Decay / (sum of the weights of the
	// dimension's kinds): what the signal adds to its dimension score if it
	// is counted. The Weighted of the counted signals of a dimension sum to
	// the dimension score before rounding.
	Weighted float64 `json:"weighted"`
	// Counted: the signal is the one that counts for its kind.
	Counted bool `json:"counted"`
	// Live: not expired and not observed in the future.
	Live bool `json:"live"`
	// Reason is why the signal does not count ("" if it counts).
	Reason string `json:"reason,omitempty"`
}

// DimensionScore is the score of one dimension.
type DimensionScore struct {
	Dimension Dimension `json:"dimension"`
	// Weight is the dimension's weight in the overall score.
	Weight float64 `json:"weight"`
	// Score is in [0,1], rounded to 4 decimals.
	Score float64 `json:"score"`
}

// LevelCheck says whether the requirements of one level, on their own, are
// met, and if not which ones are not.
type LevelCheck struct {
	Level policy.TrustLevel `json:"level"`
	Met   bool              `json:"met"`
	// Unmet lists the unmet requirements, e.g. "supply_chain 0.0000 < 0.2500".
	Unmet []string `json:"unmet,omitempty"`
}

// Assessment is the result of Assess.
type Assessment struct {
	ModelVersion string    `json:"modelVersion"`
	AssessedAt   time.Time `json:"assessedAt"`
	// Score is in [0,100], rounded to 2 decimals.
	Score float64 `json:"score"`
	// Level is the highest level whose requirements and those of every
	// lower level are met; at least L1.
	Level policy.TrustLevel `json:"level"`
	// Dimensions has one entry per dimension, in Dimensions order.
	Dimensions []DimensionScore `json:"dimensions"`
	// Levels has one entry per level L2..L5, ascending.
	Levels []LevelCheck `json:"levels"`
	// Contributions has one entry per input signal, in input order.
	Contributions []Contribution `json:"contributions"`
	// NextChange, if set, is the earliest instant after AssessedAt at which
	// the set of live signals changes: a live signal expires, or a signal
	// observed in the future comes within ClockSkew. Recompute then at the
	// latest. Decay lowers scores continuously in between.
	NextChange *time.Time `json:"nextChange,omitempty"`
}

// Dimension returns the score of dimension d (0 if unknown).
func (a Assessment) Dimension(d Dimension) float64 {
	for _, ds := range a.Dimensions {
		if ds.Dimension == d {
			return ds.Score
		}
	}
	return 0
}

// Assess scores signals at instant now against th. It is a pure function:
// the same signals (in any order), thresholds and instant give the same
// Assessment, apart from Contributions following the input order. Signals
// of unknown kinds or with invalid values are reported but never counted;
// a level missing from th cannot be reached. Validate th and signals first.
func Assess(signals []Signal, th Thresholds, now time.Time) Assessment {
	now = now.Round(0) // drop any monotonic reading: wall clock only
	a := Assessment{
		ModelVersion:  ModelVersion,
		AssessedAt:    now.UTC(),
		Contributions: make([]Contribution, len(signals)),
	}
	strength := make([]float64, len(signals)) // Normalized × Decay of live signals
	var best [len(catalogue)]int              // index+1 of the counted signal per kind; 0 = none
	var next time.Time
	noteChange := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for i := range signals {
		s := &signals[i]
		c := &a.Contributions[i]
		*c = Contribution{SignalID: s.ID, Source: s.Source, Kind: s.Kind}
		ki, ok := kindIndex[s.Kind]
		if !ok {
			c.Reason = ReasonUnknownKind
			continue
		}
		spec := &catalogue[ki]
		c.Dimension, c.Weight = spec.Dimension, spec.Weight
		n, err := spec.normalize(s.Value)
		if err != nil {
			c.Reason = ReasonInvalidValue
			continue
		}
		c.Normalized = n
		if s.ExpiresAt != nil && !now.Before(*s.ExpiresAt) {
			c.Reason = ReasonExpired
			continue
		}
		if s.ObservedAt.After(now.Add(ClockSkew)) {
			c.Reason = ReasonFuture
			// It becomes live once within ClockSkew, unless it expires first.
			if at := s.ObservedAt.Add(-ClockSkew); s.ExpiresAt == nil || at.Before(*s.ExpiresAt) {
				noteChange(at)
			}
			continue
		}
		c.Live = true
		if s.ExpiresAt != nil {
			noteChange(*s.ExpiresAt)
		}
		c.Decay = decay(now.Sub(s.ObservedAt), spec.HalfLife)
		strength[i] = n * c.Decay
		c.Weighted = spec.Weight * strength[i] / dimensionWeightSums[dimensionIndex(spec.Dimension)]
		if j := best[ki] - 1; j < 0 || stronger(signals, strength, i, j) {
			best[ki] = i + 1
		}
	}
	for i := range a.Contributions {
		c := &a.Contributions[i]
		if !c.Live {
			continue
		}
		if best[kindIndex[c.Kind]] == i+1 {
			c.Counted = true
		} else {
			c.Reason = ReasonSuperseded
		}
	}
	if !next.IsZero() {
		t := next.UTC()
		a.NextChange = &t
	}

	// Dimension scores: weighted mean over all kinds of the dimension, in
	// catalogue order; a kind without a counted signal contributes 0.
	var num [len(dimensionOrder)]float64
	for ki := range catalogue {
		if j := best[ki] - 1; j >= 0 {
			di := dimensionIndex(catalogue[ki].Dimension)
			num[di] += catalogue[ki].Weight * strength[j]
		}
	}
	a.Dimensions = make([]DimensionScore, len(dimensionOrder))
	var total, weights float64
	for di, d := range dimensionOrder {
		score := round(num[di]/dimensionWeightSums[di], 4)
		a.Dimensions[di] = DimensionScore{Dimension: d, Weight: dimensionWeights[di], Score: score}
		total += dimensionWeights[di] * score
		weights += dimensionWeights[di]
	}
	a.Score = round(100*total/weights, 2)

	// Levels: monotone, L1 needs nothing.
	a.Level = policy.L1
	a.Levels = make([]LevelCheck, 0, 4)
	for l := policy.L2; l <= policy.L5; l++ {
		lc := LevelCheck{Level: l}
		if r, ok := th.Levels[l]; !ok {
			lc.Unmet = []string{"no requirement configured for " + l.String()}
		} else {
			lc.Unmet = unmet(r, a)
		}
		lc.Met = len(lc.Unmet) == 0
		if lc.Met && a.Level == l-1 {
			a.Level = l
		}
		a.Levels = append(a.Levels, lc)
	}
	return a
}

// decay is 0.5^(age/halfLife), 1 for age <= 0 (observed within ClockSkew).
func decay(age, halfLife time.Duration) float64 {
	if age <= 0 {
		return 1
	}
	return math.Exp2(-float64(age) / float64(halfLife))
}

// stronger reports whether live signal i beats live signal j of the same
// kind: greater Normalized × Decay, then later ObservedAt, then smaller ID,
// then smaller Source, then greater raw Value, then later ExpiresAt (none is
// latest). Fully identical signals keep the first in input order; which one
// is marked counted then makes no observable difference.
func stronger(signals []Signal, strength []float64, i, j int) bool {
	if strength[i] != strength[j] {
		return strength[i] > strength[j]
	}
	si, sj := &signals[i], &signals[j]
	if !si.ObservedAt.Equal(sj.ObservedAt) {
		return si.ObservedAt.After(sj.ObservedAt)
	}
	if si.ID != sj.ID {
		return si.ID < sj.ID
	}
	if si.Source != sj.Source {
		return si.Source < sj.Source
	}
	if si.Value != sj.Value {
		return si.Value > sj.Value
	}
	switch {
	case si.ExpiresAt == nil || sj.ExpiresAt == nil:
		return si.ExpiresAt == nil && sj.ExpiresAt != nil
	default:
		return si.ExpiresAt.After(*sj.ExpiresAt)
	}
}

// unmet lists the requirements of r that a does not meet, in a fixed order:
// score, then dimensions in Dimensions order, then unknown dimensions (which
// score 0) sorted.
func unmet(r LevelRequirement, a Assessment) []string {
	var out []string
	if !(a.Score >= r.MinScore) { // NaN never met
		out = append(out, fmt.Sprintf("score %.2f < %.2f", a.Score, r.MinScore))
	}
	for _, ds := range a.Dimensions {
		if want, ok := r.Dimensions[ds.Dimension]; ok && !(ds.Score >= want) {
			out = append(out, fmt.Sprintf("%s %.4f < %.4f", ds.Dimension, ds.Score, want))
		}
	}
	var unknown []string
	for d, want := range r.Dimensions {
		if !d.Valid() && !(0 >= want) {
			unknown = append(unknown, fmt.Sprintf("%s 0.0000 < %.4f", clip(string(d)), want))
		}
	}
	slices.Sort(unknown)
	return append(out, unknown...)
}

func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/knaight/knaight/manager/internal/strictjson"
	"github.com/knaight/knaight/shared/policy"
)

// LevelRequirement is what an agent must reach for one level: a minimum
// overall score (0..100) and minimum dimension scores (0..1). A dimension
// absent from Dimensions is not required (minimum 0).
type LevelRequirement struct {
	MinScore   float64               `json:"minScore"`
	Dimensions map[Dimension]float64 `json:"dimensions,omitempty"`
}

// Dimension returns the minimum score required for d (0 if absent).
func (r LevelRequirement) Dimension(d Dimension) float64 { return r.Dimensions[d] }

// Thresholds are an organization's level lattice: the requirements of L2..L5
// (L1 means registered and has none). Valid thresholds have exactly the keys
// L2..L5 and form a lattice (see Validate).
//
// In JSON: {"levels": {"L2": {"minScore": 15, "dimensions": {"identity": 0.5}}, ...}}.
type Thresholds struct {
	Levels map[policy.TrustLevel]LevelRequirement `json:"levels"`
}

// DefaultThresholds returns the default lattice (a fresh copy each call):
//
//	level  minScore  identity  publisher  supply_chain  human_competence  runtime
//	L2     15        0.50      -          -             -                 -
//	L3     28        0.50      0.30       0.25          -                 -
//	L4     55        0.70      0.50       0.50          0.40              0.40
//	L5     80        0.90      0.70       0.70          0.60              0.70
func DefaultThresholds() Thresholds {
	return Thresholds{Levels: map[policy.TrustLevel]LevelRequirement{
		policy.L2: {MinScore: 15, Dimensions: map[Dimension]float64{
			DimIdentity: 0.5,
		}},
		policy.L3: {MinScore: 28, Dimensions: map[Dimension]float64{
			DimIdentity: 0.5, DimPublisher: 0.3, DimSupplyChain: 0.25,
		}},
		policy.L4: {MinScore: 55, Dimensions: map[Dimension]float64{
			DimIdentity: 0.7, DimPublisher: 0.5, DimSupplyChain: 0.5, DimHumanCompetence: 0.4, DimRuntime: 0.4,
		}},
		policy.L5: {MinScore: 80, Dimensions: map[Dimension]float64{
			DimIdentity: 0.9, DimPublisher: 0.7, DimSupplyChain: 0.7, DimHumanCompetence: 0.6, DimRuntime: 0.7,
		}},
	}}
}

// Requirement returns the requirement of level l. L1 has the empty
// requirement. It returns false for a level that is not configured or is
// not one of L1..L5.
func (th Thresholds) Requirement(l policy.TrustLevel) (LevelRequirement, bool) {
	if l == policy.L1 {
		return LevelRequirement{}, true
	}
	if l < policy.L2 || l > policy.L5 {
		return LevelRequirement{}, false
	}
	r, ok := th.Levels[l]
	return r, ok
}

// MinScore returns the minimum overall score of level l: 0 for L1 (and for
// LevelNone), +Inf for a level that is not configured or not a level, since
// such a level cannot be reached.
func (th Thresholds) MinScore(l policy.TrustLevel) float64 {
	if l <= policy.L1 {
		return 0
	}
	r, ok := th.Requirement(l)
	if !ok {
		return math.Inf(1)
	}
	return r.MinScore
}

// FieldError is a validation error about one field, named by its JSON path
// (e.g. "levels.L4.dimensions.identity"), so an API can point at it.
type FieldError struct {
	Path   string
	Reason string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Reason }

// Validate checks the thresholds. It returns nil or the errors.Join of one
// *FieldError per problem, in a fixed order (levels ascending; minScore,
// then dimensions in Dimensions order, then unknown dimensions sorted). Use
// errors.As for the first one. The rules:
//
//   - levels holds exactly L2, L3, L4 and L5;
//   - minScore is a number in [0, 100], each dimension minimum a number in
//     [0, 1], and every dimension key is one of Dimensions;
//   - lattice: for n = 3..5, Ln.minScore >= L(n-1).minScore and, for every
//     dimension d, Ln.dimensions.d >= L(n-1).dimensions.d (absent = 0).
func (th Thresholds) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	// Keys that are not L2..L5, in ascending order.
	var extra []policy.TrustLevel
	for l := range th.Levels {
		if l < policy.L2 || l > policy.L5 {
			extra = append(extra, l)
		}
	}
	slices.Sort(extra)
	for _, l := range extra {
		add("levels."+levelKey(l), "only L2, L3, L4 and L5 carry requirements (L1 means registered)")
	}
	var prev LevelRequirement
	havePrev := false
	for l := policy.L2; l <= policy.L5; l++ {
		base := "levels." + l.String()
		r, ok := th.Levels[l]
		if !ok {
			add(base, "missing: every level L2..L5 needs a requirement")
			havePrev = false
			continue
		}
		if !inRange(r.MinScore, 0, 100) {
			add(base+".minScore", "%s out of range: want a number in [0, 100]", formatNumber(r.MinScore))
		} else if havePrev && inRange(prev.MinScore, 0, 100) && r.MinScore < prev.MinScore {
			add(base+".minScore", "%s is below %s (%s): a level must require at least what the level below requires",
				formatNumber(r.MinScore), "levels."+(l-1).String()+".minScore", formatNumber(prev.MinScore))
		}
		for _, d := range dimensionOrder {
			path := base + ".dimensions." + string(d)
			v := r.Dimensions[d]
			if !inRange(v, 0, 1) {
				add(path, "%s out of range: want a number in [0, 1]", formatNumber(v))
				continue
			}
			if pv := prev.Dimensions[d]; havePrev && inRange(pv, 0, 1) && v < pv {
				add(path, "%s is below %s (%s): a level must require at least what the level below requires",
					formatNumber(v), "levels."+(l-1).String()+".dimensions."+string(d), formatNumber(pv))
			}
		}
		var unknown []string
		for d := range r.Dimensions {
			if !d.Valid() {
				unknown = append(unknown, string(d))
			}
		}
		slices.Sort(unknown)
		for _, d := range unknown {
			add(base+".dimensions."+clip(d), "unknown dimension: want one of %s", dimensionList())
		}
		prev, havePrev = r, true
	}
	return errors.Join(errs...)
}

func inRange(v, lo, hi float64) bool { return v >= lo && v <= hi } // false for NaN

func dimensionList() string {
	s := make([]string, len(dimensionOrder))
	for i, d := range dimensionOrder {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

// levelKey is the JSON key of a level: "L1".."L5", or "L<n>" for anything
// else so that a path still says which key it is about.
func levelKey(l policy.TrustLevel) string {
	if l.Valid() {
		return l.String()
	}
	return fmt.Sprintf("L%d", uint8(l))
}

// MarshalJSON encodes the thresholds as {"levels": {"L2": {...}, ...}}.
func (th Thresholds) MarshalJSON() ([]byte, error) {
	var levels map[string]LevelRequirement
	if th.Levels != nil {
		levels = make(map[string]LevelRequirement, len(th.Levels))
		for l, r := range th.Levels {
			if !l.Valid() {
				return nil, fmt.Errorf("levels: key %d is not a trust level", uint8(l))
			}
			levels[l.String()] = r
		}
	}
	return json.Marshal(struct {
		Levels map[string]LevelRequirement `json:"levels"`
	}{levels})
}

// UnmarshalJSON decodes {"levels": {"L2": {...}, ...}}, rejecting unknown
// fields and level keys other than L1..L5; errors name the JSON path. It does
// not call Validate.
func (th *Thresholds) UnmarshalJSON(b []byte) error {
	var raw struct {
		Levels map[string]json.RawMessage `json:"levels"`
	}
	if err := strictjson.Decode(b, &raw); err != nil {
		return fmt.Errorf("thresholds: %w", err)
	}
	var levels map[policy.TrustLevel]LevelRequirement
	if raw.Levels != nil {
		levels = make(map[policy.TrustLevel]LevelRequirement, len(raw.Levels))
		keys := make([]string, 0, len(raw.Levels))
		for k := range raw.Levels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			l, err := policy.ParseTrustLevel(k)
			if err != nil {
				return &FieldError{Path: "levels." + clip(k), Reason: "not a trust level: want L2, L3, L4 or L5"}
			}
			var r LevelRequirement
			if err := strictjson.Decode(raw.Levels[k], &r); err != nil {
				return &FieldError{Path: "levels." + k, Reason: err.Error()}
			}
			levels[l] = r
		}
	}
	th.Levels = levels
	return nil
}

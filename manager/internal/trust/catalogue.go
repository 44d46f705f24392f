package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ModelVersion names this version of the trust model (catalogue, weights,
// half-lives, formulas and default thresholds). Any change to one of them
// that can change a score or a level must change ModelVersion.
const ModelVersion = "knaight-trust-v1"

// Dimension is one of the five independent aspects of trust an agent is
// scored on.
type Dimension string

// The five dimensions, in their fixed order (see Dimensions).
const (
	// DimIdentity: is the agent what its ANS registration says it is?
	DimIdentity Dimension = "identity"
	// DimPublisher: who publishes the agent, and are they established?
	DimPublisher Dimension = "publisher"
	// DimSupplyChain: how is the agent's code built and protected?
	DimSupplyChain Dimension = "supply_chain"
	// DimHumanCompetence: are the humans behind the agent trained and
	// certified?
	DimHumanCompetence Dimension = "human_competence"
	// DimRuntime: how has the agent behaved in operation?
	DimRuntime Dimension = "runtime"
)

// dimensionOrder and dimensionWeights are parallel: the weight of each
// dimension in the overall score. They sum to 1.
var (
	dimensionOrder   = [...]Dimension{DimIdentity, DimPublisher, DimSupplyChain, DimHumanCompetence, DimRuntime}
	dimensionWeights = [...]float64{0.30, 0.15, 0.25, 0.15, 0.15}
)

// Dimensions returns the five dimensions in their fixed order: identity,
// publisher, supply_chain, human_competence, runtime. Every ordered output of
// this package follows it.
func Dimensions() []Dimension {
	out := make([]Dimension, len(dimensionOrder))
	copy(out, dimensionOrder[:])
	return out
}

// Valid reports whether d is one of the five dimensions.
func (d Dimension) Valid() bool { return dimensionIndex(d) >= 0 }

// DimensionWeight returns the weight of d in the overall score (0 for an
// unknown dimension). The weights of the five dimensions sum to 1.
func DimensionWeight(d Dimension) float64 {
	if i := dimensionIndex(d); i >= 0 {
		return dimensionWeights[i]
	}
	return 0
}

func dimensionIndex(d Dimension) int {
	for i, x := range dimensionOrder {
		if x == d {
			return i
		}
	}
	return -1
}

// Normalization names how a kind's raw value maps to [0,1].
type Normalization string

// The normalizations of the catalogue.
const (
	// NormBool: the value must be 0 or 1 and is used as is.
	NormBool Normalization = "bool"
	// NormLinear: (value − Min) / (Max − Min).
	NormLinear Normalization = "linear"
	// NormSaturating: min(value, Saturation) / Saturation.
	NormSaturating Normalization = "saturating"
	// NormInverse: 1 − value, for a value in [0,1] where less is better.
	NormInverse Normalization = "inverse"
)

// KindSpec describes one signal kind of the fixed catalogue.
type KindSpec struct {
	// Kind is the signal kind, e.g. "scorecard.score".
	Kind string `json:"kind"`
	// Dimension is the dimension the kind counts towards.
	Dimension Dimension `json:"dimension"`
	// Weight is the kind's weight inside its dimension. The weights of the
	// kinds of one dimension sum to 1.
	Weight float64 `json:"weight"`
	// HalfLife is the age at which a signal's contribution has halved.
	// In JSON it is "halfLifeDays" (all half-lives are whole days).
	HalfLife time.Duration `json:"-"`
	// Unit is the unit of the raw value: "bool", "days", "score", "ratio"
	// or "level".
	Unit string `json:"unit"`
	// Normalization maps the raw value to [0,1].
	Normalization Normalization `json:"normalization"`
	// Min and Max bound the accepted raw value, inclusive.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Saturation is, for NormSaturating, the raw value at and above which
	// the normalized value is 1.
	Saturation float64 `json:"saturation,omitempty"`
	// Integer requires a whole-number raw value.
	Integer bool `json:"integer,omitempty"`
	// Description says what the signal attests and where it comes from.
	Description string `json:"description"`
}

// MarshalJSON encodes the spec with its half-life as "halfLifeDays".
func (k KindSpec) MarshalJSON() ([]byte, error) {
	type plain KindSpec
	return json.Marshal(struct {
		plain
		HalfLifeDays float64 `json:"halfLifeDays"`
	}{plain(k), k.HalfLife.Hours() / 24})
}

// day is the unit of every half-life in the catalogue.
const day = 24 * time.Hour

// maxDays bounds "days" values (100 years): anything larger is a broken
// connector, not a very old account.
const maxDays = 36500

// catalogue is the fixed catalogue, grouped by dimension in dimension order.
// Its order is the summation order of dimension scores.
var catalogue = [...]KindSpec{
	// identity
	{Kind: "identity.admin_attestation", Dimension: DimIdentity, Weight: 0.4, HalfLife: 180 * day,
		Unit: "bool", Normalization: NormBool, Min: 0, Max: 1, Integer: true,
		Description: "An organization admin attested, under their own name, that the ANS registration belongs to the agent it describes."},
	{Kind: "identity.workload_attestation", Dimension: DimIdentity, Weight: 0.4, HalfLife: 30 * day,
		Unit: "bool", Normalization: NormBool, Min: 0, Max: 1, Integer: true,
		Description: "The agent presented a verified workload identity (SPIFFE SVID or OIDC workload token) matching its registration."},
	{Kind: "identity.dns_verified", Dimension: DimIdentity, Weight: 0.2, HalfLife: 30 * day,
		Unit: "bool", Normalization: NormBool, Min: 0, Max: 1, Integer: true,
		Description: "DNS of the agent's ANS host proves control by the registrant."},
	// publisher
	{Kind: "github.account_age_days", Dimension: DimPublisher, Weight: 0.3, HalfLife: 90 * day,
		Unit: "days", Normalization: NormSaturating, Min: 0, Max: maxDays, Saturation: 365,
		Description: "Age in days of the publisher's GitHub account or organization (saturates at 365)."},
	{Kind: "github.org_verified", Dimension: DimPublisher, Weight: 0.4, HalfLife: 90 * day,
		Unit: "bool", Normalization: NormBool, Min: 0, Max: 1, Integer: true,
		Description: "The publisher's GitHub organization has verified its domain."},
	{Kind: "publisher.admin_attestation", Dimension: DimPublisher, Weight: 0.3, HalfLife: 180 * day,
		Unit: "bool", Normalization: NormBool, Min: 0, Max: 1, Integer: true,
		Description: "An organization admin attested, under their own name, that the publisher is known and accountable."},
	// supply_chain
	{Kind: "scorecard.score", Dimension: DimSupplyChain, Weight: 0.4, HalfLife: 30 * day,
		Unit: "score", Normalization: NormLinear, Min: 0, Max: 10,
		Description: "OpenSSF Scorecard aggregate score (0..10) of the agent's source repository."},
	{Kind: "github.signed_commits_ratio", Dimension: DimSupplyChain, Weight: 0.2, HalfLife: 30 * day,
		Unit: "ratio", Normalization: NormLinear, Min: 0, Max: 1,
		Description: "Share (0..1) of recent commits on the default branch with a verified signature."},
	{Kind: "github.branch_protection", Dimension: DimSupplyChain, Weight: 0.2, HalfLife: 30 * day,
		Unit: "bool", Normalization: NormBool, Min: 0, Max: 1, Integer: true,
		Description: "The default branch requires reviews and forbids force pushes."},
	{Kind: "slsa.build_level", Dimension: DimSupplyChain, Weight: 0.2, HalfLife: 90 * day,
		Unit: "level", Normalization: NormLinear, Min: 0, Max: 3, Integer: true,
		Description: "Verified SLSA build level (0..3) of the agent's released artifact."},
	// human_competence
	{Kind: "scw.training_score", Dimension: DimHumanCompetence, Weight: 0.4, HalfLife: 180 * day,
		Unit: "score", Normalization: NormLinear, Min: 0, Max: 100,
		Description: "Secure Code Warrior training score (0..100) of the agent's maintainers, from a signed SCW webhook."},
	{Kind: "credential.isaca", Dimension: DimHumanCompetence, Weight: 0.3, HalfLife: 365 * day,
		Unit: "bool", Normalization: NormBool, Min: 0, Max: 1, Integer: true,
		Description: "A maintainer holds a valid ISACA credential (verified Open Badge)."},
	{Kind: "credential.certification", Dimension: DimHumanCompetence, Weight: 0.3, HalfLife: 365 * day,
		Unit: "bool", Normalization: NormBool, Min: 0, Max: 1, Integer: true,
		Description: "A maintainer holds another verified security certification."},
	// runtime
	{Kind: "runtime.incident_free_days", Dimension: DimRuntime, Weight: 0.5, HalfLife: 7 * day,
		Unit: "days", Normalization: NormSaturating, Min: 0, Max: maxDays, Saturation: 90,
		Description: "Days since the agent's last security incident, or since registration if none (saturates at 90)."},
	{Kind: "runtime.policy_violation_rate", Dimension: DimRuntime, Weight: 0.5, HalfLife: 7 * day,
		Unit: "ratio", Normalization: NormInverse, Min: 0, Max: 1,
		Description: "Share (0..1) of the agent's recent MCP calls denied by policy; lower is better."},
}

// kindIndex maps a kind to its index in catalogue.
var kindIndex = func() map[string]int {
	m := make(map[string]int, len(catalogue))
	for i, k := range catalogue {
		m[k.Kind] = i
	}
	return m
}()

// dimensionWeightSums holds, per dimension index, the sum of the weights of
// all kinds of that dimension, summed in catalogue order.
var dimensionWeightSums = func() [len(dimensionOrder)]float64 {
	var s [len(dimensionOrder)]float64
	for _, k := range catalogue {
		s[dimensionIndex(k.Dimension)] += k.Weight
	}
	return s
}()

// Kinds returns the catalogue in its fixed order (grouped by dimension, in
// dimension order).
func Kinds() []KindSpec {
	out := make([]KindSpec, len(catalogue))
	copy(out, catalogue[:])
	return out
}

// LookupKind returns the spec of kind, or false if kind is not in the
// catalogue.
func LookupKind(kind string) (KindSpec, bool) {
	i, ok := kindIndex[kind]
	if !ok {
		return KindSpec{}, false
	}
	return catalogue[i], true
}

// ErrUnknownKind is wrapped by the error for a kind not in the catalogue.
var ErrUnknownKind = errors.New("unknown signal kind")

// ErrValueOutOfRange is wrapped by the error for a value outside its kind's
// range.
var ErrValueOutOfRange = errors.New("value out of range")

// ValidateValue checks that v is an acceptable raw value for kind: kind must
// be in the catalogue and v a finite number inside the kind's range (0 or 1
// for booleans, a whole number for levels). The error wraps ErrUnknownKind
// or ErrValueOutOfRange and names the accepted range.
func ValidateValue(kind string, v float64) error {
	i, ok := kindIndex[kind]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownKind, clip(kind))
	}
	return catalogue[i].validate(v)
}

// Normalize validates v for kind and maps it to [0,1] (before decay).
func Normalize(kind string, v float64) (float64, error) {
	i, ok := kindIndex[kind]
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrUnknownKind, clip(kind))
	}
	return catalogue[i].normalize(v)
}

func (k *KindSpec) validate(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < k.Min || v > k.Max || (k.Integer && v != math.Trunc(v)) {
		return fmt.Errorf("%s: %w: got %s, want %s", k.Kind, ErrValueOutOfRange, formatNumber(v), k.rangeText())
	}
	return nil
}

func (k *KindSpec) rangeText() string {
	lo, hi := formatNumber(k.Min), formatNumber(k.Max)
	switch {
	case k.Normalization == NormBool:
		return "0 or 1"
	case k.Integer:
		return "a whole number in [" + lo + ", " + hi + "]"
	default:
		return "a number in [" + lo + ", " + hi + "]"
	}
}

func (k *KindSpec) normalize(v float64) (float64, error) {
	if err := k.validate(v); err != nil {
		return 0, err
	}
	var n float64
	switch k.Normalization {
	case NormBool:
		n = v
	case NormLinear:
		n = (v - k.Min) / (k.Max - k.Min)
	case NormSaturating:
		n = math.Min(v, k.Saturation) / k.Saturation
	case NormInverse:
		n = 1 - v
	}
	// Guard against rounding just outside [0,1].
	return math.Max(0, math.Min(1, n)), nil
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// clip bounds a caller-supplied string echoed in an error message.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

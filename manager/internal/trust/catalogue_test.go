package trust

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCatalogueIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	sums := map[Dimension]float64{}
	last := -1
	for _, k := range Kinds() {
		if seen[k.Kind] {
			t.Errorf("kind %s listed twice", k.Kind)
		}
		seen[k.Kind] = true
		di := dimensionIndex(k.Dimension)
		if di < 0 {
			t.Errorf("kind %s: unknown dimension %q", k.Kind, k.Dimension)
		}
		if di < last {
			t.Errorf("kind %s: catalogue not grouped in dimension order", k.Kind)
		}
		last = di
		if !(k.Weight > 0) {
			t.Errorf("kind %s: weight %v, want > 0", k.Kind, k.Weight)
		}
		if k.HalfLife <= 0 || k.HalfLife%day != 0 {
			t.Errorf("kind %s: half-life %v, want a positive whole number of days", k.Kind, k.HalfLife)
		}
		if !(k.Max > k.Min) {
			t.Errorf("kind %s: empty range [%v, %v]", k.Kind, k.Min, k.Max)
		}
		if k.Normalization == NormSaturating && !(k.Saturation > k.Min && k.Saturation <= k.Max) {
			t.Errorf("kind %s: saturation %v outside its range", k.Kind, k.Saturation)
		}
		for _, v := range []float64{k.Min, k.Max} {
			n, err := Normalize(k.Kind, v)
			if err != nil || n < 0 || n > 1 {
				t.Errorf("kind %s: Normalize(%v) = %v, %v", k.Kind, v, n, err)
			}
		}
		if k.Description == "" || k.Unit == "" {
			t.Errorf("kind %s: missing unit or description", k.Kind)
		}
		sums[k.Dimension] += k.Weight
	}
	var total float64
	for _, d := range Dimensions() {
		if math.Abs(sums[d]-1) > 1e-12 {
			t.Errorf("dimension %s: kind weights sum to %v, want 1", d, sums[d])
		}
		total += DimensionWeight(d)
	}
	if math.Abs(total-1) > 1e-12 {
		t.Errorf("dimension weights sum to %v, want 1", total)
	}
}

func TestDimensionsHaveFixedOrder(t *testing.T) {
	want := []Dimension{"identity", "publisher", "supply_chain", "human_competence", "runtime"}
	got := Dimensions()
	if len(got) != len(want) {
		t.Fatalf("Dimensions() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Dimensions() = %v, want %v", got, want)
		}
	}
	got[0] = "mutated"
	if Dimensions()[0] != DimIdentity {
		t.Error("Dimensions() exposes internal state")
	}
	if Dimension("nope").Valid() || DimensionWeight("nope") != 0 {
		t.Error("unknown dimension reported valid or weighted")
	}
}

func TestKindsReturnsACopy(t *testing.T) {
	k := Kinds()
	k[0].Weight = 99
	if spec, _ := LookupKind(k[0].Kind); spec.Weight == 99 {
		t.Error("Kinds() exposes internal state")
	}
}

func TestLookupKind(t *testing.T) {
	spec, ok := LookupKind("scorecard.score")
	if !ok || spec.Dimension != DimSupplyChain || spec.Max != 10 {
		t.Errorf("LookupKind(scorecard.score) = %+v, %v", spec, ok)
	}
	if _, ok := LookupKind("scorecard.Score"); ok {
		t.Error("LookupKind is not exact")
	}
}

func TestValidateValue(t *testing.T) {
	tests := []struct {
		name    string
		kind    string
		value   float64
		wantErr error
		wantMsg string
	}{
		{"bool accepts 1", "identity.dns_verified", 1, nil, ""},
		{"bool accepts 0", "credential.isaca", 0, nil, ""},
		{"scorecard accepts a decimal score", "scorecard.score", 7.3, nil, ""},
		{"days accept more than saturation", "github.account_age_days", 4000, nil, ""},
		{"level accepts a whole level", "slsa.build_level", 3, nil, ""},
		{"rate accepts 0", "runtime.policy_violation_rate", 0, nil, ""},

		{"unknown kind is rejected", "github.stars", 10, ErrUnknownKind, `unknown signal kind "github.stars"`},
		{"empty kind is rejected", "", 1, ErrUnknownKind, `unknown signal kind ""`},
		{"long unknown kind is clipped", strings.Repeat("x", 500), 1, ErrUnknownKind, `..."`},
		{"bool rejects 0.5", "identity.admin_attestation", 0.5, ErrValueOutOfRange, "want 0 or 1"},
		{"bool rejects 2", "github.org_verified", 2, ErrValueOutOfRange, "want 0 or 1"},
		{"scorecard rejects 11", "scorecard.score", 11, ErrValueOutOfRange, "want a number in [0, 10]"},
		{"scorecard rejects negative", "scorecard.score", -0.1, ErrValueOutOfRange, "got -0.1"},
		{"scw rejects 101", "scw.training_score", 101, ErrValueOutOfRange, "want a number in [0, 100]"},
		{"ratio rejects 1.01", "github.signed_commits_ratio", 1.01, ErrValueOutOfRange, "want a number in [0, 1]"},
		{"level rejects a fraction", "slsa.build_level", 2.5, ErrValueOutOfRange, "want a whole number in [0, 3]"},
		{"level rejects 4", "slsa.build_level", 4, ErrValueOutOfRange, "want a whole number in [0, 3]"},
		{"days reject negative", "runtime.incident_free_days", -1, ErrValueOutOfRange, "want a number in [0, 36500]"},
		{"days reject absurd", "github.account_age_days", 1e9, ErrValueOutOfRange, "[0, 36500]"},
		{"NaN is rejected", "scorecard.score", math.NaN(), ErrValueOutOfRange, "got NaN"},
		{"Inf is rejected", "runtime.incident_free_days", math.Inf(1), ErrValueOutOfRange, "got +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateValue(tt.kind, tt.value)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ValidateValue(%q, %v) = %v, want nil", tt.kind, tt.value, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateValue(%q, %v) = %v, want %v", tt.kind, tt.value, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name  string
		kind  string
		value float64
		want  float64
	}{
		{"bool true is 1", "identity.admin_attestation", 1, 1},
		{"bool false is 0", "identity.admin_attestation", 0, 0},
		{"scorecard is divided by 10", "scorecard.score", 8, 0.8},
		{"scw is divided by 100", "scw.training_score", 75, 0.75},
		{"slsa is divided by 3", "slsa.build_level", 3, 1},
		{"account age saturates at 365", "github.account_age_days", 730, 1},
		{"account age below saturation is linear", "github.account_age_days", 73, 0.2},
		{"incident-free days saturate at 90", "runtime.incident_free_days", 45, 0.5},
		{"violation rate is inverted", "runtime.policy_violation_rate", 0.25, 0.75},
		{"signed commits ratio is used as is", "github.signed_commits_ratio", 0.9, 0.9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.kind, tt.value)
			if err != nil || math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("Normalize(%q, %v) = %v, %v, want %v", tt.kind, tt.value, got, err, tt.want)
			}
		})
	}
	if _, err := Normalize("nope", 1); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("Normalize(unknown) error = %v", err)
	}
}

func TestKindSpecJSONHasHalfLifeDays(t *testing.T) {
	spec, _ := LookupKind("scorecard.score")
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["halfLifeDays"] != 30.0 || m["kind"] != "scorecard.score" || m["dimension"] != "supply_chain" {
		t.Errorf("KindSpec JSON = %s", b)
	}
}

package trust

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/knaight/knaight/shared/policy"
)

func TestDefaultThresholdsAreValid(t *testing.T) {
	if err := DefaultThresholds().Validate(); err != nil {
		t.Fatalf("DefaultThresholds().Validate() = %v", err)
	}
}

func TestDefaultThresholdsAreFreshCopies(t *testing.T) {
	a := DefaultThresholds()
	a.Levels[policy.L2].Dimensions[DimIdentity] = 0.99
	if DefaultThresholds().Levels[policy.L2].Dimensions[DimIdentity] != 0.5 {
		t.Error("DefaultThresholds shares state between calls")
	}
}

// mutate returns DefaultThresholds changed by f.
func mutate(f func(th Thresholds)) Thresholds {
	th := DefaultThresholds()
	f(th)
	return th
}

func setDim(th Thresholds, l policy.TrustLevel, d Dimension, v float64) {
	th.Levels[l].Dimensions[d] = v
}

func setMin(th Thresholds, l policy.TrustLevel, v float64) {
	r := th.Levels[l]
	r.MinScore = v
	th.Levels[l] = r
}

func TestThresholdsValidateRejects(t *testing.T) {
	tests := []struct {
		name     string
		th       Thresholds
		wantPath string
		wantMsg  string
	}{
		{"dimension below the level beneath", mutate(func(th Thresholds) { setDim(th, policy.L4, DimIdentity, 0.4) }),
			"levels.L4.dimensions.identity", "below levels.L3.dimensions.identity (0.5)"},
		{"dimension dropped by a higher level", mutate(func(th Thresholds) { delete(th.Levels[policy.L4].Dimensions, DimPublisher) }),
			"levels.L4.dimensions.publisher", "0 is below levels.L3.dimensions.publisher (0.3)"},
		{"min score below the level beneath", mutate(func(th Thresholds) { setMin(th, policy.L3, 10) }),
			"levels.L3.minScore", "10 is below levels.L2.minScore (15)"},
		{"L5 below L4", mutate(func(th Thresholds) { setDim(th, policy.L5, DimRuntime, 0.39) }),
			"levels.L5.dimensions.runtime", "below levels.L4.dimensions.runtime"},
		{"min score above 100", mutate(func(th Thresholds) { setMin(th, policy.L5, 101) }),
			"levels.L5.minScore", "out of range: want a number in [0, 100]"},
		{"negative min score", mutate(func(th Thresholds) { setMin(th, policy.L2, -1) }),
			"levels.L2.minScore", "out of range"},
		{"NaN min score", mutate(func(th Thresholds) { setMin(th, policy.L2, math.NaN()) }),
			"levels.L2.minScore", "NaN out of range"},
		{"dimension above 1", mutate(func(th Thresholds) { setDim(th, policy.L5, DimIdentity, 1.5) }),
			"levels.L5.dimensions.identity", "out of range: want a number in [0, 1]"},
		{"negative dimension", mutate(func(th Thresholds) { setDim(th, policy.L2, DimRuntime, -0.1) }),
			"levels.L2.dimensions.runtime", "out of range"},
		{"unknown dimension", mutate(func(th Thresholds) { setDim(th, policy.L3, "vibes", 0.1) }),
			"levels.L3.dimensions.vibes", "unknown dimension"},
		{"missing level", mutate(func(th Thresholds) { delete(th.Levels, policy.L3) }),
			"levels.L3", "missing"},
		{"L1 carries no requirement", mutate(func(th Thresholds) { th.Levels[policy.L1] = LevelRequirement{} }),
			"levels.L1", "only L2, L3, L4 and L5"},
		{"not a level", mutate(func(th Thresholds) { th.Levels[policy.TrustLevel(9)] = LevelRequirement{} }),
			"levels.L9", "only L2, L3, L4 and L5"},
		{"no levels at all", Thresholds{}, "levels.L2", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.th.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Path != tt.wantPath {
				t.Errorf("first error path = %q, want %q (error: %v)", fe.Path, tt.wantPath, err)
			}
			if !strings.Contains(fe.Error(), tt.wantMsg) {
				t.Errorf("first error = %q, want it to contain %q", fe.Error(), tt.wantMsg)
			}
		})
	}
}

func TestThresholdsValidateReportsEveryProblemInOrder(t *testing.T) {
	th := mutate(func(th Thresholds) {
		setMin(th, policy.L4, 20)
		setDim(th, policy.L4, DimIdentity, 0.1)
		setDim(th, policy.L2, "zz", 1)
	})
	err := th.Validate()
	var paths []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		paths = append(paths, e.(*FieldError).Path)
	}
	want := []string{"levels.L2.dimensions.zz", "levels.L4.minScore", "levels.L4.dimensions.identity"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths = %v, want %v", paths, want)
	}
}

func TestThresholdsAcceptEqualAdjacentLevels(t *testing.T) {
	r := LevelRequirement{MinScore: 40, Dimensions: map[Dimension]float64{DimIdentity: 0.5}}
	th := Thresholds{Levels: map[policy.TrustLevel]LevelRequirement{policy.L2: r, policy.L3: r, policy.L4: r, policy.L5: r}}
	if err := th.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil for a flat lattice", err)
	}
}

func TestThresholdsJSONRoundTrip(t *testing.T) {
	b, err := json.Marshal(DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"levels":{"L2":{"minScore":15,"dimensions":{"identity":0.5}},"L3":`) {
		t.Errorf("JSON = %s", b)
	}
	var got Thresholds
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, DefaultThresholds()) {
		t.Errorf("round trip = %+v", got)
	}
}

func TestThresholdsUnmarshalRejects(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantMsg string
	}{
		{"unknown level key", `{"levels":{"L7":{"minScore":1}}}`, "levels.L7: not a trust level"},
		{"lower-case level key", `{"levels":{"l2":{"minScore":1}}}`, "levels.l2: not a trust level"},
		{"unknown requirement field", `{"levels":{"L2":{"minScore":1,"maxScore":2}}}`, `levels.L2: json: unknown field "maxScore"`},
		{"unknown top-level field", `{"levels":{},"extra":1}`, `unknown field "extra"`},
		{"wrong type", `{"levels":{"L2":{"minScore":"high"}}}`, "levels.L2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var th Thresholds
			err := json.Unmarshal([]byte(tt.json), &th)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Unmarshal(%s) = %v, want error containing %q", tt.json, err, tt.wantMsg)
			}
		})
	}
}

func TestThresholdsMarshalRejectsNonLevelKey(t *testing.T) {
	th := Thresholds{Levels: map[policy.TrustLevel]LevelRequirement{0: {}}}
	if _, err := json.Marshal(th); err == nil {
		t.Error("Marshal accepted level key 0")
	}
}

func TestThresholdsMinScore(t *testing.T) {
	th := DefaultThresholds()
	tests := []struct {
		level policy.TrustLevel
		want  float64
	}{
		{policy.LevelNone, 0}, {policy.L1, 0}, {policy.L2, 15}, {policy.L3, 28}, {policy.L4, 55}, {policy.L5, 80},
		{policy.TrustLevel(6), math.Inf(1)},
	}
	for _, tt := range tests {
		if got := th.MinScore(tt.level); got != tt.want {
			t.Errorf("MinScore(%v) = %v, want %v", tt.level, got, tt.want)
		}
	}
	delete(th.Levels, policy.L4)
	if got := th.MinScore(policy.L4); !math.IsInf(got, 1) {
		t.Errorf("MinScore of an unconfigured level = %v, want +Inf", got)
	}
	if r, ok := th.Requirement(policy.L1); !ok || r.MinScore != 0 || len(r.Dimensions) != 0 {
		t.Errorf("Requirement(L1) = %+v, %v", r, ok)
	}
	if r, ok := th.Requirement(policy.L3); !ok || r.Dimension(DimSupplyChain) != 0.25 || r.Dimension(DimRuntime) != 0 {
		t.Errorf("Requirement(L3) = %+v, %v", r, ok)
	}
}

package trust

import (
	"encoding/binary"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/policy"
)

// fuzzSignalSize is the number of input bytes decoded into one signal.
const fuzzSignalSize = 16

// decodeSignals turns fuzz bytes into signals, 16 bytes each:
//
//	[0]      kind: catalogue index, or an unknown kind past the end
//	[1]      bit 0: value taken raw from bits [2:10] (may be NaN, out of range)
//	[2:10]   value: raw float64 bits, or a fraction of the kind's range
//	[10:14]  observedAt: int32 minutes relative to now (about ±4000 years)
//	[14:16]  expiresAt: int16 hours relative to observedAt, 0 = none
func decodeSignals(data []byte, now time.Time) []Signal {
	kinds := Kinds()
	var out []Signal
	for i := 0; i+fuzzSignalSize <= len(data); i += fuzzSignalSize {
		b := data[i : i+fuzzSignalSize]
		s := Signal{ID: string(rune('a' + b[0]%7)), Source: "fuzz"}
		bits := binary.LittleEndian.Uint64(b[2:10])
		if ki := int(b[0]) % (len(kinds) + 1); ki < len(kinds) {
			s.Kind = kinds[ki].Kind
			if b[1]&1 == 1 {
				s.Value = math.Float64frombits(bits)
			} else {
				s.Value = validValue(kinds[ki], float64(bits)/float64(math.MaxUint64))
			}
		} else {
			s.Kind = "fuzz.unknown"
			s.Value = math.Float64frombits(bits)
		}
		s.ObservedAt = now.Add(time.Duration(int32(binary.LittleEndian.Uint32(b[10:14]))) * time.Minute)
		if h := int16(binary.LittleEndian.Uint16(b[14:16])); h != 0 {
			e := s.ObservedAt.Add(time.Duration(h) * time.Hour)
			s.ExpiresAt = &e
		}
		out = append(out, s)
	}
	return out
}

// validValue maps frac in [0,1] to a valid value of k.
func validValue(k KindSpec, frac float64) float64 {
	if !(frac >= 0) {
		frac = 0
	}
	frac = min(frac, 1)
	v := k.Min + frac*(k.Max-k.Min)
	if k.Integer {
		v = math.Round(v)
	}
	return min(max(v, k.Min), k.Max)
}

func FuzzAssess(f *testing.F) {
	worked := make([]byte, 0, 3*fuzzSignalSize)
	for _, ki := range []byte{0, 2, 4} { // admin attestation, DNS, org verified: all true and fresh
		s := make([]byte, fuzzSignalSize)
		s[0] = ki
		binary.LittleEndian.PutUint64(s[2:10], math.MaxUint64)
		worked = append(worked, s...)
	}
	f.Add(worked, int64(0), uint8(6), 0.8, uint16(0)) // + Scorecard 8: L2 → L3
	f.Add([]byte{}, int64(1_700_000_000), uint8(0), 1.0, uint16(3))
	f.Add(make([]byte, 5*fuzzSignalSize), int64(-1), uint8(200), math.NaN(), uint16(1000))
	f.Add(append(slices.Repeat([]byte{255}, 2*fuzzSignalSize), worked...), int64(math.MaxInt64), uint8(13), 0.5, uint16(65535))

	kinds := Kinds()
	f.Fuzz(func(t *testing.T, data []byte, nowSec int64, addKind uint8, addFrac float64, addAgeHours uint16) {
		if len(data) > 32*fuzzSignalSize {
			data = data[:32*fuzzSignalSize]
		}
		now := t0.Add(time.Duration(nowSec%(200*365*24*3600)) * time.Second)
		signals := decodeSignals(data, now)
		th := DefaultThresholds()

		a := Assess(signals, th, now)
		checkInvariants(t, a, len(signals))

		// Input order does not matter.
		rev := slices.Clone(signals)
		slices.Reverse(rev)
		r := Assess(rev, th, now)
		if r.Score != a.Score || r.Level != a.Level || !reflect.DeepEqual(r.Dimensions, a.Dimensions) ||
			!reflect.DeepEqual(r.NextChange, a.NextChange) {
			t.Fatalf("reversed input changed the assessment: %v %v vs %v %v", r.Score, r.Level, a.Score, a.Level)
		}

		// Adding a live signal never lowers the score, a dimension or the level.
		k := kinds[int(addKind)%len(kinds)]
		extra := Signal{ID: "extra", Source: "fuzz", Kind: k.Kind, Value: validValue(k, addFrac),
			ObservedAt: now.Add(-time.Duration(addAgeHours) * time.Hour)}
		b := Assess(append(slices.Clone(signals), extra), th, now)
		checkInvariants(t, b, len(signals)+1)
		if !b.Contributions[len(signals)].Live {
			t.Fatalf("the added signal is not live: %+v", b.Contributions[len(signals)])
		}
		if b.Score < a.Score || b.Level < a.Level {
			t.Fatalf("adding %+v lowered score/level: %v %v → %v %v", extra, a.Score, a.Level, b.Score, b.Level)
		}
		for i := range a.Dimensions {
			if b.Dimensions[i].Score < a.Dimensions[i].Score {
				t.Fatalf("adding %+v lowered %s: %v → %v", extra, a.Dimensions[i].Dimension, a.Dimensions[i].Score, b.Dimensions[i].Score)
			}
		}
	})
}

func checkInvariants(t *testing.T, a Assessment, n int) {
	t.Helper()
	if !(a.Score >= 0 && a.Score <= 100) {
		t.Fatalf("score %v outside [0, 100]", a.Score)
	}
	if a.Level < policy.L1 || a.Level > policy.L5 {
		t.Fatalf("level %v outside L1..L5", a.Level)
	}
	if len(a.Dimensions) != 5 || len(a.Levels) != 4 || len(a.Contributions) != n {
		t.Fatalf("shape: %d dimensions, %d levels, %d contributions for %d signals", len(a.Dimensions), len(a.Levels), len(a.Contributions), n)
	}
	for _, d := range a.Dimensions {
		if !(d.Score >= 0 && d.Score <= 1) {
			t.Fatalf("%s score %v outside [0, 1]", d.Dimension, d.Score)
		}
	}
	want := policy.L1
	for _, lc := range a.Levels {
		if lc.Met != (len(lc.Unmet) == 0) {
			t.Fatalf("level check %+v inconsistent", lc)
		}
		if lc.Met && want == lc.Level-1 {
			want = lc.Level
		}
	}
	if a.Level != want {
		t.Fatalf("level %v, but checks give %v", a.Level, want)
	}
	counted := map[string]bool{}
	for _, c := range a.Contributions {
		if c.Counted && (!c.Live || c.Reason != "") || c.Live && !c.Counted && c.Reason != ReasonSuperseded {
			t.Fatalf("inconsistent contribution %+v", c)
		}
		if c.Counted {
			if counted[c.Kind] {
				t.Fatalf("two counted signals of kind %s", c.Kind)
			}
			counted[c.Kind] = true
		}
		for _, v := range []float64{c.Normalized, c.Decay, c.Weighted} {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("contribution value %v outside [0, 1]: %+v", v, c)
			}
		}
	}
	if a.NextChange != nil && !a.NextChange.After(a.AssessedAt) {
		t.Fatalf("NextChange %v not after %v", a.NextChange, a.AssessedAt)
	}
}

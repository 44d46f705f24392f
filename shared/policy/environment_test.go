package policy

import (
	"errors"
	"testing"
)

func TestParseEnvironment(t *testing.T) {
	tests := []struct {
		in      string
		want    Environment
		wantErr bool
	}{
		{in: "development", want: Development},
		{in: "staging", want: Staging},
		{in: "production", want: Production},
		{in: "Production", wantErr: true},
		{in: " production", wantErr: true},
		{in: "prod", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseEnvironment(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidEnvironment) || got != "" {
					t.Fatalf("ParseEnvironment(%q) = %q, %v; want ErrInvalidEnvironment", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseEnvironment(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestEnvironmentsAreAllValidAndFresh(t *testing.T) {
	envs := Environments()
	if len(envs) != 3 {
		t.Fatalf("Environments() = %v", envs)
	}
	for _, e := range envs {
		if !e.Valid() {
			t.Errorf("%q is listed but not valid", e)
		}
	}
	envs[0] = "mutated"
	if Environments()[0] != Development {
		t.Fatal("Environments() shares its backing array with callers")
	}
}

func TestLoA(t *testing.T) {
	tests := []struct {
		l     LoA
		valid bool
		str   string
	}{
		{LoANone, false, "none"},
		{LoASelfAsserted, true, "LoA1"},
		{LoAVerified, true, "LoA2"},
		{LoAStrong, true, "LoA3"},
		{LoAVeryHigh, true, "LoA4"},
		{5, false, "none"},
	}
	for _, tt := range tests {
		if tt.l.Valid() != tt.valid || tt.l.String() != tt.str {
			t.Errorf("LoA(%d): Valid=%v String=%q; want %v %q", uint8(tt.l), tt.l.Valid(), tt.l.String(), tt.valid, tt.str)
		}
	}
}

func TestTrustLevelString(t *testing.T) {
	for l, want := range []string{"none", "L1", "L2", "L3", "L4", "L5", "none", "none"} {
		if got := TrustLevel(l).String(); got != want {
			t.Errorf("TrustLevel(%d).String() = %q, want %q", l, got, want)
		}
		if p, err := ParseTrustLevel(want); err == nil && p != TrustLevel(l) {
			t.Errorf("ParseTrustLevel(%q) = %d, want %d", want, p, l)
		}
	}
	// The filter calls it on every request.
	l := L3
	if n := testing.AllocsPerRun(100, func() { levelSink = l.String() }); n != 0 {
		t.Errorf("String allocates %v times", n)
	}
}

var levelSink string

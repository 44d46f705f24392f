package policy

import (
	"encoding/json"
	"fmt"
)

// TrustLevel is an agent's trust level, L1 (least) to L5 (most). The zero
// value is "no level": an agent that does not even meet L1 is never
// authorized by a policy.
type TrustLevel uint8

// The five trust levels of the lattice described in docs/trust.md.
const (
	LevelNone TrustLevel = iota
	L1
	L2
	L3
	L4
	L5
)

// ParseTrustLevel parses "L1".."L5". It rejects anything else, including
// "L0", so a typo in a policy never silently lowers a requirement.
func ParseTrustLevel(s string) (TrustLevel, error) {
	if len(s) == 2 && s[0] == 'L' && s[1] >= '1' && s[1] <= '5' {
		return TrustLevel(s[1] - '0'), nil
	}
	return LevelNone, fmt.Errorf("trust level %q: want one of L1, L2, L3, L4, L5", s)
}

// levelNames are the string forms of L1..L5, constants so that String,
// which the filter calls on every request, does not allocate.
var levelNames = [...]string{L1: "L1", L2: "L2", L3: "L3", L4: "L4", L5: "L5"}

// String returns "L1".."L5", or "none" for the zero value.
func (l TrustLevel) String() string {
	if l >= L1 && l <= L5 {
		return levelNames[l]
	}
	return "none"
}

// Valid reports whether l is one of L1..L5.
func (l TrustLevel) Valid() bool { return l >= L1 && l <= L5 }

// MarshalJSON encodes a level as its string form ("L3").
func (l TrustLevel) MarshalJSON() ([]byte, error) { return json.Marshal(l.String()) }

// UnmarshalJSON accepts only "L1".."L5".
func (l *TrustLevel) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("trust level: want a string such as \"L3\"")
	}
	v, err := ParseTrustLevel(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

package policy

// LoA is a level of assurance, 1 to 4, of how strongly an agent's identity was
// established (in the spirit of NIST SP 800-63 / eIDAS). It is independent of
// the trust level: trust says how far the agent is trusted to act, LoA how
// sure we are that it is the agent it claims to be. It encodes as a JSON
// number.
type LoA uint8

// The four levels of assurance. The zero value LoANone means "not
// established": it is not a valid policy minimum, and an agent at LoANone
// never satisfies a policy.
const (
	LoANone LoA = iota
	// LoASelfAsserted: the agent's identity rests only on its own claim.
	LoASelfAsserted
	// LoAVerified: the identity was verified by a trusted registrar.
	LoAVerified
	// LoAStrong: the key is hardware-protected or the enrolment used
	// multi-factor authentication.
	LoAStrong
	// LoAVeryHigh: the key lives in certified hardware and its attestation
	// was checked.
	LoAVeryHigh
)

// Valid reports whether l is 1..4. A policy minimum must be valid; there is
// no "not required" value, so that every policy states its assurance need
// explicitly (use LoASelfAsserted for the weakest requirement).
func (l LoA) Valid() bool { return l >= LoASelfAsserted && l <= LoAVeryHigh }

// String returns "LoA1".."LoA4", or "none" for anything else, for logs and
// messages.
func (l LoA) String() string {
	if l.Valid() {
		return string([]byte{'L', 'o', 'A', '0' + byte(l)})
	}
	return "none"
}

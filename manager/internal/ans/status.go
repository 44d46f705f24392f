package ans

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Status is where a registration is in its lifecycle. Only an ACTIVE
// registration lets its agent call the gateway; REVOKED and EXPIRED are
// final. CanTransition has the table of allowed changes. The values are the
// ANS status names in upper case, as stored and shown in the API.
type Status string

const (
	// StatusPending means the registration was requested and is not yet
	// approved or verified.
	StatusPending Status = "PENDING"
	// StatusActive means the registration is good: the agent may call the
	// gateway.
	StatusActive Status = "ACTIVE"
	// StatusSuspended is the manager's addition to ANS: a reversible stop,
	// used when an operator suspends an agent. It can go back to ACTIVE.
	StatusSuspended Status = "SUSPENDED"
	// StatusDeprecated means the agent is being retired (usually in favour
	// of a newer version); it no longer serves and can only end.
	StatusDeprecated Status = "DEPRECATED"
	// StatusRevoked means the registration was withdrawn for good. Terminal.
	StatusRevoked Status = "REVOKED"
	// StatusExpired means the registration reached its expiry time. Terminal.
	StatusExpired Status = "EXPIRED"
)

// MaxReasonLength is the longest status reason accepted, in characters.
const MaxReasonLength = 500

// ErrInvalidStatus means a string is not one of the Status values, or a new
// registration does not start as PENDING or ACTIVE. Callers answer 400 or
// 422.
var ErrInvalidStatus = errors.New("ans: invalid status")

// ErrInvalidTransition means the requested status change is not allowed from
// the registration's current status (including a change to the status it
// already has). The request itself may be well-formed: callers should answer
// 409 Conflict and include the current status.
var ErrInvalidTransition = errors.New("ans: invalid status transition")

// ErrReasonRequired means a change to SUSPENDED, DEPRECATED or REVOKED came
// without a reason. Callers answer 422.
var ErrReasonRequired = errors.New("ans: reason required")

// ErrInvalidReason means a reason is too long (more than MaxReasonLength
// characters), is not valid UTF-8, or holds control characters other than
// tab and newline. Callers answer 422.
var ErrInvalidReason = errors.New("ans: invalid reason")

// transitions is the lifecycle table: from → the statuses it may go to.
var transitions = map[Status][]Status{
	StatusPending:    {StatusActive, StatusRevoked},
	StatusActive:     {StatusSuspended, StatusDeprecated, StatusRevoked, StatusExpired},
	StatusSuspended:  {StatusActive, StatusRevoked, StatusExpired},
	StatusDeprecated: {StatusRevoked, StatusExpired},
	StatusRevoked:    nil,
	StatusExpired:    nil,
}

// ParseStatus returns the Status named by s, in any case ("active" is
// StatusActive). Errors wrap ErrInvalidStatus.
func ParseStatus(s string) (Status, error) {
	st := Status(strings.ToUpper(s))
	if !st.Valid() {
		return "", fmt.Errorf("%w: %q", ErrInvalidStatus, s)
	}
	return st, nil
}

// Valid reports whether s is one of the Status constants.
func (s Status) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// Terminal reports whether s is REVOKED or EXPIRED, which no transition
// leaves.
func (s Status) Terminal() bool {
	return s == StatusRevoked || s == StatusExpired
}

// Serving reports whether an agent in status s may call the gateway: only
// ACTIVE does.
func (s Status) Serving() bool {
	return s == StatusActive
}

// reasonRequired reports whether a transition to s needs a reason.
func (s Status) reasonRequired() bool {
	return s == StatusSuspended || s == StatusDeprecated || s == StatusRevoked
}

// CanTransition reports whether a registration may go from status from to
// status to:
//
//	PENDING    → ACTIVE, REVOKED
//	ACTIVE     → SUSPENDED, DEPRECATED, REVOKED, EXPIRED
//	SUSPENDED  → ACTIVE, REVOKED, EXPIRED
//	DEPRECATED → REVOKED, EXPIRED
//	REVOKED, EXPIRED → nothing
//
// A status never transitions to itself, and unknown statuses never
// transition.
func CanTransition(from, to Status) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// Transition checks a status change from → to with its reason, and returns
// nil if the change may be made. A reason is required for SUSPENDED,
// DEPRECATED and REVOKED and optional otherwise; any non-empty reason must be
// at most MaxReasonLength characters of valid UTF-8 without control
// characters other than tab and newline. Errors wrap ErrInvalidStatus,
// ErrInvalidTransition, ErrReasonRequired or ErrInvalidReason, checked in
// that order.
func Transition(from, to Status, reason string) error {
	if !from.Valid() {
		return fmt.Errorf("%w: current status %q", ErrInvalidStatus, string(from))
	}
	if !to.Valid() {
		return fmt.Errorf("%w: %q", ErrInvalidStatus, string(to))
	}
	if from == to {
		return fmt.Errorf("%w: already %s", ErrInvalidTransition, from)
	}
	if !CanTransition(from, to) {
		return fmt.Errorf("%w: cannot go from %s to %s", ErrInvalidTransition, from, to)
	}
	return checkReason(to, reason)
}

// checkReason checks the reason for a change to status to.
func checkReason(to Status, reason string) error {
	if strings.TrimSpace(reason) == "" {
		if to.reasonRequired() {
			return fmt.Errorf("%w: a change to %s needs a reason", ErrReasonRequired, to)
		}
		if reason == "" {
			return nil
		}
	}
	if !utf8.ValidString(reason) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidReason)
	}
	if n := utf8.RuneCountInString(reason); n > MaxReasonLength {
		return fmt.Errorf("%w: %d characters, more than %d", ErrInvalidReason, n, MaxReasonLength)
	}
	for _, r := range reason {
		if (r < 0x20 && r != '\t' && r != '\n') || (0x7f <= r && r < 0xa0) {
			return fmt.Errorf("%w: control character %U", ErrInvalidReason, r)
		}
	}
	return nil
}

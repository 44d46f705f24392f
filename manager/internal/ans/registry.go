package ans

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound means no registration matches the agent ID or name asked for.
// Callers answer 404.
var ErrNotFound = errors.New("ans: registration not found")

// ErrNameTaken means the name is already bound to another registration.
// Names are never reused, so this holds even if that registration is REVOKED
// or EXPIRED. Callers answer 409.
var ErrNameTaken = errors.New("ans: name already registered")

// ErrAlreadyRegistered means the agent already has a registration; an agent
// has at most one. Callers answer 409.
var ErrAlreadyRegistered = errors.New("ans: agent already registered")

// Registration binds an agent to its ANS name and records where the binding
// is in its lifecycle.
type Registration struct {
	// AgentID is the manager's ID of the agent; an agent has at most one
	// registration.
	AgentID string
	// Name is the agent's ANS name, canonical (Name.Validate passes).
	Name Name
	// Status is the registration's lifecycle status.
	Status Status
	// StatusReason is the reason given with the latest status change, or ""
	// if none was given.
	StatusReason string
	// RegisteredAt is when the registration was created; the registry sets
	// it.
	RegisteredAt time.Time
	// UpdatedAt is when the registration last changed; the registry sets it.
	UpdatedAt time.Time
	// ExpiresAt is when the registration expires, or nil if it does not.
	// The registry does not expire registrations by itself: whoever notices
	// the time has passed calls SetStatus with StatusExpired.
	ExpiresAt *time.Time
}

// ValidateNew checks that r may be passed to Register: AgentID is set, Name
// is valid and canonical (ErrInvalidName), Status is PENDING or ACTIVE
// (ErrInvalidStatus), and StatusReason, which is optional, is acceptable
// (ErrInvalidReason). RegisteredAt and UpdatedAt are ignored; the registry
// sets them.
func (r Registration) ValidateNew() error {
	if r.AgentID == "" {
		return errors.New("ans: registration has no agent ID")
	}
	if err := r.Name.Validate(); err != nil {
		return err
	}
	if r.Status != StatusPending && r.Status != StatusActive {
		return fmt.Errorf("%w: a new registration starts PENDING or ACTIVE, not %q", ErrInvalidStatus, string(r.Status))
	}
	return checkReason(r.Status, r.StatusReason)
}

// Registry is where agents' ANS registrations live. The manager ships a
// built-in registry on its own database; an external ANS registry can
// replace it.
//
// Transactions: when ctx carries the caller's database transaction, an
// implementation must do its work inside it, so that a registration change
// and the audit event the caller writes for it commit together or not at all
// (the built-in registry does). An implementation that cannot join the
// transaction, such as a remote ANS registry, must make its calls
// idempotent so that the caller can retry after a rollback.
//
// All methods return errors wrapping the sentinels they name; anything else
// is an infrastructure failure (callers answer 500 or 503).
type Registry interface {
	// Register stores a new registration and returns it as stored, with
	// RegisteredAt and UpdatedAt set. It checks r with ValidateNew and fails
	// with its errors, with ErrAlreadyRegistered if the agent has a
	// registration, and with ErrNameTaken if any registration, in any
	// status, holds r.Name.
	Register(ctx context.Context, r Registration) (Registration, error)

	// SetStatus moves the agent's registration to status to, recording
	// reason, and returns it as updated. It checks the change with
	// Transition against the current status, read under a lock so that
	// concurrent changes serialize, and fails with its errors
	// (ErrInvalidTransition, ErrReasonRequired, ...) or ErrNotFound.
	SetStatus(ctx context.Context, agentID string, to Status, reason string) (Registration, error)

	// Lookup returns the agent's registration, or ErrNotFound.
	Lookup(ctx context.Context, agentID string) (Registration, error)

	// Resolve returns the registration that holds name, in whatever status,
	// or ErrNotFound. Callers check Status.Serving before trusting it.
	Resolve(ctx context.Context, name Name) (Registration, error)
}

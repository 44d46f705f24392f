package agents

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/ans"
	"github.com/knaight/knaight/manager/internal/db"
)

// BuiltinRegistry is the ANS registry on the manager's own database. It
// works only inside the caller's transaction (db.WithTx), so a registration
// change commits with the ledger event that records it.
type BuiltinRegistry struct {
	// OrganizationID scopes every lookup: an agent of another organization
	// is not found.
	OrganizationID uuid.UUID
	Now            func() time.Time
}

var _ ans.Registry = BuiltinRegistry{}

// errNoTx is a programming error: the registry was called outside a
// transaction.
var errNoTx = errors.New("ans registry: no transaction in context")

func (r BuiltinRegistry) tx(ctx context.Context) (pgx.Tx, error) {
	tx, ok := db.TxFrom(ctx)
	if !ok {
		return nil, errNoTx
	}
	return tx, nil
}

const selectRegistration = `SELECT agent_id, name, status, status_reason, registered_at, updated_at, expires_at FROM ans_registrations`

func scanRegistration(row pgx.Row) (ans.Registration, error) {
	var reg ans.Registration
	var id uuid.UUID
	var name string
	err := row.Scan(&id, &name, &reg.Status, &reg.StatusReason, &reg.RegisteredAt, &reg.UpdatedAt, &reg.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return reg, ans.ErrNotFound
	}
	if err != nil {
		return reg, err
	}
	reg.AgentID = id.String()
	if reg.Name, err = ans.ParseName(name); err != nil {
		return reg, fmt.Errorf("stored ANS name of agent %s: %w", id, err)
	}
	reg.RegisteredAt, reg.UpdatedAt = reg.RegisteredAt.UTC(), reg.UpdatedAt.UTC()
	return reg, nil
}

// Register implements ans.Registry.
func (r BuiltinRegistry) Register(ctx context.Context, reg ans.Registration) (ans.Registration, error) {
	if err := reg.ValidateNew(); err != nil {
		return reg, err
	}
	tx, err := r.tx(ctx)
	if err != nil {
		return reg, err
	}
	id, err := uuid.Parse(reg.AgentID)
	if err != nil {
		return reg, fmt.Errorf("%w: agent id %q", ans.ErrNotFound, reg.AgentID)
	}
	now := r.Now().UTC().Truncate(time.Microsecond)
	reg.RegisteredAt, reg.UpdatedAt = now, now
	_, err = tx.Exec(ctx, `INSERT INTO ans_registrations (agent_id, organization_id, name, status, status_reason, registered_at, updated_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6, $7)`, id, r.OrganizationID, reg.Name.String(), reg.Status, reg.StatusReason, now, reg.ExpiresAt)
	switch {
	case db.IsUniqueViolation(err, "ans_registrations_name_key"):
		return reg, fmt.Errorf("%w: %s", ans.ErrNameTaken, reg.Name)
	case db.IsUniqueViolation(err, "ans_registrations_pkey"):
		return reg, ans.ErrAlreadyRegistered
	case err != nil:
		return reg, fmt.Errorf("register %s: %w", reg.Name, err)
	}
	return reg, nil
}

// SetStatus implements ans.Registry.
func (r BuiltinRegistry) SetStatus(ctx context.Context, agentID string, to ans.Status, reason string) (ans.Registration, error) {
	tx, err := r.tx(ctx)
	if err != nil {
		return ans.Registration{}, err
	}
	id, err := uuid.Parse(agentID)
	if err != nil {
		return ans.Registration{}, ans.ErrNotFound
	}
	reg, err := scanRegistration(tx.QueryRow(ctx, selectRegistration+` WHERE organization_id = $1 AND agent_id = $2 FOR UPDATE`, r.OrganizationID, id))
	if err != nil {
		return reg, err
	}
	if err := ans.Transition(reg.Status, to, reason); err != nil {
		return reg, err
	}
	reg.Status, reg.StatusReason = to, reason
	reg.UpdatedAt = r.Now().UTC().Truncate(time.Microsecond)
	_, err = tx.Exec(ctx, `UPDATE ans_registrations SET status = $3, status_reason = $4, updated_at = $5 WHERE organization_id = $1 AND agent_id = $2`,
		r.OrganizationID, id, to, reason, reg.UpdatedAt)
	if err != nil {
		return reg, fmt.Errorf("set ANS status of %s: %w", agentID, err)
	}
	return reg, nil
}

// Lookup implements ans.Registry.
func (r BuiltinRegistry) Lookup(ctx context.Context, agentID string) (ans.Registration, error) {
	tx, err := r.tx(ctx)
	if err != nil {
		return ans.Registration{}, err
	}
	id, err := uuid.Parse(agentID)
	if err != nil {
		return ans.Registration{}, ans.ErrNotFound
	}
	return scanRegistration(tx.QueryRow(ctx, selectRegistration+` WHERE organization_id = $1 AND agent_id = $2`, r.OrganizationID, id))
}

// Resolve implements ans.Registry.
func (r BuiltinRegistry) Resolve(ctx context.Context, name ans.Name) (ans.Registration, error) {
	tx, err := r.tx(ctx)
	if err != nil {
		return ans.Registration{}, err
	}
	return scanRegistration(tx.QueryRow(ctx, selectRegistration+` WHERE organization_id = $1 AND name = $2`, r.OrganizationID, name.String()))
}

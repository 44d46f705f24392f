// Package agents owns role templates and role agents: the AI agents an
// organization registers, each bound to a role template and an environment,
// named in ANS through a Registry (the built-in one lives here), and holding
// HMAC request-signing keys sealed at rest. Every change is recorded in the
// ledger in the same transaction.
package agents

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/knaight/knaight/manager/internal/ans"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/tokens"
	"github.com/knaight/knaight/shared/policy"
)

// RoleTemplate is a kind of agent; MCP policies are written per role
// template and environment.
type RoleTemplate struct {
	ID          uuid.UUID `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// RoleTemplateInput creates or replaces a role template.
type RoleTemplateInput struct {
	Name        string `json:"name" minLength:"1" maxLength:"63" pattern:"^[a-z0-9][a-z0-9_-]*$" doc:"Lowercase letters, digits, '_' and '-'."`
	Description string `json:"description,omitempty" maxLength:"1000"`
}

var templateNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate reports every invalid field.
func (in RoleTemplateInput) Validate() error {
	var inv fault.Invalid
	if !templateNameRe.MatchString(in.Name) {
		inv.Add("name", "must be 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter or digit", in.Name)
	}
	if len(in.Description) > 1000 {
		inv.Add("description", "must be at most 1000 bytes", nil)
	}
	return inv.Err()
}

func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func appendEvent(ctx context.Context, tx pgx.Tx, org uuid.UUID, typ, actor, subjectType string, subject uuid.UUID, details any, now time.Time) error {
	_, err := ledger.Append(ctx, tx, ledger.Entry{
		OrganizationID: org, Type: typ, Actor: actor, SubjectType: subjectType, SubjectID: subject.String(), Details: details,
	}, now)
	return err
}

// CreateRoleTemplate stores a role template and records ROLE_TEMPLATE_CREATED.
func CreateRoleTemplate(ctx context.Context, tx pgx.Tx, org uuid.UUID, in RoleTemplateInput, actor string, now time.Time) (RoleTemplate, error) {
	if err := in.Validate(); err != nil {
		return RoleTemplate{}, err
	}
	t := RoleTemplate{ID: uuid.New(), Name: in.Name, Description: in.Description, CreatedAt: stamp(now), UpdatedAt: stamp(now)}
	_, err := tx.Exec(ctx, `INSERT INTO role_templates (id, organization_id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)`,
		t.ID, org, t.Name, t.Description, t.CreatedAt)
	if db.IsUniqueViolation(err, "role_templates_organization_id_name_key") {
		return t, fmt.Errorf("role template %q exists: %w", in.Name, fault.ErrConflict)
	}
	if err != nil {
		return t, fmt.Errorf("create role template: %w", err)
	}
	return t, appendEvent(ctx, tx, org, "ROLE_TEMPLATE_CREATED", actor, "role_template", t.ID, map[string]any{"name": t.Name}, now)
}

// UpdateRoleTemplate replaces a role template's name and description and
// records ROLE_TEMPLATE_UPDATED.
func UpdateRoleTemplate(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, in RoleTemplateInput, actor string, now time.Time) (RoleTemplate, error) {
	if err := in.Validate(); err != nil {
		return RoleTemplate{}, err
	}
	t, err := scanTemplate(tx.QueryRow(ctx, `UPDATE role_templates SET name = $3, description = $4, updated_at = $5
		WHERE organization_id = $1 AND id = $2 RETURNING id, name, description, created_at, updated_at`, org, id, in.Name, in.Description, stamp(now)))
	if db.IsUniqueViolation(err, "role_templates_organization_id_name_key") {
		return t, fmt.Errorf("role template %q exists: %w", in.Name, fault.ErrConflict)
	}
	if err != nil {
		return t, err
	}
	return t, appendEvent(ctx, tx, org, "ROLE_TEMPLATE_UPDATED", actor, "role_template", t.ID, map[string]any{"name": t.Name}, now)
}

// DeleteRoleTemplate deletes an unused role template and records
// ROLE_TEMPLATE_DELETED. A template still used by agents or policies is a
// conflict.
func DeleteRoleTemplate(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, actor string, now time.Time) error {
	var name string
	err := tx.QueryRow(ctx, `DELETE FROM role_templates WHERE organization_id = $1 AND id = $2 RETURNING name`, org, id).Scan(&name)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return fmt.Errorf("role template %s is used by agents or policies: %w", id, fault.ErrConflict)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("role template %s: %w", id, fault.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete role template: %w", err)
	}
	return appendEvent(ctx, tx, org, "ROLE_TEMPLATE_DELETED", actor, "role_template", id, map[string]any{"name": name}, now)
}

func scanTemplate(row pgx.Row) (RoleTemplate, error) {
	var t RoleTemplate
	err := row.Scan(&t.ID, &t.Name, &t.Description, &t.CreatedAt, &t.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("role template: %w", fault.ErrNotFound)
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, err
}

// GetRoleTemplate returns one of the organization's role templates.
func GetRoleTemplate(ctx context.Context, q db.Querier, org, id uuid.UUID) (RoleTemplate, error) {
	return scanTemplate(q.QueryRow(ctx, `SELECT id, name, description, created_at, updated_at FROM role_templates WHERE organization_id = $1 AND id = $2`, org, id))
}

// RoleTemplateByName returns the organization's role template with this name.
func RoleTemplateByName(ctx context.Context, q db.Querier, org uuid.UUID, name string) (RoleTemplate, error) {
	return scanTemplate(q.QueryRow(ctx, `SELECT id, name, description, created_at, updated_at FROM role_templates WHERE organization_id = $1 AND name = $2`, org, name))
}

// ListRoleTemplates returns the organization's role templates by name.
func ListRoleTemplates(ctx context.Context, q db.Querier, org uuid.UUID) ([]RoleTemplate, error) {
	rows, err := q.Query(ctx, `SELECT id, name, description, created_at, updated_at FROM role_templates WHERE organization_id = $1 ORDER BY name`, org)
	if err != nil {
		return nil, fmt.Errorf("list role templates: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (RoleTemplate, error) { return scanTemplate(r) })
}

// Agent is a registered role agent.
type Agent struct {
	ID             uuid.UUID          `json:"id"`
	OrganizationID uuid.UUID          `json:"organizationId"`
	Name           string             `json:"name"`
	Description    string             `json:"description"`
	RoleTemplateID uuid.UUID          `json:"roleTemplateId"`
	RoleTemplate   string             `json:"roleTemplate"`
	Environment    policy.Environment `json:"environment"`
	ANS            Registration       `json:"ans"`
	Trust          TrustState         `json:"trust"`
	CreatedAt      time.Time          `json:"createdAt"`
	UpdatedAt      time.Time          `json:"updatedAt"`
}

// Registration is an agent's ANS registration as the API shows it.
type Registration struct {
	Name         string     `json:"name" doc:"The agent's ANS name."`
	Status       ans.Status `json:"status" enum:"PENDING,ACTIVE,SUSPENDED,DEPRECATED,REVOKED,EXPIRED"`
	StatusReason string     `json:"statusReason,omitempty"`
	RegisteredAt time.Time  `json:"registeredAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
	ExpiresAt    *time.Time `json:"expiresAt,omitempty"`
}

// TrustState is the agent's last computed trust, kept on the agent so that
// listings and the gateway snapshot need not recompute it.
type TrustState struct {
	Score      float64           `json:"score"`
	Level      policy.TrustLevel `json:"level"`
	ComputedAt *time.Time        `json:"computedAt,omitempty"`
}

func fromRegistration(r ans.Registration) Registration {
	return Registration{Name: r.Name.String(), Status: r.Status, StatusReason: r.StatusReason, RegisteredAt: r.RegisteredAt, UpdatedAt: r.UpdatedAt, ExpiresAt: r.ExpiresAt}
}

// NewAgent registers an agent.
type NewAgent struct {
	Name           string             `json:"name" minLength:"1" maxLength:"100" doc:"Unique within the organization; letters, digits, spaces, '.', '_' and '-'."`
	Description    string             `json:"description,omitempty" maxLength:"1000"`
	RoleTemplateID uuid.UUID          `json:"roleTemplateId" doc:"The role template whose policies apply to the agent."`
	Environment    policy.Environment `json:"environment" enum:"development,staging,production"`
	Version        string             `json:"version,omitempty" maxLength:"64" doc:"Semantic version in the ANS name (default 1.0.0)."`
	ANSName        string             `json:"ansName,omitempty" maxLength:"512" doc:"An explicit ANS name, in the v2 form ans://v1.0.0.host or the draft-00 form protocol://AgentID.capability.provider.v1.0. Default: ans://v<version>.<name>.<organization's ANS domain>."`
	Activate       bool               `json:"activate,omitempty" doc:"Register the ANS name ACTIVE at once instead of PENDING."`
	ANSExpiresAt   *time.Time         `json:"ansExpiresAt,omitempty" doc:"When the ANS registration expires."`
}

var agentNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$`)

// Registered is the result of Register: the agent and its first HMAC key,
// whose secret exists only in this value.
type Registered struct {
	Agent Agent
	Key   NewKey
}

// Register stores an agent, registers its ANS name through reg, issues its
// first HMAC key and records AGENT_REGISTERED, all in tx.
func Register(ctx context.Context, tx pgx.Tx, reg ans.Registry, keys *Keys, org uuid.UUID, ansDomain string, in NewAgent, actor string, now time.Time) (Registered, error) {
	var inv fault.Invalid
	if !agentNameRe.MatchString(in.Name) {
		inv.Add("name", "must be 1 to 100 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit", in.Name)
	}
	if !in.Environment.Valid() {
		inv.Add("environment", "must be development, staging or production", in.Environment)
	}
	version := in.Version
	if version == "" {
		version = "1.0.0"
	}
	var name ans.Name
	var err error
	if in.ANSName != "" {
		if name, err = ans.ParseName(in.ANSName); err != nil {
			inv.Add("ansName", err.Error(), in.ANSName)
		}
	} else if name, err = ans.NewV2(version, ans.HostLabel(in.Name)+"."+ansDomain); err != nil {
		inv.Add("version", err.Error(), in.Version)
	}
	if in.ANSExpiresAt != nil && !in.ANSExpiresAt.After(now) {
		inv.Add("ansExpiresAt", "must be in the future", in.ANSExpiresAt)
	}
	if err := inv.Err(); err != nil {
		return Registered{}, err
	}
	tmpl, err := GetRoleTemplate(ctx, tx, org, in.RoleTemplateID)
	if errors.Is(err, fault.ErrNotFound) {
		return Registered{}, fault.Field("roleTemplateId", "no such role template in this organization", in.RoleTemplateID)
	}
	if err != nil {
		return Registered{}, err
	}
	a := Agent{
		ID: uuid.New(), OrganizationID: org, Name: in.Name, Description: in.Description,
		RoleTemplateID: tmpl.ID, RoleTemplate: tmpl.Name, Environment: in.Environment,
		Trust:     TrustState{Level: policy.L1},
		CreatedAt: stamp(now), UpdatedAt: stamp(now),
	}
	_, err = tx.Exec(ctx, `INSERT INTO role_agents (id, organization_id, role_template_id, name, description, environment, trust_score, trust_level, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, 0, 1, $7, $7)`, a.ID, org, tmpl.ID, a.Name, a.Description, a.Environment, a.CreatedAt)
	if db.IsUniqueViolation(err, "role_agents_organization_id_name_key") {
		return Registered{}, fmt.Errorf("an agent named %q exists: %w", in.Name, fault.ErrConflict)
	}
	if err != nil {
		return Registered{}, fmt.Errorf("register agent: %w", err)
	}
	status := ans.StatusPending
	if in.Activate {
		status = ans.StatusActive
	}
	r, err := reg.Register(db.WithTx(ctx, tx), ans.Registration{AgentID: a.ID.String(), Name: name, Status: status, ExpiresAt: in.ANSExpiresAt})
	if errors.Is(err, ans.ErrNameTaken) {
		return Registered{}, fmt.Errorf("ANS name %s is registered to another agent: %w", name, fault.ErrConflict)
	}
	if err != nil {
		return Registered{}, err
	}
	a.ANS = fromRegistration(r)
	k, err := keys.create(ctx, tx, org, a.ID, now)
	if err != nil {
		return Registered{}, err
	}
	err = appendEvent(ctx, tx, org, "AGENT_REGISTERED", actor, "agent", a.ID, map[string]any{
		"name": a.Name, "roleTemplate": tmpl.Name, "environment": a.Environment,
		"ansName": a.ANS.Name, "ansStatus": a.ANS.Status, "kid": k.KID,
	}, now)
	return Registered{Agent: a, Key: k}, err
}

const selectAgent = `SELECT a.id, a.organization_id, a.name, a.description, a.role_template_id, t.name, a.environment,
	a.trust_score, a.trust_level, a.trust_computed_at, a.created_at, a.updated_at,
	r.name, r.status, r.status_reason, r.registered_at, r.updated_at, r.expires_at
	FROM role_agents a
	JOIN role_templates t ON t.organization_id = a.organization_id AND t.id = a.role_template_id
	JOIN ans_registrations r ON r.organization_id = a.organization_id AND r.agent_id = a.id`

func scanAgent(row pgx.CollectableRow) (Agent, error) {
	var a Agent
	err := row.Scan(&a.ID, &a.OrganizationID, &a.Name, &a.Description, &a.RoleTemplateID, &a.RoleTemplate, &a.Environment,
		&a.Trust.Score, &a.Trust.Level, &a.Trust.ComputedAt, &a.CreatedAt, &a.UpdatedAt,
		&a.ANS.Name, &a.ANS.Status, &a.ANS.StatusReason, &a.ANS.RegisteredAt, &a.ANS.UpdatedAt, &a.ANS.ExpiresAt)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	a.ANS.RegisteredAt, a.ANS.UpdatedAt = a.ANS.RegisteredAt.UTC(), a.ANS.UpdatedAt.UTC()
	return a, err
}

// Get returns one of the organization's agents.
func Get(ctx context.Context, q db.Querier, org, id uuid.UUID) (Agent, error) {
	rows, err := q.Query(ctx, selectAgent+` WHERE a.organization_id = $1 AND a.id = $2`, org, id)
	if err != nil {
		return Agent{}, fmt.Errorf("get agent: %w", err)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAgent)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("agent %s: %w", id, fault.ErrNotFound)
	}
	return a, err
}

// Filter selects agents in List. Zero fields do not filter.
type Filter struct {
	Status         ans.Status
	RoleTemplateID uuid.UUID
	Environment    policy.Environment
	// After is the pagination cursor: the id of the last agent of the
	// previous page (agents are listed by id).
	After uuid.UUID
	Limit int
}

// List returns the organization's agents matching f, ordered by id.
func List(ctx context.Context, q db.Querier, org uuid.UUID, f Filter) ([]Agent, error) {
	rows, err := q.Query(ctx, selectAgent+` WHERE a.organization_id = $1
		AND ($2 = '' OR r.status = $2)
		AND ($3 = '00000000-0000-0000-0000-000000000000'::uuid OR a.role_template_id = $3)
		AND ($4 = '' OR a.environment = $4)
		AND a.id > $5
		ORDER BY a.id LIMIT $6`, org, string(f.Status), f.RoleTemplateID, string(f.Environment), f.After, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return pgx.CollectRows(rows, scanAgent)
}

// Update is a change to an agent's mutable fields; nil fields stay as they are.
type Update struct {
	Description    *string    `json:"description,omitempty" maxLength:"1000"`
	RoleTemplateID *uuid.UUID `json:"roleTemplateId,omitempty"`
}

// Patch applies u and records AGENT_UPDATED with the changed fields.
func Patch(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, u Update, actor string, now time.Time) (Agent, error) {
	a, err := Get(ctx, tx, org, id)
	if err != nil {
		return a, err
	}
	changes := map[string]any{}
	if u.Description != nil && *u.Description != a.Description {
		changes["description"] = *u.Description
		a.Description = *u.Description
	}
	if u.RoleTemplateID != nil && *u.RoleTemplateID != a.RoleTemplateID {
		tmpl, err := GetRoleTemplate(ctx, tx, org, *u.RoleTemplateID)
		if errors.Is(err, fault.ErrNotFound) {
			return a, fault.Field("roleTemplateId", "no such role template in this organization", *u.RoleTemplateID)
		}
		if err != nil {
			return a, err
		}
		changes["roleTemplate"] = map[string]any{"from": a.RoleTemplate, "to": tmpl.Name}
		a.RoleTemplateID, a.RoleTemplate = tmpl.ID, tmpl.Name
	}
	if len(changes) == 0 {
		return a, nil
	}
	a.UpdatedAt = stamp(now)
	if _, err := tx.Exec(ctx, `UPDATE role_agents SET description = $3, role_template_id = $4, updated_at = $5 WHERE organization_id = $1 AND id = $2`,
		org, id, a.Description, a.RoleTemplateID, a.UpdatedAt); err != nil {
		return a, fmt.Errorf("update agent: %w", err)
	}
	return a, appendEvent(ctx, tx, org, "AGENT_UPDATED", actor, "agent", id, changes, now)
}

// SetStatus moves the agent's ANS registration to status to and records
// ANS_STATUS_CHANGED. Forbidden transitions are conflicts; a missing reason
// where one is required is a field error.
func SetStatus(ctx context.Context, tx pgx.Tx, reg ans.Registry, org, id uuid.UUID, to ans.Status, reason, actor string, now time.Time) (Agent, error) {
	a, err := Get(ctx, tx, org, id)
	if err != nil {
		return a, err
	}
	r, err := reg.SetStatus(db.WithTx(ctx, tx), id.String(), to, reason)
	switch {
	case errors.Is(err, ans.ErrInvalidTransition):
		return a, fmt.Errorf("ANS status %s cannot become %s: %w", a.ANS.Status, to, fault.ErrConflict)
	case errors.Is(err, ans.ErrReasonRequired), errors.Is(err, ans.ErrInvalidReason):
		return a, fault.Field("reason", err.Error(), nil)
	case errors.Is(err, ans.ErrInvalidStatus):
		return a, fault.Field("status", err.Error(), to)
	case errors.Is(err, ans.ErrNotFound):
		return a, fmt.Errorf("agent %s: %w", id, fault.ErrNotFound)
	case err != nil:
		return a, err
	}
	from := a.ANS.Status
	a.ANS = fromRegistration(r)
	err = appendEvent(ctx, tx, org, "ANS_STATUS_CHANGED", actor, "agent", id, map[string]any{
		"ansName": a.ANS.Name, "from": from, "to": to, "reason": reason,
	}, now)
	if err != nil || to.Serving() {
		return a, err
	}
	// Revocation follows the agent: a registration that stops serving
	// takes the agent's live tokens with it, in the same transaction.
	_, err = tokens.RevokeAgent(ctx, tx, org, id, "ans_status:"+string(to), actor, now)
	return a, err
}

// ExpireDue moves every registration whose expiry has passed to EXPIRED,
// recording ANS_STATUS_CHANGED as the system, one transaction per agent.
// PENDING registrations are left alone: they never served, and only an
// operator may revoke them.
func ExpireDue(ctx context.Context, pool interface {
	db.Querier
	Begin(context.Context) (pgx.Tx, error)
}, now time.Time) (int, error) {
	rows, err := pool.Query(ctx, `SELECT organization_id, agent_id FROM ans_registrations
		WHERE expires_at <= $1 AND status IN ('ACTIVE', 'SUSPENDED', 'DEPRECATED')`, now)
	if err != nil {
		return 0, fmt.Errorf("find expired registrations: %w", err)
	}
	type key struct{ org, agent uuid.UUID }
	due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (key, error) {
		var k key
		return k, row.Scan(&k.org, &k.agent)
	})
	if err != nil {
		return 0, fmt.Errorf("find expired registrations: %w", err)
	}
	for i, k := range due {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			reg := BuiltinRegistry{OrganizationID: k.org, Now: func() time.Time { return now }}
			_, err := SetStatus(ctx, tx, reg, k.org, k.agent, ans.StatusExpired, "registration expired", "system:ans-expiry", now)
			return err
		})
		if err != nil {
			return i, err
		}
	}
	return len(due), nil
}

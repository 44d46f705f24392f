// Package policies stores the organization's MCP policies (the original
// design's mcp_policies): one per role template and environment, in the
// model of shared/policy, which also validates them. The filter and the OPA
// bundles evaluate exactly what is stored here.
package policies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/shared/policy"
)

// Input is a policy as clients write it.
type Input struct {
	RoleTemplateID   uuid.UUID          `json:"roleTemplateId" doc:"The role template the policy applies to."`
	Environment      policy.Environment `json:"environment" enum:"development,staging,production"`
	MinTrustLevel    policy.TrustLevel  `json:"minTrustLevel" doc:"Minimum trust level, L1 to L5."`
	MinLoA           policy.LoA         `json:"minLoa" minimum:"1" maximum:"4" doc:"Minimum level of assurance of the gateway token: 1 self-asserted, 2 verified, 3 strong, 4 very high."`
	RequiredScopes   []string           `json:"requiredScopes" maxItems:"64" doc:"Scopes the gateway token must carry."`
	AllowedEndpoints []string           `json:"allowedEndpoints" minItems:"1" maxItems:"256" doc:"MCP endpoints the role may call: a method (tools/list, notifications/*) or method:name for tools/call, resources/read and prompts/get, with * wildcards."`
	Constraints      policy.Constraints `json:"constraints,omitempty" doc:"maxBodyBytes and UTC timeWindows."`
}

// Policy is a stored MCP policy.
type Policy struct {
	ID               uuid.UUID          `json:"id"`
	RoleTemplateID   uuid.UUID          `json:"roleTemplateId"`
	RoleTemplate     string             `json:"roleTemplate"`
	Environment      policy.Environment `json:"environment"`
	MinTrustLevel    policy.TrustLevel  `json:"minTrustLevel"`
	MinLoA           policy.LoA         `json:"minLoa"`
	RequiredScopes   []string           `json:"requiredScopes"`
	AllowedEndpoints []string           `json:"allowedEndpoints"`
	Constraints      policy.Constraints `json:"constraints"`
	CreatedAt        time.Time          `json:"createdAt"`
	UpdatedAt        time.Time          `json:"updatedAt"`
}

// Model returns the policy in the shared evaluation model.
func (p Policy) Model() policy.Policy {
	return policy.Policy{
		ID: p.ID.String(), RoleTemplate: p.RoleTemplate, Environment: p.Environment,
		MinTrustLevel: p.MinTrustLevel, MinLoA: p.MinLoA,
		RequiredScopes: p.RequiredScopes, AllowedEndpoints: p.AllowedEndpoints, Constraints: p.Constraints,
	}
}

// validate checks in against the shared model, whose field paths are the
// request body's, and resolves its role template.
func validate(ctx context.Context, q db.Querier, org uuid.UUID, in Input) (agents.RoleTemplate, error) {
	tmpl, err := agents.GetRoleTemplate(ctx, q, org, in.RoleTemplateID)
	if errors.Is(err, fault.ErrNotFound) {
		return tmpl, fault.Field("roleTemplateId", "no such role template in this organization", in.RoleTemplateID)
	}
	if err != nil {
		return tmpl, err
	}
	if in.RequiredScopes == nil {
		in.RequiredScopes = []string{}
	}
	m := policy.Policy{RoleTemplate: tmpl.Name, Environment: in.Environment, MinTrustLevel: in.MinTrustLevel, MinLoA: in.MinLoA,
		RequiredScopes: in.RequiredScopes, AllowedEndpoints: in.AllowedEndpoints, Constraints: in.Constraints}
	var verr *policy.ValidationError
	if err := m.Validate(); errors.As(err, &verr) {
		inv := &fault.Invalid{}
		for _, f := range verr.Errors {
			inv.Add(f.Field, f.Message, f.Value)
		}
		return tmpl, inv
	} else if err != nil {
		return tmpl, err
	}
	return tmpl, nil
}

func details(p Policy) map[string]any {
	return map[string]any{
		"roleTemplate": p.RoleTemplate, "environment": p.Environment, "minTrustLevel": p.MinTrustLevel, "minLoa": p.MinLoA,
		"requiredScopes": p.RequiredScopes, "allowedEndpoints": p.AllowedEndpoints, "constraints": p.Constraints,
	}
}

// Create stores a policy and records POLICY_CREATED. A second policy for
// the same role template and environment is a conflict.
func Create(ctx context.Context, tx pgx.Tx, org uuid.UUID, in Input, actor string, now time.Time) (Policy, error) {
	tmpl, err := validate(ctx, tx, org, in)
	if err != nil {
		return Policy{}, err
	}
	constraints, err := json.Marshal(in.Constraints)
	if err != nil {
		return Policy{}, fmt.Errorf("encode constraints: %w", err)
	}
	p := fromInput(uuid.New(), tmpl, in, now)
	_, err = tx.Exec(ctx, `INSERT INTO mcp_policies (id, organization_id, role_template_id, environment, min_trust_level, min_loa, required_scopes, allowed_endpoints, constraints, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`,
		p.ID, org, p.RoleTemplateID, p.Environment, int16(p.MinTrustLevel), int16(p.MinLoA), p.RequiredScopes, p.AllowedEndpoints, constraints, p.CreatedAt)
	if db.IsUniqueViolation(err, "mcp_policies_organization_id_role_template_id_environment_key") {
		return Policy{}, fmt.Errorf("role template %s already has a %s policy: %w", tmpl.Name, in.Environment, fault.ErrConflict)
	}
	if err != nil {
		return Policy{}, fmt.Errorf("create policy: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "POLICY_CREATED", Actor: actor, SubjectType: "policy", SubjectID: p.ID.String(), Details: details(p)}, now)
	return p, err
}

func fromInput(id uuid.UUID, tmpl agents.RoleTemplate, in Input, now time.Time) Policy {
	scopes := in.RequiredScopes
	if scopes == nil {
		scopes = []string{}
	}
	t := now.UTC().Truncate(time.Microsecond)
	return Policy{ID: id, RoleTemplateID: tmpl.ID, RoleTemplate: tmpl.Name, Environment: in.Environment,
		MinTrustLevel: in.MinTrustLevel, MinLoA: in.MinLoA, RequiredScopes: scopes, AllowedEndpoints: in.AllowedEndpoints,
		Constraints: in.Constraints, CreatedAt: t, UpdatedAt: t}
}

// Replace overwrites a policy and records POLICY_UPDATED with the new content.
func Replace(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, in Input, actor string, now time.Time) (Policy, error) {
	old, err := Get(ctx, tx, org, id)
	if err != nil {
		return Policy{}, err
	}
	tmpl, err := validate(ctx, tx, org, in)
	if err != nil {
		return Policy{}, err
	}
	constraints, err := json.Marshal(in.Constraints)
	if err != nil {
		return Policy{}, fmt.Errorf("encode constraints: %w", err)
	}
	p := fromInput(id, tmpl, in, now)
	p.CreatedAt = old.CreatedAt
	_, err = tx.Exec(ctx, `UPDATE mcp_policies SET role_template_id = $3, environment = $4, min_trust_level = $5, min_loa = $6,
		required_scopes = $7, allowed_endpoints = $8, constraints = $9, updated_at = $10 WHERE organization_id = $1 AND id = $2`,
		org, id, p.RoleTemplateID, p.Environment, int16(p.MinTrustLevel), int16(p.MinLoA), p.RequiredScopes, p.AllowedEndpoints, constraints, p.UpdatedAt)
	if db.IsUniqueViolation(err, "mcp_policies_organization_id_role_template_id_environment_key") {
		return Policy{}, fmt.Errorf("role template %s already has a %s policy: %w", tmpl.Name, in.Environment, fault.ErrConflict)
	}
	if err != nil {
		return Policy{}, fmt.Errorf("update policy: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "POLICY_UPDATED", Actor: actor, SubjectType: "policy", SubjectID: id.String(), Details: details(p)}, now)
	return p, err
}

// Delete removes a policy and records POLICY_DELETED. Agents of that role
// template and environment are then denied everything: deny by default.
func Delete(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, actor string, now time.Time) error {
	p, err := Get(ctx, tx, org, id)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM mcp_policies WHERE organization_id = $1 AND id = $2`, org, id); err != nil {
		return fmt.Errorf("delete policy: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "POLICY_DELETED", Actor: actor, SubjectType: "policy", SubjectID: id.String(), Details: details(p)}, now)
	return err
}

const selectPolicy = `SELECT p.id, p.role_template_id, t.name, p.environment, p.min_trust_level, p.min_loa, p.required_scopes, p.allowed_endpoints, p.constraints, p.created_at, p.updated_at
	FROM mcp_policies p JOIN role_templates t ON t.organization_id = p.organization_id AND t.id = p.role_template_id`

func scan(row pgx.CollectableRow) (Policy, error) {
	var p Policy
	var level, loa int16
	var constraints []byte
	if err := row.Scan(&p.ID, &p.RoleTemplateID, &p.RoleTemplate, &p.Environment, &level, &loa, &p.RequiredScopes, &p.AllowedEndpoints, &constraints, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return p, err
	}
	p.MinTrustLevel, p.MinLoA = policy.TrustLevel(level), policy.LoA(loa)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if err := json.Unmarshal(constraints, &p.Constraints); err != nil {
		return p, fmt.Errorf("stored constraints of policy %s: %w", p.ID, err)
	}
	return p, nil
}

// Get returns one of the organization's policies.
func Get(ctx context.Context, q db.Querier, org, id uuid.UUID) (Policy, error) {
	rows, err := q.Query(ctx, selectPolicy+` WHERE p.organization_id = $1 AND p.id = $2`, org, id)
	if err != nil {
		return Policy{}, fmt.Errorf("get policy: %w", err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("policy %s: %w", id, fault.ErrNotFound)
	}
	return p, err
}

// For returns the policy of a role template in an environment, or
// fault.ErrNotFound when there is none (and everything is denied).
func For(ctx context.Context, q db.Querier, org, roleTemplate uuid.UUID, env policy.Environment) (Policy, error) {
	rows, err := q.Query(ctx, selectPolicy+` WHERE p.organization_id = $1 AND p.role_template_id = $2 AND p.environment = $3`, org, roleTemplate, env)
	if err != nil {
		return Policy{}, fmt.Errorf("policy for: %w", err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("no %s policy for role template %s: %w", env, roleTemplate, fault.ErrNotFound)
	}
	return p, err
}

// List returns the organization's policies, optionally of one role template
// or environment, ordered by role template name and environment.
func List(ctx context.Context, q db.Querier, org uuid.UUID, roleTemplate uuid.UUID, env policy.Environment) ([]Policy, error) {
	rows, err := q.Query(ctx, selectPolicy+` WHERE p.organization_id = $1
		AND ($2 = '00000000-0000-0000-0000-000000000000'::uuid OR p.role_template_id = $2)
		AND ($3 = '' OR p.environment = $3)
		ORDER BY t.name, p.environment`, org, roleTemplate, string(env))
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return pgx.CollectRows(rows, scan)
}

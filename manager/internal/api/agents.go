package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/ans"
	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/orgs"
	"github.com/knaight/knaight/shared/policy"
)

type idPath struct {
	ID uuid.UUID `path:"id"`
}

type roleTemplateBody struct {
	Body agents.RoleTemplateInput
}

type roleTemplateUpdate struct {
	ID   uuid.UUID `path:"id"`
	Body agents.RoleTemplateInput
}

type roleTemplateOutput struct {
	Body agents.RoleTemplate
}

type roleTemplatesOutput struct {
	Body struct {
		Items []agents.RoleTemplate `json:"items"`
	}
}

type registerAgentInput struct {
	Body agents.NewAgent
}

type registeredOutput struct {
	Body struct {
		agents.Agent
		HMACKey agents.NewKey `json:"hmacKey" doc:"The agent's first request-signing key; its secret is shown only here."`
	}
}

type agentOutput struct {
	Body agents.Agent
}

type listAgentsInput struct {
	Status         string    `query:"status" enum:"PENDING,ACTIVE,SUSPENDED,DEPRECATED,REVOKED,EXPIRED"`
	RoleTemplateID uuid.UUID `query:"roleTemplateId"`
	Environment    string    `query:"environment" enum:"development,staging,production"`
	Cursor         uuid.UUID `query:"cursor" doc:"The nextCursor of the previous page."`
	Limit          int       `query:"limit" minimum:"1" maximum:"500" default:"100"`
}

type listAgentsOutput struct {
	Body struct {
		Items      []agents.Agent `json:"items"`
		NextCursor *uuid.UUID     `json:"nextCursor,omitempty"`
	}
}

type patchAgentInput struct {
	ID   uuid.UUID `path:"id"`
	Body agents.Update
}

type setStatusInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		Status ans.Status `json:"status" enum:"ACTIVE,SUSPENDED,DEPRECATED,REVOKED,EXPIRED" doc:"The new ANS status."`
		Reason string     `json:"reason,omitempty" maxLength:"500" doc:"Why; required for SUSPENDED, DEPRECATED and REVOKED."`
	}
}

type rotateKeyInput struct {
	ID   uuid.UUID `path:"id"`
	Body *struct {
		OverlapSeconds *int64 `json:"overlapSeconds,omitempty" minimum:"0" maximum:"2592000" doc:"How long the previous keys stay valid (default: the manager's --key-overlap)."`
	}
}

type newKeyOutput struct {
	Body agents.NewKey
}

type keysOutput struct {
	Body struct {
		Items []agents.KeyInfo `json:"items"`
	}
}

func (s *Server) registry(org uuid.UUID) ans.Registry {
	return agents.BuiltinRegistry{OrganizationID: org, Now: s.Now}
}

func (s *Server) keys() *agents.Keys {
	return &agents.Keys{Sealer: s.Sealer, DefaultOverlap: s.KeyOverlap}
}

func (s *Server) registerAgents() {
	tags := []string{"Role templates"}
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "create-role-template", Method: http.MethodPost, Path: "/api/v1/role-templates",
		Summary: "Create a role template", Tags: tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusConflict},
	}, func(ctx context.Context, in *roleTemplateBody) (*roleTemplateOutput, error) {
		p := principal(ctx)
		var out roleTemplateOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = agents.CreateRoleTemplate(ctx, tx, p.OrganizationID, in.Body, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-role-templates", Method: http.MethodGet, Path: "/api/v1/role-templates",
		Summary: "List role templates", Tags: tags,
	}, func(ctx context.Context, _ *struct{}) (*roleTemplatesOutput, error) {
		var out roleTemplatesOutput
		var err error
		out.Body.Items, err = agents.ListRoleTemplates(ctx, s.Pool, principal(ctx).OrganizationID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-role-template", Method: http.MethodGet, Path: "/api/v1/role-templates/{id}",
		Summary: "Get a role template", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*roleTemplateOutput, error) {
		var out roleTemplateOutput
		var err error
		out.Body, err = agents.GetRoleTemplate(ctx, s.Pool, principal(ctx).OrganizationID, in.ID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "update-role-template", Method: http.MethodPut, Path: "/api/v1/role-templates/{id}",
		Summary: "Replace a role template's name and description", Tags: tags, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *roleTemplateUpdate) (*roleTemplateOutput, error) {
		p := principal(ctx)
		var out roleTemplateOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = agents.UpdateRoleTemplate(ctx, tx, p.OrganizationID, in.ID, in.Body, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "delete-role-template", Method: http.MethodDelete, Path: "/api/v1/role-templates/{id}",
		Summary: "Delete an unused role template", Tags: tags, DefaultStatus: http.StatusNoContent,
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *idPath) (*struct{}, error) {
		p := principal(ctx)
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			return agents.DeleteRoleTemplate(ctx, tx, p.OrganizationID, in.ID, p.Actor(), s.Now())
		})
		return nil, s.failIf(ctx, err)
	})

	tags = []string{"Agents"}
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "register-agent", Method: http.MethodPost, Path: "/api/v1/agents",
		Summary:     "Register a role agent",
		Description: "Creates the agent, registers its ANS name (PENDING, or ACTIVE with activate=true) and issues its first HMAC key, whose secret is shown only in this response.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusConflict},
	}, func(ctx context.Context, in *registerAgentInput) (*registeredOutput, error) {
		p := principal(ctx)
		var out registeredOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			o, err := orgs.Get(ctx, tx, p.OrganizationID)
			if err != nil {
				return err
			}
			r, err := agents.Register(ctx, tx, s.registry(o.ID), s.keys(), o.ID, o.ANSDomain, in.Body, p.Actor(), s.Now())
			out.Body.Agent, out.Body.HMACKey = r.Agent, r.Key
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-agents", Method: http.MethodGet, Path: "/api/v1/agents",
		Summary: "List agents", Tags: tags,
	}, func(ctx context.Context, in *listAgentsInput) (*listAgentsOutput, error) {
		items, err := agents.List(ctx, s.Pool, principal(ctx).OrganizationID, agents.Filter{
			Status: ans.Status(in.Status), RoleTemplateID: in.RoleTemplateID, Environment: policy.Environment(in.Environment),
			After: in.Cursor, Limit: in.Limit + 1,
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &listAgentsOutput{}
		if len(items) > in.Limit {
			items = items[:in.Limit]
			out.Body.NextCursor = &items[len(items)-1].ID
		}
		out.Body.Items = items
		return out, nil
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-agent", Method: http.MethodGet, Path: "/api/v1/agents/{id}",
		Summary: "Get an agent", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*agentOutput, error) {
		var out agentOutput
		var err error
		out.Body, err = agents.Get(ctx, s.Pool, principal(ctx).OrganizationID, in.ID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "update-agent", Method: http.MethodPatch, Path: "/api/v1/agents/{id}",
		Summary: "Change an agent's description or role template", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *patchAgentInput) (*agentOutput, error) {
		p := principal(ctx)
		var out agentOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = agents.Patch(ctx, tx, p.OrganizationID, in.ID, in.Body, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "set-agent-ans-status", Method: http.MethodPost, Path: "/api/v1/agents/{id}/ans/status",
		Summary:     "Move an agent's ANS registration through its lifecycle",
		Description: "PENDING -> ACTIVE | REVOKED; ACTIVE -> SUSPENDED | DEPRECATED | REVOKED | EXPIRED; SUSPENDED -> ACTIVE | REVOKED | EXPIRED; DEPRECATED -> REVOKED | EXPIRED. REVOKED and EXPIRED are final. Other moves answer 409.",
		Tags:        tags, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *setStatusInput) (*agentOutput, error) {
		p := principal(ctx)
		var out agentOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = agents.SetStatus(ctx, tx, s.registry(p.OrganizationID), p.OrganizationID, in.ID, in.Body.Status, in.Body.Reason, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "rotate-agent-key", Method: http.MethodPost, Path: "/api/v1/agents/{id}/keys",
		Summary:     "Issue a new HMAC key, retiring the current ones after an overlap",
		Description: "The new key's secret is shown only in this response. Keys valid before the rotation keep verifying for overlapSeconds.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *rotateKeyInput) (*newKeyOutput, error) {
		p := principal(ctx)
		var overlap *time.Duration
		if in.Body != nil && in.Body.OverlapSeconds != nil {
			d := time.Duration(*in.Body.OverlapSeconds) * time.Second
			overlap = &d
		}
		var out newKeyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = s.keys().Rotate(ctx, tx, p.OrganizationID, in.ID, overlap, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-agent-keys", Method: http.MethodGet, Path: "/api/v1/agents/{id}/keys",
		Summary: "List an agent's HMAC keys (never their secrets)", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*keysOutput, error) {
		var out keysOutput
		var err error
		out.Body.Items, err = s.keys().List(ctx, s.Pool, principal(ctx).OrganizationID, in.ID, s.Now())
		return &out, s.failIf(ctx, err)
	})
}

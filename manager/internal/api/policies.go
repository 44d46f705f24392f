package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/policies"
	"github.com/knaight/knaight/shared/policy"
)

type policyBody struct {
	Body policies.Input
}

type policyUpdate struct {
	ID   uuid.UUID `path:"id"`
	Body policies.Input
}

type policyOutput struct {
	Body policies.Policy
}

type listPoliciesInput struct {
	RoleTemplateID uuid.UUID `query:"roleTemplateId"`
	Environment    string    `query:"environment" enum:"development,staging,production"`
}

type policiesOutput struct {
	Body struct {
		Items []policies.Policy `json:"items"`
	}
}

func (s *Server) roleTemplate(ctx context.Context, org, id uuid.UUID) (agents.RoleTemplate, error) {
	return agents.GetRoleTemplate(ctx, s.Pool, org, id)
}

func (s *Server) registerPolicies() {
	tags := []string{"MCP policies"}
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "create-policy", Method: http.MethodPost, Path: "/api/v1/policies",
		Summary:     "Create the MCP policy of a role template in an environment",
		Description: "Deny by default: an agent may call only the endpoints its role template's policy for its environment allows, and only with the trust level, level of assurance and scopes it requires.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusConflict},
	}, func(ctx context.Context, in *policyBody) (*policyOutput, error) {
		p := principal(ctx)
		var out policyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = policies.Create(ctx, tx, p.OrganizationID, in.Body, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-policies", Method: http.MethodGet, Path: "/api/v1/policies",
		Summary: "List MCP policies", Tags: tags,
	}, func(ctx context.Context, in *listPoliciesInput) (*policiesOutput, error) {
		var out policiesOutput
		var err error
		out.Body.Items, err = policies.List(ctx, s.Pool, principal(ctx).OrganizationID, in.RoleTemplateID, policy.Environment(in.Environment))
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-policy", Method: http.MethodGet, Path: "/api/v1/policies/{id}",
		Summary: "Get an MCP policy", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*policyOutput, error) {
		var out policyOutput
		var err error
		out.Body, err = policies.Get(ctx, s.Pool, principal(ctx).OrganizationID, in.ID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "replace-policy", Method: http.MethodPut, Path: "/api/v1/policies/{id}",
		Summary: "Replace an MCP policy", Tags: tags, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *policyUpdate) (*policyOutput, error) {
		p := principal(ctx)
		var out policyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = policies.Replace(ctx, tx, p.OrganizationID, in.ID, in.Body, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "delete-policy", Method: http.MethodDelete, Path: "/api/v1/policies/{id}",
		Summary: "Delete an MCP policy (its agents are then denied everything)", Tags: tags,
		DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*struct{}, error) {
		p := principal(ctx)
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			return policies.Delete(ctx, tx, p.OrganizationID, in.ID, p.Actor(), s.Now())
		})
		return nil, s.failIf(ctx, err)
	})
}

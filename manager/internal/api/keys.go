package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
)

type createKeyInput struct {
	Body struct {
		Name string    `json:"name" minLength:"1" maxLength:"100" doc:"What the key is for."`
		Role auth.Role `json:"role" enum:"admin,operator,auditor" doc:"admin: everything; operator: agents, signals, role templates, policies; auditor: read-only, ledger included."`
	}
}

type createKeyOutput struct {
	Body keyWithToken
}

type listKeysOutput struct {
	Body struct {
		Items []auth.Key `json:"items"`
	}
}

type keyIDInput struct {
	ID string `path:"id" maxLength:"64"`
}

type keyOutput struct {
	Body auth.Key
}

func (s *Server) registerKeys() {
	register(s, perm(auth.Administer), huma.Operation{
		OperationID:   "create-api-key",
		Method:        http.MethodPost,
		Path:          "/api/v1/api-keys",
		Summary:       "Create an API key",
		Description:   "The response carries the key's token; it is never shown again (only its hash is stored).",
		Tags:          []string{"API keys"},
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createKeyInput) (*createKeyOutput, error) {
		p := principal(ctx)
		var out createKeyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			k, token, err := auth.CreateKey(ctx, tx, p.OrganizationID, in.Body.Name, in.Body.Role, p.Actor(), s.Now())
			out.Body = keyWithToken{Key: k, Token: token}
			return err
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &out, nil
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "list-api-keys",
		Method:      http.MethodGet,
		Path:        "/api/v1/api-keys",
		Summary:     "List the organization's API keys",
		Tags:        []string{"API keys"},
	}, func(ctx context.Context, _ *struct{}) (*listKeysOutput, error) {
		keys, err := auth.ListKeys(ctx, s.Pool, principal(ctx).OrganizationID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &listKeysOutput{}
		out.Body.Items = keys
		return out, nil
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "revoke-api-key",
		Method:      http.MethodDelete,
		Path:        "/api/v1/api-keys/{id}",
		Summary:     "Revoke an API key",
		Tags:        []string{"API keys"},
		Errors:      []int{http.StatusNotFound},
	}, func(ctx context.Context, in *keyIDInput) (*keyOutput, error) {
		p := principal(ctx)
		var out keyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = auth.RevokeKey(ctx, tx, p.OrganizationID, in.ID, p.Actor(), s.Now())
			return err
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &out, nil
	})
}

package api

import (
	"context"
	"crypto/subtle"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/orgs"
	sharedtoken "github.com/knaight/knaight/shared/token"
)

type bootstrapInput struct {
	Authorization string `header:"Authorization" required:"true" doc:"Bearer <bootstrap token> (the manager's --bootstrap-token)."`
	Body          struct {
		Organization orgs.New `json:"organization"`
		AdminKeyName string   `json:"adminKeyName,omitempty" maxLength:"100" doc:"Name of the first admin key (default \"bootstrap\")."`
	}
}

type keyWithToken struct {
	auth.Key
	Token string `json:"token" doc:"The key's secret. It is shown only in this response."`
}

type bootstrapOutput struct {
	Body struct {
		Organization orgs.Organization `json:"organization"`
		APIKey       keyWithToken      `json:"apiKey"`
	}
}

type organizationOutput struct {
	Body orgs.Organization
}

func (s *Server) registerBootstrap() {
	register(s, nil, huma.Operation{
		OperationID:   "bootstrap",
		Method:        http.MethodPost,
		Path:          "/api/v1/bootstrap",
		Summary:       "Create the first organization and its admin key",
		Description:   "Works once, on an installation without organizations, and only when the manager runs with a bootstrap token. The admin key's token is shown only in this response.",
		Tags:          []string{"Organization"},
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *bootstrapInput) (*bootstrapOutput, error) {
		if s.BootstrapToken == "" {
			return nil, huma.Error404NotFound("bootstrap over HTTP is disabled: start the manager with a bootstrap token, or run knaight-manager bootstrap")
		}
		token, ok := sharedtoken.Bearer(in.Authorization)
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.BootstrapToken)) != 1 {
			return nil, huma.Error401Unauthorized("wrong bootstrap token")
		}
		name := in.Body.AdminKeyName
		if name == "" {
			name = "bootstrap"
		}
		b, err := orgs.Bootstrap(ctx, s.Pool, in.Body.Organization, name, true, "bootstrap", s.Now())
		if err != nil {
			return nil, s.fail(ctx, prefixFields(err, "organization."))
		}
		out := &bootstrapOutput{}
		out.Body.Organization = b.Organization
		out.Body.APIKey = keyWithToken{Key: b.AdminKey, Token: b.Token}
		return out, nil
	})
}

func (s *Server) registerOrganization() {
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-organization",
		Method:      http.MethodGet,
		Path:        "/api/v1/organization",
		Summary:     "The caller's organization",
		Tags:        []string{"Organization"},
	}, func(ctx context.Context, _ *struct{}) (*organizationOutput, error) {
		o, err := orgs.Get(ctx, s.Pool, principal(ctx).OrganizationID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &organizationOutput{Body: o}, nil
	})
}

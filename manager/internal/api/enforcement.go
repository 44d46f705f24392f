package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/tokens"
)

type issueTokenInput struct {
	Body struct {
		OrganizationID uuid.UUID `json:"organizationId" doc:"Must be the caller's organization."`
		AgentID        uuid.UUID `json:"agentId" doc:"The agent the token is for; it must be ACTIVE in ANS."`
		ArtifactID     string    `json:"artifactId,omitempty" maxLength:"200" doc:"What the token was issued for (recorded and put in the artifact claim)."`
		ArtifactType   string    `json:"artifactType,omitempty" maxLength:"100" example:"MCP_POLICY"`
		LoALevel       int       `json:"loaLevel" minimum:"1" maximum:"4" doc:"Level of assurance the token carries."`
		Scope          []string  `json:"scope" maxItems:"64" doc:"Scopes the token grants."`
		IssuerID       string    `json:"issuerId,omitempty" maxLength:"200" doc:"On whose behalf it is issued (default: the calling API key)."`
		Audience       string    `json:"audience,omitempty" maxLength:"500" doc:"The protected MCP resource (default: the organization's first audience)."`
		TTLSeconds     int       `json:"ttlSeconds,omitempty" minimum:"60" maximum:"86400" doc:"Lifetime (default: the organization's, 15 minutes unless changed), at most the organization's maximum."`
	}
}

type issuedToken struct {
	Token     string `json:"token" doc:"The JWT. It is not stored and is shown only here."`
	TokenType string `json:"tokenType" example:"Bearer"`
	ExpiresIn int    `json:"expiresIn" doc:"Seconds until it expires."`
	tokens.Record
}

type issueTokenOutput struct {
	Body issuedToken
}

type revokeTokenInput struct {
	Body struct {
		TokenID        uuid.UUID `json:"tokenId"`
		OrganizationID uuid.UUID `json:"organizationId"`
		Reason         string    `json:"reason,omitempty" maxLength:"500"`
	}
}

type tokenRecordOutput struct {
	Body tokens.Record
}

type introspectInput struct {
	Body struct {
		Token string `json:"token" minLength:"1" maxLength:"8192"`
	}
}

type introspectOutput struct {
	Body tokens.Introspection
}

type tokenSettingsOutput struct {
	Body tokens.Settings
}

type tokenSettingsInput struct {
	Body tokens.Settings
}

type signingKeysOutput struct {
	Body struct {
		Items []tokens.SigningKey `json:"items"`
	}
}

type signingKeyOutput struct {
	Body tokens.SigningKey
}

func (s *Server) tokens() tokens.Service {
	return tokens.Service{Keys: s.tokenSigningKeys(), Issuer: s.Issuer}
}

func (s *Server) tokenSigningKeys() tokens.Keys {
	return tokens.Keys{Sealer: s.Sealer, Opened: s.signingKeys}
}

// sameOrganization answers 404 for an organizationId other than the
// caller's: another organization's objects do not exist for it.
func sameOrganization(ctx context.Context, id uuid.UUID) error {
	if id != principal(ctx).OrganizationID {
		return fault.Field("organizationId", "not the organization of the calling API key", id)
	}
	return nil
}

func (s *Server) registerEnforcement() {
	tags := []string{"Gateway tokens"}
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "issue-token", Method: http.MethodPost, Path: "/api/v1/enforcement/tokens/issue",
		Summary:     "Issue a gateway token for an agent",
		Description: "A JWT (typ at+jwt) signed with the organization's active key: EdDSA by default, HS256 if the organization chose it. Only its record is stored.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusConflict},
	}, func(ctx context.Context, in *issueTokenInput) (*issueTokenOutput, error) {
		p := principal(ctx)
		if err := sameOrganization(ctx, in.Body.OrganizationID); err != nil {
			return nil, s.fail(ctx, err)
		}
		issuer := in.Body.IssuerID
		if issuer == "" {
			issuer = p.Actor()
		}
		t, err := s.issuer.Issue(ctx, p.OrganizationID, tokens.IssueRequest{
			AgentID: in.Body.AgentID, Audience: in.Body.Audience, Scopes: in.Body.Scope, LoA: in.Body.LoALevel,
			TTL: time.Duration(in.Body.TTLSeconds) * time.Second, ArtifactID: in.Body.ArtifactID, ArtifactType: in.Body.ArtifactType,
			IssuerID: issuer,
		}, p.Actor(), s.Now())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := issueTokenOutput{Body: issuedToken{Token: t.Token, TokenType: "Bearer", ExpiresIn: int(t.ExpiresAt.Sub(t.IssuedAt).Seconds()), Record: t.Record}}
		return &out, nil
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "revoke-token", Method: http.MethodPost, Path: "/api/v1/enforcement/tokens/revoke",
		Summary:     "Revoke a gateway token",
		Description: "Revoking an already revoked token succeeds and changes nothing.",
		Tags:        tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *revokeTokenInput) (*tokenRecordOutput, error) {
		p := principal(ctx)
		if err := sameOrganization(ctx, in.Body.OrganizationID); err != nil {
			return nil, s.fail(ctx, err)
		}
		reason := in.Body.Reason
		if reason == "" {
			reason = "revoked by " + p.Actor()
		}
		var out tokenRecordOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = tokens.Revoke(ctx, tx, p.OrganizationID, in.Body.TokenID, reason, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "introspect-token", Method: http.MethodPost, Path: "/api/v1/enforcement/tokens/introspect",
		Summary:     "Introspect a gateway token",
		Description: "RFC 7662 semantics: {\"active\": false} and nothing else for an unknown, expired, revoked or foreign token.",
		Tags:        tags,
	}, func(ctx context.Context, in *introspectInput) (*introspectOutput, error) {
		org := principal(ctx).OrganizationID
		r, err := s.tokens().Introspect(ctx, s.Pool, in.Body.Token, &org, s.Now())
		return &introspectOutput{Body: r}, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-token", Method: http.MethodGet, Path: "/api/v1/enforcement/tokens/{id}",
		Summary: "The record of an issued token", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*tokenRecordOutput, error) {
		var out tokenRecordOutput
		var err error
		out.Body, err = tokens.Get(ctx, s.Pool, principal(ctx).OrganizationID, in.ID)
		return &out, s.failIf(ctx, err)
	})

	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-token-settings", Method: http.MethodGet, Path: "/api/v1/enforcement/token-settings",
		Summary: "The organization's token algorithm, lifetimes and audiences", Tags: tags,
	}, func(ctx context.Context, _ *struct{}) (*tokenSettingsOutput, error) {
		var out tokenSettingsOutput
		var err error
		out.Body, err = tokens.GetSettings(ctx, s.Pool, principal(ctx).OrganizationID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "set-token-settings", Method: http.MethodPut, Path: "/api/v1/enforcement/token-settings",
		Summary: "Set the organization's token algorithm, lifetimes and audiences", Tags: tags,
	}, func(ctx context.Context, in *tokenSettingsInput) (*tokenSettingsOutput, error) {
		p := principal(ctx)
		var out tokenSettingsOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = s.tokenSigningKeys().SetSettings(ctx, tx, p.OrganizationID, in.Body, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-signing-keys", Method: http.MethodGet, Path: "/api/v1/enforcement/signing-keys",
		Summary: "The organization's token signing keys that still verify tokens", Tags: tags,
	}, func(ctx context.Context, _ *struct{}) (*signingKeysOutput, error) {
		var out signingKeysOutput
		var err error
		out.Body.Items, err = tokens.ListKeys(ctx, s.Pool, principal(ctx).OrganizationID, s.Now())
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "rotate-signing-key", Method: http.MethodPost, Path: "/api/v1/enforcement/signing-keys/rotate",
		Summary:     "Replace the active token signing key",
		Description: "New tokens get the new kid; the old key keeps verifying, and stays in the JWKS, until the last token it signed expires.",
		Tags:        tags, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, _ *struct{}) (*signingKeyOutput, error) {
		p := principal(ctx)
		var out signingKeyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = s.tokenSigningKeys().Rotate(ctx, tx, p.OrganizationID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
}

package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/oauth"
)

type createOAuthClientInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		AuthMethod string         `json:"authMethod" enum:"client_secret_basic,client_secret_post,private_key_jwt" doc:"How the client authenticates at the token endpoint; it may use no other."`
		LoA        int            `json:"loa" minimum:"1" maximum:"4" doc:"Level of assurance of the client's tokens: at most 2 for a client secret, 3 for private_key_jwt."`
		Scopes     []string       `json:"scopes" maxItems:"64" doc:"The scopes the client may request."`
		JWKS       map[string]any `json:"jwks,omitempty" doc:"private_key_jwt only: a JWK Set ({\"keys\": [...]}) of 1 to 5 public keys, each with a kid: Ed25519 (OKP), P-256 (EC) or RSA of at least 2048 bits with alg RS256 or PS256."`
	}
}

type oauthClientCreatedOutput struct {
	Body oauth.Created
}

type oauthClientsOutput struct {
	Body struct {
		Items []oauth.Client `json:"items"`
	}
}

type oauthClientIDPath struct {
	ClientID string `path:"clientId" maxLength:"64"`
}

type oauthClientOutput struct {
	Body oauth.Client
}

func (s *Server) oauth() oauth.Server {
	return oauth.Server{Pool: s.Pool, Tokens: s.tokens(), Log: s.Log, Now: s.Now}
}

// registerOAuth serves the OAuth 2.0 authorization server and the
// management of agents' OAuth clients. The authorization server's
// endpoints are plain handlers, not huma operations: OAuth clients send
// form-encoded requests and expect OAuth error JSON (RFC 6749 §5.2), not
// problem+json.
func (s *Server) registerOAuth(r chi.Router) {
	r.HandleFunc(oauth.TokenPath, func(w http.ResponseWriter, req *http.Request) { s.oauth().Token(w, req) })
	r.HandleFunc(oauth.IntrospectPath, func(w http.ResponseWriter, req *http.Request) { s.oauth().Introspect(w, req) })
	r.HandleFunc(oauth.RevokePath, func(w http.ResponseWriter, req *http.Request) { s.oauth().Revoke(w, req) })
	r.Get(oauth.MetadataPath, func(w http.ResponseWriter, req *http.Request) { s.oauth().ServeMetadata(w, req) })
	r.Get(oauth.JWKSPath, func(w http.ResponseWriter, req *http.Request) { s.oauth().ServeJWKS(w, req) })

	tags := []string{"OAuth clients"}
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "create-oauth-client", Method: http.MethodPost, Path: "/api/v1/agents/{id}/oauth-clients",
		Summary:     "Create an OAuth client for an agent",
		Description: "The agent then gets gateway tokens at POST /oauth2/token with the client_credentials grant. A client_secret_* client's secret is in this response only; a private_key_jwt client registers public keys instead.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *createOAuthClientInput) (*oauthClientCreatedOutput, error) {
		p := principal(ctx)
		nc := oauth.NewClient{AuthMethod: in.Body.AuthMethod, LoA: in.Body.LoA, Scopes: in.Body.Scopes}
		if in.Body.JWKS != nil {
			raw, err := json.Marshal(in.Body.JWKS)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			nc.JWKS = raw
		}
		var out oauthClientCreatedOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = oauth.CreateClient(ctx, tx, p.OrganizationID, in.ID, nc, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-oauth-clients", Method: http.MethodGet, Path: "/api/v1/agents/{id}/oauth-clients",
		Summary: "List an agent's OAuth clients", Description: "Revoked clients included; secrets are never shown again.",
		Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*oauthClientsOutput, error) {
		var out oauthClientsOutput
		var err error
		out.Body.Items, err = oauth.ListClients(ctx, s.Pool, principal(ctx).OrganizationID, in.ID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "revoke-oauth-client", Method: http.MethodDelete, Path: "/api/v1/oauth-clients/{clientId}",
		Summary:     "Revoke an OAuth client",
		Description: "The client can no longer authenticate, and the live tokens issued to it are revoked. Revoking a revoked client changes nothing.",
		Tags:        tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *oauthClientIDPath) (*oauthClientOutput, error) {
		p := principal(ctx)
		var out oauthClientOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = oauth.RevokeClient(ctx, tx, p.OrganizationID, in.ClientID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
}

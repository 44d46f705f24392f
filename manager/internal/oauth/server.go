package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/tokens"
	sharedtoken "github.com/knaight/knaight/shared/token"
)

// MaxBodyBytes bounds the body of a request to an OAuth endpoint.
const MaxBodyBytes = 64 << 10

// maxTokenBytes bounds the token parameter of introspection and
// revocation: anything longer is no gateway token, and is inactive.
const maxTokenBytes = 8192

// Server serves the authorization server's endpoints. Its issuer is
// Tokens.Issuer, the manager's public base URL.
type Server struct {
	Pool   *pgxpool.Pool
	Tokens tokens.Service
	Log    *slog.Logger
	Now    func() time.Time
}

func (s Server) issuer() string { return s.Tokens.Issuer }

// clientActor is how the ledger names a client, as actor and as issuer.
func clientActor(clientID string) string { return "client:" + clientID }

// TokenResponse is a successful token response (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// Token serves POST /oauth2/token: the client_credentials grant.
func (s Server) Token(w http.ResponseWriter, r *http.Request) {
	resp, err := s.token(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noStore(w)
	writeJSON(w, http.StatusOK, resp)
}

func (s Server) token(w http.ResponseWriter, r *http.Request) (TokenResponse, error) {
	ctx := r.Context()
	form, err := readForm(w, r)
	if err != nil {
		return TokenResponse{}, err
	}
	// The grant type is checked before authentication, which may consume
	// a single-use assertion.
	switch gt := form.Get("grant_type"); {
	case gt == "":
		return TokenResponse{}, errorf(ErrInvalidRequest, "grant_type is required")
	case gt != GrantClientCredentials:
		return TokenResponse{}, errorf(ErrUnsupportedGrantType, "the only grant type is client_credentials")
	}
	client, err := s.authenticate(ctx, r, form, s.issuer()+TokenPath)
	if err != nil {
		return TokenResponse{}, err
	}
	scopes, err := requestedScopes(client.Client, form.Get("scope"))
	if err != nil {
		return TokenResponse{}, err
	}
	aud, err := s.audience(ctx, client.OrganizationID, form["resource"])
	if err != nil {
		return TokenResponse{}, err
	}
	now := s.Now()
	actor := clientActor(client.ClientID)
	var issued tokens.Issued
	err = db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		// Holding the client while issuing orders this with a concurrent
		// revocation: either it came first and is seen here, or it waits
		// and revokes this token with the client's others.
		rec, err := getClient(ctx, tx, client.ClientID, "FOR SHARE")
		if err != nil {
			return err
		}
		if rec.RevokedAt != nil {
			return unauthenticated("client %s was revoked during the request", client.ClientID)
		}
		issued, err = s.Tokens.Issue(ctx, tx, client.OrganizationID, tokens.IssueRequest{
			AgentID: client.AgentID, Audience: aud, Scopes: scopes, LoA: client.LoA, IssuerID: actor, ClientID: client.ClientID,
		}, actor, now)
		return err
	})
	if errors.Is(err, fault.ErrConflict) {
		return TokenResponse{}, s.agentNotActive(ctx, client.Client)
	}
	if inv, ok := fault.AsInvalid(err); ok {
		// Only a change of the token settings between the checks above and
		// the transaction gets here.
		return TokenResponse{}, errorf(ErrInvalidRequest, "%s", inv.Error())
	}
	if err != nil {
		return TokenResponse{}, err
	}
	return TokenResponse{
		AccessToken: issued.Token, TokenType: "Bearer", ExpiresIn: int(issued.ExpiresAt.Sub(issued.IssuedAt).Seconds()),
		Scope: strings.Join(issued.Scopes, " "),
	}, nil
}

// agentNotActive is the invalid_grant of a client whose agent's ANS
// registration does not serve.
func (s Server) agentNotActive(ctx context.Context, c Client) error {
	status := "not ACTIVE"
	if a, err := agents.Get(ctx, s.Pool, c.OrganizationID, c.AgentID); err == nil {
		status = string(a.ANS.Status)
	}
	return errorf(ErrInvalidGrant, "the client's agent may not get tokens: its ANS registration is %s, not ACTIVE", status)
}

// requestedScopes returns the scopes of a token request: a subset of the
// client's, all of them when scope is empty (RFC 6749 §3.3 lets the server
// choose a default).
func requestedScopes(c Client, scope string) ([]string, error) {
	if strings.Trim(scope, " ") == "" {
		return slices.Clone(c.Scopes), nil
	}
	var out, refused []string
	for _, s := range strings.Split(scope, " ") {
		switch {
		case s == "" || slices.Contains(out, s) || slices.Contains(refused, s):
		case slices.Contains(c.Scopes, s):
			out = append(out, s)
		default:
			refused = append(refused, s)
		}
	}
	if len(refused) > 0 {
		return nil, errorf(ErrInvalidScope, "not granted to this client: %s", strings.Join(refused, " "))
	}
	return out, nil
}

// audience returns the token audience for the request's resource
// parameters (RFC 8707): one of the organization's token audiences, the
// first one when none is named.
func (s Server) audience(ctx context.Context, org uuid.UUID, resources []string) (string, error) {
	if len(resources) > 1 {
		return "", errorf(ErrInvalidTarget, "a token is for one resource: send one resource parameter")
	}
	settings, err := tokens.GetSettings(ctx, s.Pool, org)
	if err != nil {
		return "", err
	}
	if len(resources) == 1 {
		if !slices.Contains(settings.Audiences, resources[0]) {
			return "", errorf(ErrInvalidTarget, "resource %q is not one of the organization's token audiences", resources[0])
		}
		return resources[0], nil
	}
	if len(settings.Audiences) == 0 {
		return "", errorf(ErrInvalidTarget, "no resource was named and the organization has no default: an administrator must configure audiences in the token settings")
	}
	return settings.Audiences[0], nil
}

// Introspect serves POST /oauth2/introspect (RFC 7662). The caller is an
// OAuth client or an admin API key (Authorization: Bearer knk_...), and
// sees only its organization's tokens: any other token, like an unknown,
// expired or revoked one, is {"active":false} and nothing more.
func (s Server) Introspect(w http.ResponseWriter, r *http.Request) {
	resp, err := s.introspect(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noStore(w)
	writeJSON(w, http.StatusOK, resp)
}

func (s Server) introspect(w http.ResponseWriter, r *http.Request) (tokens.Introspection, error) {
	ctx := r.Context()
	form, err := readForm(w, r)
	if err != nil {
		return tokens.Introspection{}, err
	}
	org, err := s.introspector(ctx, r, form)
	if err != nil {
		return tokens.Introspection{}, err
	}
	token := form.Get("token")
	switch {
	case token == "":
		return tokens.Introspection{}, errorf(ErrInvalidRequest, "token is required")
	case len(token) > maxTokenBytes:
		return tokens.Introspection{Active: false}, nil
	}
	// token_type_hint is ignored: gateway tokens are the only kind.
	return s.Tokens.Introspect(ctx, s.Pool, token, &org, s.Now())
}

// introspector authenticates the caller of the introspection endpoint and
// returns its organization.
func (s Server) introspector(ctx context.Context, r *http.Request, form url.Values) (uuid.UUID, error) {
	key, ok := sharedtoken.Bearer(r.Header.Get("Authorization"))
	if !ok {
		client, err := s.authenticate(ctx, r, form, s.issuer()+IntrospectPath)
		return client.OrganizationID, err
	}
	if form.Has("client_secret") || form.Has("client_assertion") || form.Has("client_assertion_type") {
		return uuid.Nil, errorf(ErrInvalidRequest, "use exactly one authentication method, not an API key and client credentials")
	}
	p, err := auth.Authenticate(ctx, s.Pool, key)
	if errors.Is(err, fault.ErrUnauthenticated) {
		return uuid.Nil, errorf(ErrInvalidToken, "the API key is unknown or revoked")
	}
	if err != nil {
		return uuid.Nil, err
	}
	// The same permission as POST /api/v1/enforcement/tokens/introspect.
	if !p.Role.Allows(auth.Read) {
		return uuid.Nil, &Error{Code: "insufficient_scope", Description: "the API key's role may not introspect tokens", status: http.StatusForbidden}
	}
	return p.OrganizationID, nil
}

// Revoke serves POST /oauth2/revoke (RFC 7009). A client revokes tokens
// issued to it. A token that is already invalid (unknown, expired,
// revoked, or another organization's) is answered 200 too: there is
// nothing left to revoke, and the client could do nothing with an error.
func (s Server) Revoke(w http.ResponseWriter, r *http.Request) {
	if err := s.revoke(w, r); err != nil {
		s.writeError(w, r, err)
		return
	}
	noStore(w)
	w.WriteHeader(http.StatusOK)
}

func (s Server) revoke(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := readForm(w, r)
	if err != nil {
		return err
	}
	client, err := s.authenticate(ctx, r, form, s.issuer()+RevokePath)
	if err != nil {
		return err
	}
	token := form.Get("token")
	switch {
	case token == "":
		return errorf(ErrInvalidRequest, "token is required")
	case len(token) > maxTokenBytes:
		return nil
	}
	// token_type_hint is ignored: there are only access tokens, and RFC
	// 7009 §2.1 lets the server look beyond the hint anyway.
	now := s.Now()
	_, rec, err := s.Tokens.Verify(ctx, s.Pool, token, "", now)
	switch {
	case errors.Is(err, tokens.ErrInvalidToken):
		return nil
	case err != nil:
		return err
	case rec.OrganizationID != client.OrganizationID:
		return nil
	case rec.ClientID != client.ClientID:
		return errorf(ErrUnauthorizedClient, "the token was not issued to this client")
	}
	return db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		_, err := tokens.Revoke(ctx, tx, rec.OrganizationID, rec.JTI, "revoked by client", clientActor(client.ClientID), now)
		return err
	})
}

// Metadata is the authorization server's metadata (RFC 8414). It has no
// scopes_supported: scopes are given per client, not server-wide.
type Metadata struct {
	Issuer                               string   `json:"issuer"`
	TokenEndpoint                        string   `json:"token_endpoint"`
	JWKSURI                              string   `json:"jwks_uri"`
	IntrospectionEndpoint                string   `json:"introspection_endpoint"`
	RevocationEndpoint                   string   `json:"revocation_endpoint"`
	GrantTypesSupported                  []string `json:"grant_types_supported"`
	TokenEndpointAuthMethods             []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs         []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethods     []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthSigningAlgs []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthMethods        []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthSigningAlgs    []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	// ResponseTypesSupported is required by RFC 8414, but response types
	// belong to the authorization endpoint, which this server has none of:
	// with client_credentials only, no user is ever redirected. So it is
	// present and empty.
	ResponseTypesSupported []string `json:"response_types_supported"`
}

// Metadata returns the metadata document, with every URL under the issuer.
func (s Server) Metadata() Metadata {
	iss := s.issuer()
	return Metadata{
		Issuer: iss, TokenEndpoint: iss + TokenPath, JWKSURI: iss + JWKSPath,
		IntrospectionEndpoint: iss + IntrospectPath, RevocationEndpoint: iss + RevokePath,
		GrantTypesSupported:                  []string{GrantClientCredentials},
		TokenEndpointAuthMethods:             AuthMethods(),
		TokenEndpointAuthSigningAlgs:         AssertionAlgorithms(),
		IntrospectionEndpointAuthMethods:     AuthMethods(),
		IntrospectionEndpointAuthSigningAlgs: AssertionAlgorithms(),
		RevocationEndpointAuthMethods:        AuthMethods(),
		RevocationEndpointAuthSigningAlgs:    AssertionAlgorithms(),
		ResponseTypesSupported:               []string{},
	}
}

// ServeMetadata serves GET /.well-known/oauth-authorization-server.
func (s Server) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.Metadata())
}

// JWKSCacheSeconds is how long the JWKS may be cached. It is short so that
// a rotated key reaches verifiers quickly; verifiers that meet an unknown
// kid should refetch anyway.
const JWKSCacheSeconds = 60

// ServeJWKS serves GET /.well-known/jwks.json: the public keys of every
// organization's EdDSA signing keys that still verify a token.
func (s Server) ServeJWKS(w http.ResponseWriter, r *http.Request) {
	keys, err := tokens.JWKS(r.Context(), s.Pool, s.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if keys == nil {
		keys = []tokens.JWK{}
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(JWKSCacheSeconds))
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// readForm reads the parameters of an OAuth request: a POST whose body is
// application/x-www-form-urlencoded, at most MaxBodyBytes, with no
// parameter repeated (RFC 6749 §3.2) except resource, which RFC 8707
// allows to repeat. Parameters in the URL are refused: a client secret
// there would end up in access logs.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &Error{Code: ErrInvalidRequest.Code, Description: "use POST", status: http.StatusMethodNotAllowed}
	}
	if r.URL.RawQuery != "" {
		return nil, errorf(ErrInvalidRequest, "parameters belong in the request body, not the URL")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errorf(ErrInvalidRequest, "the body must be application/x-www-form-urlencoded")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &Error{Code: ErrInvalidRequest.Code, Description: "the body is larger than 64 KiB", status: http.StatusRequestEntityTooLarge}
	}
	if err != nil {
		return nil, errorf(ErrInvalidRequest, "the body could not be read")
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, errorf(ErrInvalidRequest, "the body is not valid form encoding")
	}
	for name, values := range form {
		if len(values) > 1 && name != "resource" {
			return nil, errorf(ErrInvalidRequest, "parameter %q is repeated", name)
		}
	}
	return form, nil
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// writeError answers an error as RFC 6749 §5.2 JSON. Errors that are not
// OAuth errors are logged and answered as a bare server_error.
func (s Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	e, ok := asError(err)
	if !ok {
		if !errors.Is(err, context.Canceled) {
			s.Log.ErrorContext(ctx, "oauth request failed", "path", r.URL.Path, "err", err)
		}
		e = &Error{Code: "server_error", Description: "internal error", status: http.StatusInternalServerError}
	}
	if e.reason != "" {
		s.Log.InfoContext(ctx, "oauth client authentication failed", "path", r.URL.Path, "reason", e.reason)
	}
	switch e.Code {
	case ErrInvalidClient.Code:
		// RFC 7235: a 401 names the scheme that would work.
		w.Header().Set("WWW-Authenticate", `Basic realm="knaight"`)
	case ErrInvalidToken.Code:
		w.Header().Set("WWW-Authenticate", `Bearer realm="knaight", error="invalid_token"`)
	}
	noStore(w)
	writeJSON(w, e.Status(), errorBody{Error: e.Code, Description: e.Description})
}

// noStore keeps responses that carry tokens, or speak about them, out of
// caches (RFC 6749 §5.1).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// writeJSON writes v as the whole body, byte for byte what json.Marshal
// gives: an inactive introspection is exactly {"active":false}.
func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		// Every value written here is a plain struct or map of strings.
		panic("oauth: encode response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(raw)
}

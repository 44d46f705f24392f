// Package oauth is the manager as an OAuth 2.0 authorization server for
// agents as machine clients. An agent gets OAuth clients bound to it; a
// client authenticates with a secret (client_secret_basic or _post) or with
// a JWT signed by one of its registered keys (private_key_jwt, RFC 7523),
// and gets gateway tokens with the client_credentials grant, for one
// protected MCP resource (RFC 8707). The package also serves token
// introspection (RFC 7662), revocation (RFC 7009), the server's metadata
// (RFC 8414) and the JWKS that verifies the tokens. Its endpoints speak the
// OAuth wire format (form-encoded requests, RFC 6749 §5.2 error JSON), not
// the management API's problem+json.
package oauth

import (
	"errors"
	"fmt"
	"net/http"
)

// Client authentication methods, named as in RFC 7591.
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
	PrivateKeyJWT     = "private_key_jwt"
)

// AuthMethods lists the client authentication methods, in the order the
// metadata advertises them.
func AuthMethods() []string { return []string{ClientSecretBasic, ClientSecretPost, PrivateKeyJWT} }

// GrantClientCredentials is the only grant type: agents are machine
// clients, with no user to redirect.
const GrantClientCredentials = "client_credentials"

// AssertionType is the client_assertion_type of private_key_jwt (RFC 7523
// §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Endpoint paths, relative to the issuer.
const (
	TokenPath      = "/oauth2/token"
	IntrospectPath = "/oauth2/introspect"
	RevokePath     = "/oauth2/revoke"
	MetadataPath   = "/.well-known/oauth-authorization-server"
	JWKSPath       = "/.well-known/jwks.json"
)

// Error is an OAuth error response (RFC 6749 §5.2). The sentinels below
// carry only a code; errors returned to handlers carry a description for the
// client too, which never holds a secret.
type Error struct {
	Code        string
	Description string
	// status overrides the code's HTTP status (405, 413).
	status int
	// reason says why client authentication failed, for the log only: the
	// client is told no more than invalid_client.
	reason string
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Is makes errors.Is(err, ErrInvalidClient) true for every invalid_client
// error, whatever its description.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Description == "" && t.Code == e.Code
}

// Status is the HTTP status the error is answered with.
func (e *Error) Status() int {
	switch {
	case e.status != 0:
		return e.status
	case e.Code == ErrInvalidClient.Code, e.Code == ErrInvalidToken.Code:
		return http.StatusUnauthorized
	}
	return http.StatusBadRequest
}

var (
	// ErrInvalidRequest means the request is malformed: wrong method or
	// content type, a missing or repeated parameter, or two client
	// authentication methods at once. Callers answer 400; the client must
	// fix its request.
	ErrInvalidRequest = &Error{Code: "invalid_request"}
	// ErrInvalidClient means client authentication failed: no or an
	// unsupported authentication, an unknown or revoked client, a wrong
	// secret, a method other than the client's, or a bad assertion. Callers
	// answer 401 with a challenge and do not say which part was wrong.
	ErrInvalidClient = &Error{Code: "invalid_client"}
	// ErrInvalidGrant means the client is fine but its agent may not get
	// tokens now (its ANS registration is not ACTIVE). Callers answer 400.
	ErrInvalidGrant = &Error{Code: "invalid_grant"}
	// ErrUnauthorizedClient means the authenticated client may not do this,
	// such as revoking a token issued to another client. Callers answer 400.
	ErrUnauthorizedClient = &Error{Code: "unauthorized_client"}
	// ErrUnsupportedGrantType means a grant type other than
	// client_credentials. Callers answer 400.
	ErrUnsupportedGrantType = &Error{Code: "unsupported_grant_type"}
	// ErrInvalidScope means a requested scope the client was not given.
	// Callers answer 400.
	ErrInvalidScope = &Error{Code: "invalid_scope"}
	// ErrInvalidTarget means the resource (RFC 8707) is not one of the
	// organization's token audiences, is repeated, or there is no default.
	// Callers answer 400.
	ErrInvalidTarget = &Error{Code: "invalid_target"}
	// ErrInvalidToken means the bearer API key presented to the
	// introspection endpoint is unknown or revoked (RFC 6750 §3.1). Callers
	// answer 401 with a Bearer challenge.
	ErrInvalidToken = &Error{Code: "invalid_token"}
)

// errorf returns an error of kind with a description for the client.
func errorf(kind *Error, format string, args ...any) *Error {
	return &Error{Code: kind.Code, Description: fmt.Sprintf(format, args...)}
}

// unauthenticated is invalid_client with the reason kept for the log.
func unauthenticated(format string, args ...any) *Error {
	return &Error{Code: ErrInvalidClient.Code, Description: "client authentication failed", reason: fmt.Sprintf(format, args...)}
}

// asError returns the OAuth error inside err, if any.
func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

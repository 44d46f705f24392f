package api_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	oauthResource = "https://mcp.example.com/mcp"
	oauthOther    = "https://other.example.com/mcp"
)

// newOAuthEnv is a manager whose organization has token audiences, with
// one ACTIVE agent; it returns the agent's id and ANS name.
func newOAuthEnv(t *testing.T) (e *env, agent, ansName string) {
	t.Helper()
	e = newEnv(t)
	e.must(200, "PUT", "/api/v1/enforcement/token-settings", e.admin, map[string]any{
		"algorithm": "EdDSA", "defaultTtlSeconds": 900, "maxTtlSeconds": 3600, "audiences": []string{oauthResource, oauthOther},
	})
	reg := e.registerAgent("oauth-bot", e.templateID("r"), "staging")
	return e, reg.str("id"), reg.str("ans.name")
}

// oauthClient creates an OAuth client for agent and returns its id and
// secret ("" for private_key_jwt).
func (e *env) oauthClient(agent string, body map[string]any) (id, secret string) {
	e.t.Helper()
	r := e.must(201, "POST", "/api/v1/agents/"+agent+"/oauth-clients", e.admin, body)
	return r.str("clientId"), r.str("clientSecret")
}

// oauthPost sends a form to an OAuth endpoint, with header set on the request.
func (e *env) oauthPost(path string, form url.Values, header map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), "POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return e.oauthSend(req)
}

func (e *env) oauthSend(req *http.Request) response {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.bodies.Write(raw)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			e.t.Fatalf("%s %s: response is not JSON: %v\n%s", req.Method, req.URL.Path, err, raw)
		}
	}
	return r
}

func oauthBasic(id, secret string) map[string]string {
	// RFC 6749 §2.3.1: form-urlencoded, then Basic.
	raw := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(raw))}
}

// oauthError checks an OAuth error response (RFC 6749 §5.2).
func oauthError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.Status != status || r.Body["error"] != code {
		t.Fatalf("status %d error %v, want %d %s\n%s", r.Status, r.Body["error"], status, code, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	for k := range r.Body {
		if k != "error" && k != "error_description" {
			t.Fatalf("unexpected member %q in %s", k, r.Raw)
		}
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("error response may be cached: %v", r.Header)
	}
	if status == 401 && r.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without a challenge")
	}
}

func oauthRetrieveError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != code {
		t.Fatalf("err %v, want OAuth error %s", err, code)
	}
}

// oauthTokenClaims are the claims a test checks in a gateway token.
type oauthTokenClaims struct {
	jwt.RegisteredClaims
	Scope    string `json:"scope"`
	LoA      int    `json:"loa"`
	ClientID string `json:"client_id"`
	AgentID  string `json:"agent_id"`
}

// oauthVerify verifies a gateway token as a resource server would: with
// the key the published JWKS has for its kid.
func (e *env) oauthVerify(token, audience string) (oauthTokenClaims, *jwt.Token) {
	e.t.Helper()
	r := e.must(200, "GET", "/.well-known/jwks.json", "", nil)
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=60") {
		e.t.Fatalf("JWKS Cache-Control %q", cc)
	}
	var claims oauthTokenClaims
	tok, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		for _, k := range r.Body["keys"].([]any) {
			jwk := k.(map[string]any)
			if jwk["kid"] == t.Header["kid"] && jwk["kty"] == "OKP" && jwk["crv"] == "Ed25519" {
				x, err := base64.RawURLEncoding.DecodeString(jwk["x"].(string))
				return ed25519.PublicKey(x), err
			}
		}
		return nil, errors.New("kid not in the JWKS")
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(e.api.Issuer), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(e.clock.Now))
	if err != nil {
		e.t.Fatalf("token does not verify with the JWKS: %v", err)
	}
	return claims, tok
}

func TestOAuthClientCredentialsWithSecrets(t *testing.T) {
	e, agent, ansName := newOAuthEnv(t)
	tests := []struct {
		method string
		style  oauth2.AuthStyle
	}{
		{"client_secret_basic", oauth2.AuthStyleInHeader},
		{"client_secret_post", oauth2.AuthStyleInParams},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			e.t = t
			id, secret := e.oauthClient(agent, map[string]any{"authMethod": tc.method, "loa": 2, "scopes": []string{"mcp:read", "mcp:write"}})
			cfg := clientcredentials.Config{
				ClientID: id, ClientSecret: secret, TokenURL: e.srv.URL + "/oauth2/token", Scopes: []string{"mcp:read"},
				EndpointParams: url.Values{"resource": {oauthOther}}, AuthStyle: tc.style,
			}
			tok, err := cfg.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || tok.Extra("scope") != "mcp:read" || tok.Expiry.IsZero() {
				t.Fatalf("token response %+v scope %v", tok, tok.Extra("scope"))
			}
			claims, parsed := e.oauthVerify(tok.AccessToken, oauthOther)
			if parsed.Header["typ"] != "at+jwt" {
				t.Errorf("typ %v", parsed.Header["typ"])
			}
			if claims.Subject != ansName || claims.Scope != "mcp:read" || claims.LoA != 2 || claims.ClientID != id || claims.AgentID != agent ||
				len(claims.Audience) != 1 || claims.Audience[0] != oauthOther {
				t.Fatalf("claims %+v", claims)
			}
			if exp := claims.ExpiresAt.Sub(claims.IssuedAt.Time); exp != 15*time.Minute {
				t.Errorf("lifetime %s", exp)
			}

			// Without scope and resource: every scope of the client, the
			// organization's first audience.
			cfg.Scopes, cfg.EndpointParams = nil, nil
			tok, err = cfg.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if claims, _ := e.oauthVerify(tok.AccessToken, oauthResource); claims.Scope != "mcp:read mcp:write" {
				t.Fatalf("default scope %q", claims.Scope)
			}

			// A client uses its own method and no other.
			if tc.style == oauth2.AuthStyleInHeader {
				cfg.AuthStyle = oauth2.AuthStyleInParams
			} else {
				cfg.AuthStyle = oauth2.AuthStyleInHeader
			}
			_, err = cfg.Token(t.Context())
			oauthRetrieveError(t, err, "invalid_client")
		})
	}
	e.t = t

	// The issuing is on the record, as the client, without the token.
	ev := e.must(200, "GET", "/api/v1/audit?type=TOKEN_ISSUED", e.admin, nil).Body["items"].([]any)
	if len(ev) != 4 || !strings.HasPrefix(ev[0].(map[string]any)["actor"].(string), "client:kc_") {
		t.Fatalf("TOKEN_ISSUED events: %v", ev)
	}
}

// assertion signs a client assertion for clientID at now; edit changes
// its claims before signing.
func oauthAssertion(t *testing.T, method jwt.SigningMethod, key crypto.PrivateKey, kid, clientID, aud string, now time.Time, edit func(jwt.MapClaims)) string {
	t.Helper()
	claims := jwt.MapClaims{
		"iss": clientID, "sub": clientID, "aud": aud, "jti": rand.Text(),
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
	}
	if edit != nil {
		edit(claims)
	}
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func oauthB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestOAuthPrivateKeyJWT(t *testing.T) {
	e, agent, _ := newOAuthEnv(t)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecRaw, err := ecKey.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	id, secret := e.oauthClient(agent, map[string]any{"authMethod": "private_key_jwt", "loa": 3, "scopes": []string{"mcp:read"}, "jwks": map[string]any{"keys": []any{
		map[string]any{"kty": "OKP", "crv": "Ed25519", "x": oauthB64(edPub), "kid": "ed-1"},
		map[string]any{"kty": "EC", "crv": "P-256", "x": oauthB64(ecRaw[1:33]), "y": oauthB64(ecRaw[33:]), "kid": "ec-1"},
		map[string]any{"kty": "RSA", "n": oauthB64(rsaKey.N.Bytes()), "e": oauthB64(big.NewInt(int64(rsaKey.E)).Bytes()), "alg": "PS256", "kid": "rsa-1"},
	}}})
	if secret != "" {
		t.Fatal("a private_key_jwt client got a secret")
	}
	tokenURL := e.srv.URL + "/oauth2/token"

	// Through the clientcredentials library: the assertion rides in the
	// endpoint parameters, client_id in the body.
	a := oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, e.clock.Now(), nil)
	cfg := clientcredentials.Config{ClientID: id, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams, EndpointParams: url.Values{
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}, "resource": {oauthResource},
	}}
	tok, err := cfg.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if claims, _ := e.oauthVerify(tok.AccessToken, oauthResource); claims.LoA != 3 || claims.ClientID != id || claims.Scope != "mcp:read" {
		t.Fatalf("claims %+v", claims)
	}
	// The same assertion again is a replay.
	_, err = cfg.Token(t.Context())
	oauthRetrieveError(t, err, "invalid_client")

	grant := func(a string) response {
		t.Helper()
		return e.oauthPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}, nil)
	}
	now := e.clock.Now()
	ok := []struct {
		name string
		a    string
	}{
		{"ES256 without kid", oauthAssertion(t, jwt.SigningMethodES256, ecKey, "", id, tokenURL, now, nil)},
		{"PS256 naming its kid", oauthAssertion(t, jwt.SigningMethodPS256, rsaKey, "rsa-1", id, tokenURL, now, nil)},
		{"the issuer as audience", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, e.api.Issuer, now, nil)},
		{"audience array", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, "", now, func(c jwt.MapClaims) { c["aud"] = []string{"https://x.example", tokenURL} })},
		{"slightly fast clock", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now.Add(10*time.Second), nil)},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			if r := grant(tc.a); r.Status != 200 || r.str("access_token") == "" || r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Pragma") != "no-cache" {
				t.Fatalf("status %d %v\n%s", r.Status, r.Header, r.Raw)
			}
		})
	}
	e.t = t

	otherEd := func() ed25519.PrivateKey { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }()
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": id, "sub": id, "aud": tokenURL, "jti": "hs", "exp": now.Add(time.Minute).Unix()})
	hs.Header["kid"] = "ed-1"
	hsToken, _ := hs.SignedString([]byte(oauthB64(edPub))) // the public key as an HMAC secret
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": id, "sub": id, "aud": tokenURL, "jti": "none", "exp": now.Add(time.Minute).Unix()})
	none.Header["kid"] = "ed-1"
	noneToken, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	bad := []struct {
		name string
		a    string
	}{
		{"wrong audience", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, "https://evil.example/oauth2/token", now, nil)},
		{"no audience", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, "", now, func(c jwt.MapClaims) { delete(c, "aud") })},
		{"unregistered key under a registered kid", oauthAssertion(t, jwt.SigningMethodEdDSA, otherEd, "ed-1", id, tokenURL, now, nil)},
		{"unregistered key without kid", oauthAssertion(t, jwt.SigningMethodEdDSA, otherEd, "", id, tokenURL, now, nil)},
		{"unknown kid", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-9", id, tokenURL, now, nil)},
		{"alg none", noneToken},
		{"HS256 keyed with the public key", hsToken},
		{"RS256 with a PS256 key", oauthAssertion(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", id, tokenURL, now, nil)},
		{"ES256 key named for EdDSA", oauthAssertion(t, jwt.SigningMethodES256, ecKey, "ed-1", id, tokenURL, now, nil)},
		{"expired", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now.Add(-10*time.Minute), nil)},
		{"no exp", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now, func(c jwt.MapClaims) { delete(c, "exp") })},
		{"exp too far ahead", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now, func(c jwt.MapClaims) { c["exp"] = now.Add(time.Hour).Unix() })},
		{"not yet valid", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now, func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Minute).Unix() })},
		{"issued in the future", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now, func(c jwt.MapClaims) { c["iat"] = now.Add(2 * time.Minute).Unix() })},
		{"no jti", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now, func(c jwt.MapClaims) { delete(c, "jti") })},
		{"iss is not sub", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now, func(c jwt.MapClaims) { c["iss"] = "kc_aaaaaaaaaaaaaaaa" })},
		{"unknown client", oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", "kc_aaaaaaaaaaaaaaaa", tokenURL, now, nil)},
		{"not a JWT", "not.a.jwt"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			oauthError(t, grant(tc.a), 401, "invalid_client")
		})
	}
	e.t = t

	// client_id, when sent, must be the assertion's.
	r := e.oauthPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"kc_aaaaaaaaaaaaaaaa"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now, nil)}}, nil)
	oauthError(t, r, 400, "invalid_request")
	r = e.oauthPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
		"client_assertion": {oauthAssertion(t, jwt.SigningMethodEdDSA, edKey, "ed-1", id, tokenURL, now, nil)}}, nil)
	oauthError(t, r, 400, "invalid_request")

	// A private_key_jwt client has no secret to present.
	r = e.oauthPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {"guess"}}, nil)
	oauthError(t, r, 401, "invalid_client")
	// Nothing about why reaches the client; the log says.
	if strings.Contains(string(r.Raw), "private_key_jwt") || !strings.Contains(e.logs.String(), "registered for private_key_jwt") {
		t.Fatalf("failure reason: %s", r.Raw)
	}
}

func TestOAuthTokenErrors(t *testing.T) {
	e, agent, _ := newOAuthEnv(t)
	scopes := []string{"mcp:read", "mcp:write"}
	basicID, basicSecret := e.oauthClient(agent, map[string]any{"authMethod": "client_secret_basic", "loa": 1, "scopes": scopes})
	postID, postSecret := e.oauthClient(agent, map[string]any{"authMethod": "client_secret_post", "loa": 1, "scopes": scopes})
	revokedID, revokedSecret := e.oauthClient(agent, map[string]any{"authMethod": "client_secret_basic", "loa": 1, "scopes": scopes})
	e.must(200, "DELETE", "/api/v1/oauth-clients/"+revokedID, e.admin, nil)
	created := len(e.bodies.String())

	cc := url.Values{"grant_type": {"client_credentials"}}
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name   string
		form   url.Values
		header map[string]string
		status int
		code   string
	}{
		{"no grant_type", url.Values{}, oauthBasic(basicID, basicSecret), 400, "invalid_request"},
		{"password grant", form("grant_type", "password", "username", "u", "password", "p"), oauthBasic(basicID, basicSecret), 400, "unsupported_grant_type"},
		{"authorization code grant", form("grant_type", "authorization_code", "code", "c"), oauthBasic(basicID, basicSecret), 400, "unsupported_grant_type"},
		{"wrong secret", cc, oauthBasic(basicID, "wrong"), 401, "invalid_client"},
		{"empty secret", cc, oauthBasic(basicID, ""), 401, "invalid_client"},
		{"unknown client", cc, oauthBasic("kc_aaaaaaaaaaaaaaaa", basicSecret), 401, "invalid_client"},
		{"malformed client id", cc, oauthBasic("admin' --", basicSecret), 401, "invalid_client"},
		{"revoked client", cc, oauthBasic(revokedID, revokedSecret), 401, "invalid_client"},
		{"no client authentication", cc, nil, 401, "invalid_client"},
		{"bearer at the token endpoint", cc, map[string]string{"Authorization": "Bearer " + e.admin}, 401, "invalid_client"},
		{"post client with Basic", cc, oauthBasic(postID, postSecret), 401, "invalid_client"},
		{"basic client with client_secret_post", form("grant_type", "client_credentials", "client_id", basicID, "client_secret", basicSecret), nil, 401, "invalid_client"},
		{"client_secret without client_id", form("grant_type", "client_credentials", "client_secret", postSecret), nil, 400, "invalid_request"},
		{"Basic and client_secret_post at once", form("grant_type", "client_credentials", "client_id", basicID, "client_secret", basicSecret), oauthBasic(basicID, basicSecret), 400, "invalid_request"},
		{"Basic and a client assertion at once", form("grant_type", "client_credentials", "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", "x.y.z"), oauthBasic(basicID, basicSecret), 400, "invalid_request"},
		{"client_id other than Basic's", form("grant_type", "client_credentials", "client_id", postID), oauthBasic(basicID, basicSecret), 400, "invalid_request"},
		{"scope outside the client's", form("grant_type", "client_credentials", "scope", "mcp:read mcp:admin"), oauthBasic(basicID, basicSecret), 400, "invalid_scope"},
		{"resource not an audience", form("grant_type", "client_credentials", "resource", "https://evil.example.com/mcp"), oauthBasic(basicID, basicSecret), 400, "invalid_target"},
		{"resource with a fragment", form("grant_type", "client_credentials", "resource", oauthResource+"#x"), oauthBasic(basicID, basicSecret), 400, "invalid_target"},
		{"two resources", form("grant_type", "client_credentials", "resource", oauthResource, "resource", oauthOther), oauthBasic(basicID, basicSecret), 400, "invalid_target"},
		{"repeated grant_type", form("grant_type", "client_credentials", "grant_type", "client_credentials"), oauthBasic(basicID, basicSecret), 400, "invalid_request"},
		{"repeated scope", form("grant_type", "client_credentials", "scope", "mcp:read", "scope", "mcp:write"), oauthBasic(basicID, basicSecret), 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.oauthPost("/oauth2/token", tc.form, tc.header)
			oauthError(t, r, tc.status, tc.code)
			if tc.status == 401 && tc.header != nil && strings.HasPrefix(tc.header["Authorization"], "Basic") && r.Header.Get("WWW-Authenticate") != `Basic realm="knaight"` {
				t.Fatalf("challenge %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	e.t = t

	// The request itself: POST, form-encoded, in the body, bounded.
	auth := oauthBasic(basicID, basicSecret)["Authorization"]
	raw := func(method, path, contentType, body string) response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return e.oauthSend(req)
	}
	oauthError(t, raw("POST", "/oauth2/token", "application/json", `{"grant_type":"client_credentials"}`), 400, "invalid_request")
	oauthError(t, raw("POST", "/oauth2/token", "", "grant_type=client_credentials"), 400, "invalid_request")
	oauthError(t, raw("POST", "/oauth2/token?grant_type=client_credentials", "application/x-www-form-urlencoded", ""), 400, "invalid_request")
	oauthError(t, raw("POST", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&scope=%zz"), 400, "invalid_request")
	oauthError(t, raw("POST", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&pad="+strings.Repeat("a", 70<<10)), 413, "invalid_request")
	get := raw("GET", "/oauth2/token", "", "")
	oauthError(t, get, 405, "invalid_request")
	if get.Header.Get("Allow") != "POST" {
		t.Fatalf("Allow %q", get.Header.Get("Allow"))
	}
	if r := raw("POST", "/oauth2/token", "application/x-www-form-urlencoded; charset=utf-8", "grant_type=client_credentials"); r.Status != 200 {
		t.Fatalf("form with a charset: %d %s", r.Status, r.Raw)
	}

	// The agent must be ACTIVE.
	e.must(200, "POST", "/api/v1/agents/"+agent+"/ans/status", e.admin, map[string]any{"status": "SUSPENDED", "reason": "x"})
	r := e.oauthPost("/oauth2/token", cc, oauthBasic(basicID, basicSecret))
	oauthError(t, r, 400, "invalid_grant")
	if !strings.Contains(r.str("error_description"), "SUSPENDED") {
		t.Fatalf("description %q", r.str("error_description"))
	}
	e.must(200, "POST", "/api/v1/agents/"+agent+"/ans/status", e.admin, map[string]any{"status": "ACTIVE", "reason": "ok"})

	// Without audiences and without resource there is no audience.
	e.must(200, "PUT", "/api/v1/enforcement/token-settings", e.admin, map[string]any{"algorithm": "EdDSA", "defaultTtlSeconds": 900, "maxTtlSeconds": 3600, "audiences": []string{}})
	r = e.oauthPost("/oauth2/token", cc, oauthBasic(basicID, basicSecret))
	oauthError(t, r, 400, "invalid_target")
	if !strings.Contains(r.str("error_description"), "configure audiences") {
		t.Fatalf("description %q", r.str("error_description"))
	}

	// No secret is echoed after its creation, or logged.
	for _, s := range []string{basicSecret, postSecret, revokedSecret} {
		if strings.Contains(e.logs.String(), s) || strings.Contains(e.bodies.String()[created:], s) {
			t.Fatal("a client secret leaked after its creation")
		}
	}
}

func TestOAuthIntrospectAndRevoke(t *testing.T) {
	e, agent, ansName := newOAuthEnv(t)
	id, secret := e.oauthClient(agent, map[string]any{"authMethod": "client_secret_post", "loa": 2, "scopes": []string{"mcp:read"}})
	otherID, otherSecret := e.oauthClient(agent, map[string]any{"authMethod": "client_secret_basic", "loa": 1, "scopes": []string{}})
	self := func(kv ...string) url.Values {
		v := url.Values{"client_id": {id}, "client_secret": {secret}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	newToken := func() string {
		t.Helper()
		r := e.oauthPost("/oauth2/token", self("grant_type", "client_credentials"), nil)
		if r.Status != 200 {
			t.Fatalf("token: %d %s", r.Status, r.Raw)
		}
		return r.str("access_token")
	}
	token := newToken()
	inactive := func(r response) {
		t.Helper()
		if r.Status != 200 || string(r.Raw) != `{"active":false}` || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("want exactly {\"active\":false}, got %d %s", r.Status, r.Raw)
		}
	}

	// Active, for its own client, another client of the organization and an
	// admin API key alike.
	for name, r := range map[string]response{
		"own client":   e.oauthPost("/oauth2/introspect", self("token", token, "token_type_hint", "access_token"), nil),
		"other client": e.oauthPost("/oauth2/introspect", url.Values{"token": {token}}, oauthBasic(otherID, otherSecret)),
		"admin key":    e.oauthPost("/oauth2/introspect", url.Values{"token": {token}}, map[string]string{"Authorization": "Bearer " + e.admin}),
	} {
		if r.Status != 200 || r.Body["active"] != true || r.Body["client_id"] != id || r.Body["sub"] != ansName || r.Body["scope"] != "mcp:read" ||
			r.Body["loa"] != 2.0 || r.Body["token_type"] != "Bearer" || r.Body["iss"] != e.api.Issuer || r.Body["agent_id"] != agent {
			t.Fatalf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	inactive(e.oauthPost("/oauth2/introspect", self("token", "garbage"), nil))
	inactive(e.oauthPost("/oauth2/introspect", self("token", strings.Repeat("a", 9000)), nil))
	_, otherAdmin := e.newOrg("globex")
	inactive(e.oauthPost("/oauth2/introspect", url.Values{"token": {token}}, map[string]string{"Authorization": "Bearer " + otherAdmin}))
	oauthError(t, e.oauthPost("/oauth2/introspect", url.Values{"token": {token}}, nil), 401, "invalid_client")
	oauthError(t, e.oauthPost("/oauth2/introspect", url.Values{"token": {token}}, oauthBasic(id, "wrong")), 401, "invalid_client")
	oauthError(t, e.oauthPost("/oauth2/introspect", url.Values{"token": {token}}, map[string]string{"Authorization": "Bearer knk_nope"}), 401, "invalid_token")
	oauthError(t, e.oauthPost("/oauth2/introspect", self(), nil), 400, "invalid_request")

	// Revocation: only by the token's client; unknown tokens are fine.
	oauthError(t, e.oauthPost("/oauth2/revoke", url.Values{"token": {token}}, oauthBasic(otherID, otherSecret)), 400, "unauthorized_client")
	oauthError(t, e.oauthPost("/oauth2/revoke", url.Values{"token": {token}}, map[string]string{"Authorization": "Bearer " + e.admin}), 401, "invalid_client")
	oauthError(t, e.oauthPost("/oauth2/revoke", url.Values{"token": {token}}, nil), 401, "invalid_client")
	oauthError(t, e.oauthPost("/oauth2/revoke", self(), nil), 400, "invalid_request")
	for _, tok := range []string{token, token, "garbage", strings.Repeat("b", 9000)} {
		if r := e.oauthPost("/oauth2/revoke", self("token", tok, "token_type_hint", "refresh_token"), nil); r.Status != 200 || len(r.Raw) != 0 {
			t.Fatalf("revoke: %d %s", r.Status, r.Raw)
		}
	}
	inactive(e.oauthPost("/oauth2/introspect", self("token", token), nil))
	inactive(e.oauthPost("/oauth2/introspect", url.Values{"token": {token}}, map[string]string{"Authorization": "Bearer " + e.admin}))
	ev := e.must(200, "GET", "/api/v1/audit?type=TOKEN_REVOKED", e.admin, nil).Body["items"].([]any)
	if len(ev) != 1 || ev[0].(map[string]any)["actor"] != "client:"+id || ev[0].(map[string]any)["details"].(map[string]any)["reason"] != "revoked by client" {
		t.Fatalf("TOKEN_REVOKED events: %v", ev)
	}

	// A token issued through the API belongs to no client.
	apiToken := e.must(201, "POST", "/api/v1/enforcement/tokens/issue", e.admin, map[string]any{
		"organizationId": e.org.ID, "agentId": agent, "loaLevel": 1, "scope": []string{},
	}).str("token")
	oauthError(t, e.oauthPost("/oauth2/revoke", self("token", apiToken), nil), 400, "unauthorized_client")

	// Revoking the client takes its live tokens with it.
	live := newToken()
	revoked := e.must(200, "DELETE", "/api/v1/oauth-clients/"+id, e.admin, nil)
	if revoked.str("revokedAt") == "" {
		t.Fatalf("revoked client: %s", revoked.Raw)
	}
	inactive(e.oauthPost("/oauth2/introspect", url.Values{"token": {live}}, map[string]string{"Authorization": "Bearer " + e.admin}))
	if r := e.oauthPost("/oauth2/introspect", url.Values{"token": {apiToken}}, map[string]string{"Authorization": "Bearer " + e.admin}); r.Body["active"] != true {
		t.Fatal("revoking a client revoked a token that was not its")
	}
	oauthError(t, e.oauthPost("/oauth2/token", self("grant_type", "client_credentials"), nil), 401, "invalid_client")
	oauthError(t, e.oauthPost("/oauth2/introspect", self("token", apiToken), nil), 401, "invalid_client")
}

func TestOAuthMetadata(t *testing.T) {
	e := newEnv(t)
	r := e.must(200, "GET", "/.well-known/oauth-authorization-server", "", nil)
	iss := e.api.Issuer
	if iss != e.srv.URL {
		t.Fatalf("issuer %q is not the server's URL %q", iss, e.srv.URL)
	}
	want := map[string]string{
		"issuer": iss, "token_endpoint": iss + "/oauth2/token", "jwks_uri": iss + "/.well-known/jwks.json",
		"introspection_endpoint": iss + "/oauth2/introspect", "revocation_endpoint": iss + "/oauth2/revoke",
	}
	for k, v := range want {
		if r.str(k) != v {
			t.Errorf("%s = %q, want %q", k, r.str(k), v)
		}
	}
	list := func(k string) string {
		var out []string
		for _, v := range r.Body[k].([]any) {
			out = append(out, v.(string))
		}
		return strings.Join(out, " ")
	}
	methods, algs := "client_secret_basic client_secret_post private_key_jwt", "EdDSA ES256 RS256 PS256"
	for k, v := range map[string]string{
		"grant_types_supported": "client_credentials", "response_types_supported": "",
		"token_endpoint_auth_methods_supported": methods, "token_endpoint_auth_signing_alg_values_supported": algs,
		"introspection_endpoint_auth_methods_supported": methods, "introspection_endpoint_auth_signing_alg_values_supported": algs,
		"revocation_endpoint_auth_methods_supported": methods, "revocation_endpoint_auth_signing_alg_values_supported": algs,
	} {
		if got := list(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, ok := r.Body["scopes_supported"]; ok {
		t.Error("scopes_supported is advertised")
	}

	// Every advertised endpoint answers as what it is.
	oauthError(t, e.oauthPost(strings.TrimPrefix(r.str("token_endpoint"), e.srv.URL), url.Values{}, nil), 400, "invalid_request")
	oauthError(t, e.oauthPost(strings.TrimPrefix(r.str("introspection_endpoint"), e.srv.URL), url.Values{"token": {"x"}}, nil), 401, "invalid_client")
	oauthError(t, e.oauthPost(strings.TrimPrefix(r.str("revocation_endpoint"), e.srv.URL), url.Values{"token": {"x"}}, nil), 401, "invalid_client")
	jwks := e.must(200, "GET", strings.TrimPrefix(r.str("jwks_uri"), e.srv.URL), "", nil)
	if keys, ok := jwks.Body["keys"].([]any); !ok || len(keys) != 0 {
		t.Fatalf("JWKS before any key: %s", jwks.Raw)
	}
}

var oauthClientIDShape = regexp.MustCompile(`^kc_[a-z2-7]{16}$`)

func TestOAuthClientManagement(t *testing.T) {
	e, agent, _ := newOAuthEnv(t)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": oauthB64(edPub), "kid": "k1"}
	path := "/api/v1/agents/" + agent + "/oauth-clients"

	var secrets []string
	for _, m := range []string{"client_secret_basic", "client_secret_post"} {
		r := e.must(201, "POST", path, e.admin, map[string]any{"authMethod": m, "loa": 2, "scopes": []string{"mcp:read"}})
		if !oauthClientIDShape.MatchString(r.str("clientId")) || len(r.str("clientSecret")) != 43 || r.str("authMethod") != m || r.str("agentId") != agent || r.Body["jwks"] != nil {
			t.Fatalf("created %s: %s", m, r.Raw)
		}
		secrets = append(secrets, r.str("clientSecret"))
		e.clock.Advance(time.Second) // clients are listed newest first
	}
	jwtClient := e.must(201, "POST", path, e.admin, map[string]any{"authMethod": "private_key_jwt", "loa": 3, "scopes": []string{}, "jwks": map[string]any{"keys": []any{edJWK}}})
	if _, ok := jwtClient.Body["clientSecret"]; ok || jwtClient.get("jwks.keys").([]any)[0].(map[string]any)["alg"] != "EdDSA" {
		t.Fatalf("created private_key_jwt: %s", jwtClient.Raw)
	}

	list := e.must(200, "GET", path, e.admin, nil)
	if items := list.Body["items"].([]any); len(items) != 3 || items[0].(map[string]any)["clientId"] != jwtClient.str("clientId") {
		t.Fatalf("list: %s", list.Raw)
	}
	for _, s := range secrets {
		if strings.Contains(string(list.Raw), s) || strings.Contains(string(list.Raw), "clientSecret") {
			t.Fatal("a secret is listed")
		}
		var n int
		if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM ledger_events WHERE strpos(details, $1) > 0`, s).Scan(&n); err != nil || n != 0 {
			t.Fatalf("secret in the ledger (%d, %v)", n, err)
		}
	}
	ev := e.must(200, "GET", "/api/v1/audit?type=OAUTH_CLIENT_CREATED", e.admin, nil).Body["items"].([]any)
	if len(ev) != 3 {
		t.Fatalf("OAUTH_CLIENT_CREATED events: %v", ev)
	}

	tests := []struct {
		name     string
		body     map[string]any
		status   int
		location string
		msg      string
	}{
		{"secret client above LoA 2", map[string]any{"authMethod": "client_secret_basic", "loa": 3, "scopes": []string{}}, 422, "body.loa", "at most LoA 2"},
		{"key client above LoA 3", map[string]any{"authMethod": "private_key_jwt", "loa": 4, "scopes": []string{}, "jwks": map[string]any{"keys": []any{edJWK}}}, 422, "body.loa", "at most LoA 3"},
		{"LoA five", map[string]any{"authMethod": "client_secret_post", "loa": 5, "scopes": []string{}}, 422, "body.loa", "<= 4"},
		{"private key member", map[string]any{"authMethod": "private_key_jwt", "loa": 3, "scopes": []string{}, "jwks": map[string]any{"keys": []any{
			map[string]any{"kty": "OKP", "crv": "Ed25519", "x": oauthB64(edPub), "kid": "k1", "d": "c2VjcmV0c2VjcmV0"}}}}, 422, "body.jwks.keys[0].d", "private key material"},
		{"jwks for a secret client", map[string]any{"authMethod": "client_secret_basic", "loa": 1, "scopes": []string{}, "jwks": map[string]any{"keys": []any{edJWK}}}, 422, "body.jwks", "only a private_key_jwt"},
		{"no jwks for a key client", map[string]any{"authMethod": "private_key_jwt", "loa": 1, "scopes": []string{}}, 422, "body.jwks", "required"},
		{"key without kid", map[string]any{"authMethod": "private_key_jwt", "loa": 1, "scopes": []string{}, "jwks": map[string]any{"keys": []any{
			map[string]any{"kty": "OKP", "crv": "Ed25519", "x": oauthB64(edPub)}}}}, 422, "body.jwks.keys[0].kid", "required"},
		{"unknown authMethod", map[string]any{"authMethod": "tls_client_auth", "loa": 1, "scopes": []string{}}, 422, "body.authMethod", ""},
		{"scope with a space", map[string]any{"authMethod": "client_secret_post", "loa": 1, "scopes": []string{"mcp read"}}, 422, "body.scopes[0]", "scope"},
		{"no scopes", map[string]any{"authMethod": "client_secret_post", "loa": 1}, 422, "body", "scopes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.do("POST", path, e.admin, tc.body)
			e.problem(r, tc.status, tc.location, tc.msg)
			if strings.Contains(string(r.Raw), "c2VjcmV0c2VjcmV0") {
				t.Fatal("private key material echoed")
			}
		})
	}
	e.t = t
	e.problem(e.do("POST", "/api/v1/agents/0f8fad5b-d9cb-469f-a165-70867728950e/oauth-clients", e.admin,
		map[string]any{"authMethod": "client_secret_post", "loa": 1, "scopes": []string{}}), 404, "", "")

	// Another organization sees none of it.
	_, otherAdmin := e.newOrg("globex")
	e.problem(e.do("POST", path, otherAdmin, map[string]any{"authMethod": "client_secret_post", "loa": 1, "scopes": []string{}}), 404, "", "")
	e.problem(e.do("GET", path, otherAdmin, nil), 404, "", "")
	e.problem(e.do("DELETE", "/api/v1/oauth-clients/"+jwtClient.str("clientId"), otherAdmin, nil), 404, "", "")
	e.problem(e.do("DELETE", "/api/v1/oauth-clients/kc_aaaaaaaaaaaaaaaa", e.admin, nil), 404, "", "")

	// Roles: an auditor reads, an operator creates and revokes.
	auditor := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "a", "role": "auditor"}).str("token")
	operator := e.must(201, "POST", "/api/v1/api-keys", e.admin, map[string]any{"name": "o", "role": "operator"}).str("token")
	e.must(200, "GET", path, auditor, nil)
	e.problem(e.do("POST", path, auditor, map[string]any{"authMethod": "client_secret_post", "loa": 1, "scopes": []string{}}), 403, "", "")
	opClient := e.must(201, "POST", path, operator, map[string]any{"authMethod": "client_secret_post", "loa": 1, "scopes": []string{}}).str("clientId")

	// Revoking is idempotent and on the record once.
	first := e.must(200, "DELETE", "/api/v1/oauth-clients/"+opClient, operator, nil)
	again := e.must(200, "DELETE", "/api/v1/oauth-clients/"+opClient, e.admin, nil)
	if first.str("revokedAt") == "" || first.str("revokedAt") != again.str("revokedAt") {
		t.Fatalf("revoked twice: %s then %s", first.Raw, again.Raw)
	}
	if ev := e.must(200, "GET", "/api/v1/audit?type=OAUTH_CLIENT_REVOKED", e.admin, nil).Body["items"].([]any); len(ev) != 1 {
		t.Fatalf("OAUTH_CLIENT_REVOKED events: %v", ev)
	}

	// An agent whose registration ended gets no clients.
	e.must(200, "POST", "/api/v1/agents/"+agent+"/ans/status", e.admin, map[string]any{"status": "REVOKED", "reason": "retired"})
	e.problem(e.do("POST", path, e.admin, map[string]any{"authMethod": "client_secret_post", "loa": 1, "scopes": []string{}}), 409, "", "")
}

// The clientcredentials token source refreshes through the same endpoint;
// this checks it end to end against a context-bound HTTP client too.
func TestOAuthTokenSourceWithContextClient(t *testing.T) {
	e, agent, _ := newOAuthEnv(t)
	id, secret := e.oauthClient(agent, map[string]any{"authMethod": "client_secret_basic", "loa": 1, "scopes": []string{"mcp:read"}})
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, e.srv.Client())
	src := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.srv.URL + "/oauth2/token"}).TokenSource(ctx)
	tok, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if claims, _ := e.oauthVerify(tok.AccessToken, oauthResource); claims.Scope != "mcp:read" {
		t.Fatalf("claims %+v", claims)
	}
}

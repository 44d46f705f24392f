package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/knaight/knaight/manager/internal/fault"
)

// MaxAssertionLifetime bounds how far ahead of now a client assertion may
// expire. The jti of every accepted assertion is remembered until it
// expires, so a long-lived assertion would make that memory grow, and a
// stolen one would stay usable for long.
const MaxAssertionLifetime = 5 * time.Minute

// clockSkew is how far a client's clock may be from the manager's when
// checking an assertion's exp, nbf and iat.
const clockSkew = 30 * time.Second

// maxAssertionBytes bounds a client assertion; a JWT with a few claims and
// an RSA-8192 signature is well below it.
const maxAssertionBytes = 8192

// credentials are what a request presents to authenticate its client.
type credentials struct {
	method    string
	clientID  string
	secret    string
	assertion string
}

// presented reads a request's client credentials. A request uses exactly
// one method (RFC 6749 §2.3): HTTP Basic, client_secret in the body, or a
// client assertion.
func presented(r *http.Request, form url.Values) (credentials, error) {
	var c credentials
	var used []string
	if r.Header.Get("Authorization") != "" {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return c, errorf(ErrInvalidClient, "the Authorization header must be HTTP Basic with the client's id and secret")
		}
		// RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic.
		id, errID := url.QueryUnescape(user)
		secret, errSecret := url.QueryUnescape(pass)
		if errID != nil || errSecret != nil {
			return c, errorf(ErrInvalidClient, "the HTTP Basic id and secret must be form-urlencoded (RFC 6749 §2.3.1)")
		}
		c = credentials{method: ClientSecretBasic, clientID: id, secret: secret}
		used = append(used, "HTTP Basic")
	}
	if form.Has("client_secret") {
		used = append(used, "client_secret")
		if c.method == "" {
			c = credentials{method: ClientSecretPost, clientID: form.Get("client_id"), secret: form.Get("client_secret")}
		}
	}
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		used = append(used, "client_assertion")
		if c.method == "" {
			c = credentials{method: PrivateKeyJWT, assertion: form.Get("client_assertion")}
		}
	}
	switch {
	case len(used) > 1:
		return c, errorf(ErrInvalidRequest, "use exactly one client authentication method, not %s", strings.Join(used, " and "))
	case len(used) == 0:
		return c, errorf(ErrInvalidClient, "client authentication is required: HTTP Basic, client_id with client_secret, or a client_assertion (private_key_jwt)")
	}
	switch c.method {
	case ClientSecretPost:
		if c.clientID == "" {
			return c, errorf(ErrInvalidRequest, "client_secret needs client_id")
		}
	case PrivateKeyJWT:
		if form.Get("client_assertion_type") != AssertionType {
			return c, errorf(ErrInvalidRequest, "client_assertion_type must be %s", AssertionType)
		}
		if c.assertion == "" {
			return c, errorf(ErrInvalidRequest, "client_assertion is required with client_assertion_type")
		}
	}
	return c, nil
}

// authenticate identifies and authenticates the client of a request to
// endpoint (the URL called, which an assertion may name as its audience).
func (s Server) authenticate(ctx context.Context, r *http.Request, form url.Values, endpoint string) (record, error) {
	c, err := presented(r, form)
	if err != nil {
		return record{}, err
	}
	var rec record
	if c.method == PrivateKeyJWT {
		rec, err = s.verifyAssertion(ctx, c.assertion, endpoint)
	} else {
		rec, err = s.checkSecret(ctx, c)
	}
	if err != nil {
		return record{}, err
	}
	if form.Has("client_id") && form.Get("client_id") != rec.ClientID {
		return record{}, errorf(ErrInvalidRequest, "client_id does not match the client's credentials")
	}
	return rec, nil
}

// lookup returns the live client clientID registered with method.
func (s Server) lookup(ctx context.Context, clientID, method string) (record, error) {
	if !clientIDRe.MatchString(clientID) {
		return record{}, unauthenticated("malformed client id")
	}
	rec, err := getClient(ctx, s.Pool, clientID, "")
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return rec, unauthenticated("unknown client %s", clientID)
	case err != nil:
		return rec, err
	case rec.RevokedAt != nil:
		return rec, unauthenticated("client %s is revoked", clientID)
	case rec.AuthMethod != method:
		return rec, unauthenticated("client %s is registered for %s, not %s", clientID, rec.AuthMethod, method)
	}
	return rec, nil
}

func (s Server) checkSecret(ctx context.Context, c credentials) (record, error) {
	rec, err := s.lookup(ctx, c.clientID, c.method)
	if err != nil {
		return record{}, err
	}
	if subtle.ConstantTimeCompare(rec.secretHash, hashSecret(c.secret)) != 1 {
		return record{}, unauthenticated("wrong secret for client %s", c.clientID)
	}
	return rec, nil
}

// verifyAssertion authenticates a private_key_jwt client (RFC 7523 §3):
// iss and sub are the client id; aud names this server; exp is required
// and near; nbf and iat hold; the jti is new; and the signature verifies
// with one of the client's keys, by the algorithm that key dictates.
func (s Server) verifyAssertion(ctx context.Context, assertion, endpoint string) (record, error) {
	if len(assertion) > maxAssertionBytes {
		return record{}, unauthenticated("assertion of %d bytes", len(assertion))
	}
	// The unverified subject only selects the keys; everything is checked
	// again once the signature verifies.
	var claimed jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &claimed); err != nil {
		return record{}, unauthenticated("malformed assertion: %v", err)
	}
	rec, err := s.lookup(ctx, claimed.Subject, PrivateKeyJWT)
	if err != nil {
		return record{}, err
	}
	type candidate struct {
		kid, alg string
		key      jwt.VerificationKey
	}
	var keys []candidate
	for _, k := range rec.JWKS.Keys {
		pub, _, err := k.publicKey()
		if err != nil {
			return record{}, fmt.Errorf("key %s of oauth client %s: %w", k.KID, rec.ClientID, err)
		}
		keys = append(keys, candidate{k.KID, k.Alg, pub})
	}
	now := s.Now()
	issuer := s.issuer()
	parser := jwt.NewParser(
		jwt.WithValidMethods(AssertionAlgorithms()),
		jwt.WithIssuer(rec.ClientID), jwt.WithSubject(rec.ClientID),
		jwt.WithAudience(issuer, issuer+TokenPath, endpoint),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var claims jwt.RegisteredClaims
	_, err = parser.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		// The key decides the algorithm: a key only verifies the one its
		// JWK names, so alg=none, HS256 or RS256-for-a-PS256-key match none.
		kid, _ := t.Header["kid"].(string)
		var set jwt.VerificationKeySet
		for _, k := range keys {
			if (kid == "" || k.kid == kid) && k.alg == t.Method.Alg() {
				set.Keys = append(set.Keys, k.key)
			}
		}
		if len(set.Keys) == 0 {
			return nil, fmt.Errorf("no key of the client has kid %q and alg %s", kid, t.Method.Alg())
		}
		return set, nil
	})
	if err != nil {
		return record{}, unauthenticated("assertion of client %s: %v", rec.ClientID, err)
	}
	switch {
	case claims.ExpiresAt.Sub(now) > MaxAssertionLifetime+clockSkew:
		return record{}, unauthenticated("assertion of client %s expires more than %s ahead", rec.ClientID, MaxAssertionLifetime)
	case claims.ID == "" || len(claims.ID) > 256:
		return record{}, unauthenticated("assertion of client %s has no jti, or one over 256 bytes", rec.ClientID)
	}
	// Remember the jti for as long as the assertion is acceptable (its exp
	// plus the tolerated skew); a second use is a replay. Rows past that
	// can go: an assertion that old is refused by its exp anyway.
	if _, err := s.Pool.Exec(ctx, `DELETE FROM client_assertions WHERE client_id = $1 AND expires_at <= $2`, rec.ClientID, now); err != nil {
		return record{}, fmt.Errorf("forget expired assertions: %w", err)
	}
	tag, err := s.Pool.Exec(ctx, `INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		rec.ClientID, claims.ID, claims.ExpiresAt.Add(clockSkew))
	if err != nil {
		return record{}, fmt.Errorf("remember assertion: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return record{}, unauthenticated("assertion of client %s replayed (jti %q)", rec.ClientID, claims.ID)
	}
	return rec, nil
}

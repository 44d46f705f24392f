package tokens_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/tokens"
	"github.com/knaight/knaight/shared/token"
)

// The gateway verifies tokens with shared/token and the keys of its
// snapshot, which come from Keys.VerificationKeys. These tests hold the two
// to the manager: what Issue signs verifies, with the claims issued, and
// what Service.Verify refuses by its signature and claims, shared/token
// refuses too.

// gatewayKeys are the organization's verification keys at now, as a
// snapshot carries them.
func (f *fixture) gatewayKeys(t *testing.T, now time.Time) token.KeyMap {
	t.Helper()
	keys, err := f.svc.Keys.VerificationKeys(t.Context(), f.pool, f.org, now)
	if err != nil {
		t.Fatal(err)
	}
	m := token.KeyMap{}
	for _, k := range keys {
		m[k.ID] = k
	}
	return m
}

func (f *fixture) expect(now time.Time) token.Expect {
	return token.Expect{Issuer: issuer, Audience: audience, Organization: f.org.String(), Now: now}
}

func TestSharedVerifierAcceptsIssuedTokens(t *testing.T) {
	for _, alg := range []string{tokens.EdDSA, tokens.HS256} {
		t.Run(alg, func(t *testing.T) {
			f := setup(t, alg)
			requests := map[string]tokens.IssueRequest{
				"defaults": {AgentID: f.agent, LoA: 1, IssuerID: "test"},
				"every claim": {AgentID: f.agent, Audience: audience, Scopes: []string{"mcp:read", "mcp:tools", "deploy"}, LoA: 4, TTL: time.Hour,
					ArtifactID: "repo-1", ArtifactType: "repository", IssuerID: "test", ClientID: "kc_abcdefghijklmnop"},
			}
			for name, req := range requests {
				t.Run(name, func(t *testing.T) {
					var issued tokens.Issued
					err := db.InTx(t.Context(), f.pool, func(tx pgx.Tx) (err error) {
						issued, err = f.svc.Issue(t.Context(), tx, f.org, req, "test", f.now)
						return err
					})
					if err != nil {
						t.Fatal(err)
					}
					keys := f.gatewayKeys(t, f.now)
					k, ok := keys[issued.KID]
					if !ok || string(k.Algorithm) != alg || (alg == tokens.EdDSA) != (k.Public != nil) || (alg == tokens.HS256) != (k.Secret != nil) {
						t.Fatalf("the signing key %s is not in the verification keys as %s: %+v", issued.KID, alg, keys)
					}

					got, err := token.Verify(issued.Token, keys, f.expect(f.now))
					if err != nil {
						t.Fatalf("shared/token refuses an issued token: %v", err)
					}
					want := token.Claims{
						Issuer: issuer, Subject: issued.ANSName, Audience: []string{issued.Audience},
						ExpiresAt: issued.ExpiresAt, NotBefore: issued.NotBefore, IssuedAt: issued.IssuedAt, ID: issued.JTI.String(),
						Organization: f.org.String(), AgentID: f.agent.String(), ANSName: issued.ANSName, LoA: req.LoA,
						Scope: strings.Join(req.Scopes, " "), ClientID: req.ClientID,
					}
					if req.ArtifactID != "" {
						want.Artifact = &token.Artifact{ID: req.ArtifactID, Type: req.ArtifactType}
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("claims\n got %+v\nwant %+v", got, want)
					}
					if s := got.Scopes(); len(s) != len(req.Scopes) || len(s) > 0 && !reflect.DeepEqual(s, req.Scopes) {
						t.Fatalf("scopes %q, issued %q", s, req.Scopes)
					}

					// Both verifiers read the same claims.
					mc, _, err := f.svc.Verify(t.Context(), f.pool, issued.Token, audience, f.now)
					if err != nil {
						t.Fatal(err)
					}
					fromManager := token.Claims{
						Issuer: mc.Issuer, Subject: mc.Subject, Audience: mc.Audience,
						ExpiresAt: mc.ExpiresAt.UTC(), NotBefore: mc.NotBefore.UTC(), IssuedAt: mc.IssuedAt.UTC(), ID: mc.ID,
						Organization: mc.Organization, AgentID: mc.AgentID, ANSName: mc.ANSName, LoA: mc.LoA, Scope: mc.Scope, ClientID: mc.ClientID,
					}
					if mc.Artifact != nil {
						fromManager.Artifact = &token.Artifact{ID: mc.Artifact.ID, Type: mc.Artifact.Type}
					}
					if !reflect.DeepEqual(got, fromManager) {
						t.Fatalf("shared/token reads\n %+v\nthe manager reads\n %+v", got, fromManager)
					}

					// Both agree on the last second of its life.
					last := issued.ExpiresAt.Add(-time.Second)
					if _, err := token.Verify(issued.Token, keys, f.expect(last)); err != nil {
						t.Fatalf("refused in its last second: %v", err)
					}
					if _, err := token.Verify(issued.Token, keys, f.expect(issued.ExpiresAt)); !errors.Is(err, token.ErrExpired) {
						t.Fatalf("at exp: %v, want %v", err, token.ErrExpired)
					}
					if _, _, err := f.svc.Verify(t.Context(), f.pool, issued.Token, audience, issued.ExpiresAt); !errors.Is(err, tokens.ErrInvalidToken) {
						t.Fatalf("the manager at exp: %v", err)
					}
				})
			}
		})
	}
}

// TestSharedVerifierRefusesWhatTheManagerRefuses runs TestClassicAttacksFail's
// forgeries through shared/token. One row of the manager's table is not
// here: "a jti this manager never issued" needs the token records, which
// the gateway does not have; it trusts the signature, and the manager signs
// only tokens it records.
func TestSharedVerifierRefusesWhatTheManagerRefuses(t *testing.T) {
	f := setup(t, tokens.EdDSA)
	issued := f.issue(t)
	keys := f.gatewayKeys(t, f.now)
	same := func(map[string]any, jwt.MapClaims) {}
	tests := []struct {
		name  string
		token func() string
		at    time.Time
		want  error
	}{
		{"alg none", func() string {
			return f.forge(t, issued, same, func(string, any, any) (jwt.SigningMethod, any) {
				return jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType
			})
		}, f.now, token.ErrUnsupportedAlgorithm},
		{"HS256 signed with the EdDSA public key", func() string {
			return f.forge(t, issued, same, func(_ string, _, public any) (jwt.SigningMethod, any) {
				return jwt.SigningMethodHS256, []byte(public.(ed25519.PublicKey))
			})
		}, f.now, token.ErrUnsupportedAlgorithm},
		{"wrong audience", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { c["aud"] = "https://evil.example.com/" }, nil)
		}, f.now, token.ErrAudience},
		{"wrong issuer", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { c["iss"] = "https://evil.example.com" }, nil)
		}, f.now, token.ErrIssuer},
		{"missing typ", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) { delete(h, "typ") }, nil)
		}, f.now, token.ErrType},
		{"typ JWT", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "JWT" }, nil)
		}, f.now, token.ErrType},
		{"unknown kid", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) { h["kid"] = "ed_unknown" }, nil)
		}, f.now, token.ErrUnknownKey},
		{"missing kid", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) { delete(h, "kid") }, nil)
		}, f.now, token.ErrUnknownKey},
		{"expired", func() string { return issued.Token }, f.now.Add(901 * time.Second), token.ErrExpired},
		{"not yet valid", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { c["nbf"] = f.now.Add(time.Hour).Unix() }, nil)
		}, f.now, token.ErrNotYetValid},
		{"no expiry", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { delete(c, "exp") }, nil)
		}, f.now, token.ErrExpired},
		{"another organization", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { c["org"] = uuid.NewString() }, nil)
		}, f.now, token.ErrMissingClaim},
		{"tampered payload", func() string {
			p := strings.Split(issued.Token, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(p[1])
			raw = []byte(strings.Replace(string(raw), `"loa":2`, `"loa":4`, 1))
			return p[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + p[2]
		}, f.now, token.ErrBadSignature},
		{"garbage", func() string { return "not.a.token" }, f.now, token.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.token()
			if _, _, err := f.svc.Verify(t.Context(), f.pool, raw, audience, tc.at); !errors.Is(err, tokens.ErrInvalidToken) {
				t.Fatalf("the manager accepts it: %v", err)
			}
			if _, err := token.Verify(raw, keys, f.expect(tc.at)); !errors.Is(err, tc.want) {
				t.Fatalf("shared/token: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSharedVerifierRefusesEdDSAUnderAnHS256Kid(t *testing.T) {
	f := setup(t, tokens.HS256)
	issued := f.issue(t)
	forged := f.forge(t, issued, func(map[string]any, jwt.MapClaims) {}, func(string, any, any) (jwt.SigningMethod, any) {
		_, priv, _ := ed25519.GenerateKey(nil)
		return jwt.SigningMethodEdDSA, priv
	})
	if _, err := token.Verify(forged, f.gatewayKeys(t, f.now), f.expect(f.now)); !errors.Is(err, token.ErrUnsupportedAlgorithm) {
		t.Fatalf("EdDSA token under an HS256 kid: %v", err)
	}
}

// TestVerificationKeysFollowRotation checks that a rotated-out key stays
// with the gateway exactly as long as a token it signed lives.
func TestVerificationKeysFollowRotation(t *testing.T) {
	f := setup(t, tokens.EdDSA)
	old := f.issue(t) // expires at f.now + 15 min
	var rotated tokens.SigningKey
	err := db.InTx(t.Context(), f.pool, func(tx pgx.Tx) (err error) {
		rotated, err = f.svc.Keys.Rotate(t.Context(), tx, f.org, "test", f.now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fresh := f.issue(t)
	if fresh.KID != rotated.KID || fresh.KID == old.KID {
		t.Fatalf("after rotation tokens are signed by %s; rotated to %s from %s", fresh.KID, rotated.KID, old.KID)
	}

	keys := f.gatewayKeys(t, f.now)
	for _, tok := range []tokens.Issued{old, fresh} {
		if _, err := token.Verify(tok.Token, keys, f.expect(f.now)); err != nil {
			t.Fatalf("token of key %s refused after the rotation: %v", tok.KID, err)
		}
	}
	last := old.ExpiresAt.Add(-time.Second)
	if _, ok := f.gatewayKeys(t, last)[old.KID]; !ok {
		t.Fatalf("retired key %s left before its last token expired", old.KID)
	}
	later := f.gatewayKeys(t, old.ExpiresAt)
	if _, ok := later[old.KID]; ok {
		t.Fatalf("retired key %s still listed after its last token expired", old.KID)
	}
	if _, ok := later[fresh.KID]; !ok {
		t.Fatalf("active key %s not listed", fresh.KID)
	}
}

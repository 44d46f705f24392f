package tokens_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/orgs"
	"github.com/knaight/knaight/manager/internal/seal"
	"github.com/knaight/knaight/manager/internal/tokens"
	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/testenv/postgres"
)

func TestMain(m *testing.M) { os.Exit(postgres.Main(m)) }

var migrated = postgres.WithTemplate("knaight_manager_tokens", func(ctx context.Context, url string) error {
	_, _, err := db.Migrate(ctx, url)
	return err
})

const (
	issuer   = "https://knaight.example.com"
	audience = "https://mcp.example.com/mcp"
)

type fixture struct {
	pool  *pgxpool.Pool
	svc   tokens.Service
	org   uuid.UUID
	agent uuid.UUID
	now   time.Time
}

func setup(t *testing.T, alg string) *fixture {
	t.Helper()
	ctx := t.Context()
	pool, err := db.Open(ctx, postgres.NewDatabase(t, migrated), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	sealer, err := seal.New(make([]byte, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{pool: pool, svc: tokens.Service{Keys: tokens.Keys{Sealer: sealer}, Issuer: issuer}, now: time.Now().UTC().Truncate(time.Second)}
	b, err := orgs.Bootstrap(ctx, pool, orgs.New{Name: "Acme", Slug: "acme", ANSDomain: "agents.acme.example"}, "admin", false, "test", f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.org = b.Organization.ID
	err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := f.svc.Keys.SetSettings(ctx, tx, f.org, tokens.Settings{Algorithm: alg, DefaultTTLSeconds: 900, MaxTTLSeconds: 3600, Audiences: []string{audience}}, "test", f.now); err != nil {
			return err
		}
		tmpl, err := agents.RoleTemplateByName(ctx, tx, f.org, "assistant")
		if err != nil {
			return err
		}
		r, err := agents.Register(ctx, tx, agents.BuiltinRegistry{OrganizationID: f.org, Now: func() time.Time { return f.now }},
			&agents.Keys{Sealer: sealer}, f.org, "agents.acme.example",
			agents.NewAgent{Name: "bot", RoleTemplateID: tmpl.ID, Environment: policy.Production, Activate: true}, "test", f.now)
		f.agent = r.Agent.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) issue(t *testing.T) tokens.Issued {
	t.Helper()
	var out tokens.Issued
	err := db.InTx(t.Context(), f.pool, func(tx pgx.Tx) (err error) {
		out, err = f.svc.Issue(t.Context(), tx, f.org, tokens.IssueRequest{AgentID: f.agent, Scopes: []string{"mcp:read"}, LoA: 2, IssuerID: "test"}, "test", f.now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// forge re-signs the claims of a real token after change, with the real key
// unless sign says otherwise.
func (f *fixture) forge(t *testing.T, issued tokens.Issued, change func(h map[string]any, c jwt.MapClaims), sign func(alg string, signer, public any) (jwt.SigningMethod, any)) string {
	t.Helper()
	signer, public, alg, err := tokens.SigningMaterialForTest(t.Context(), f.pool, f.svc.Keys, issued.KID)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(issued.Token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	claims := jwt.MapClaims{}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	method := jwt.GetSigningMethod(alg)
	key := signer
	if sign != nil {
		method, key = sign(alg, signer, public)
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = issued.KID
	change(tok.Header, claims)
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClassicAttacksFail(t *testing.T) {
	f := setup(t, tokens.EdDSA)
	issued := f.issue(t)
	if _, _, err := f.svc.Verify(t.Context(), f.pool, issued.Token, audience, f.now); err != nil {
		t.Fatalf("the genuine token fails: %v", err)
	}
	same := func(map[string]any, jwt.MapClaims) {}
	tests := []struct {
		name   string
		token  func() string
		at     time.Time
		reason string
	}{
		{"alg none", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) {}, func(string, any, any) (jwt.SigningMethod, any) {
				return jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType
			})
		}, f.now, "alg"},
		{"HS256 signed with the EdDSA public key", func() string {
			return f.forge(t, issued, same, func(_ string, _, public any) (jwt.SigningMethod, any) {
				return jwt.SigningMethodHS256, []byte(public.(ed25519.PublicKey))
			})
		}, f.now, "alg HS256 does not match"},
		{"wrong audience", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { c["aud"] = "https://evil.example.com/" }, nil)
		}, f.now, "audience"},
		{"wrong issuer", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { c["iss"] = "https://evil.example.com" }, nil)
		}, f.now, "issuer"},
		{"missing typ", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) { delete(h, "typ") }, nil)
		}, f.now, "typ"},
		{"typ JWT", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "JWT" }, nil)
		}, f.now, "typ"},
		{"unknown kid", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) { h["kid"] = "ed_unknown" }, nil)
		}, f.now, "unknown signing key"},
		{"missing kid", func() string {
			return f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) { delete(h, "kid") }, nil)
		}, f.now, "unknown signing key"},
		{"expired", func() string { return issued.Token }, f.now.Add(901 * time.Second), "expired"},
		{"not yet valid", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { c["nbf"] = f.now.Add(time.Hour).Unix() }, nil)
		}, f.now, "not valid yet"},
		{"no expiry", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { delete(c, "exp") }, nil)
		}, f.now, "exp"},
		{"a jti this manager never issued", func() string {
			return f.forge(t, issued, func(_ map[string]any, c jwt.MapClaims) { c["jti"] = uuid.NewString() }, nil)
		}, f.now, "not issued"},
		{"tampered payload", func() string {
			p := strings.Split(issued.Token, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(p[1])
			raw = []byte(strings.Replace(string(raw), `"loa":2`, `"loa":4`, 1))
			return p[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + p[2]
		}, f.now, "signature"},
		{"garbage", func() string { return "not.a.token" }, f.now, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.svc.Verify(t.Context(), f.pool, tc.token(), audience, tc.at)
			if !errors.Is(err, tokens.ErrInvalidToken) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %q does not say %q", err, tc.reason)
			}
			in, err := f.svc.Introspect(t.Context(), f.pool, tc.token(), nil, tc.at)
			if err != nil || in.Active || in.Sub != "" || in.Jti != "" || in.Aud != nil {
				t.Fatalf("introspection of a bad token: %+v %v", in, err)
			}
		})
	}
}

func TestHS256TokenCannotBeReplayedAsEdDSA(t *testing.T) {
	f := setup(t, tokens.HS256)
	issued := f.issue(t)
	if _, _, err := f.svc.Verify(t.Context(), f.pool, issued.Token, audience, f.now); err != nil {
		t.Fatalf("HS256 token fails: %v", err)
	}
	forged := f.forge(t, issued, func(h map[string]any, _ jwt.MapClaims) {}, func(string, any, any) (jwt.SigningMethod, any) {
		_, priv, _ := ed25519.GenerateKey(nil)
		return jwt.SigningMethodEdDSA, priv
	})
	if _, _, err := f.svc.Verify(t.Context(), f.pool, forged, audience, f.now); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("EdDSA token under an HS256 kid accepted: %v", err)
	}
}

package token_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/token"
)

func TestVerifyAcceptsGenuineTokens(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		at     time.Time
		want   func(*token.Claims)
		leeway time.Duration
	}{
		{"EdDSA token as the manager issues it", edToken(nil), t0, nil, 0},
		{"HS256 token as the manager issues it", hsToken(nil), t0, nil, 0},
		{"one second before exp", edToken(nil), t0.Add(15*time.Minute - time.Second), nil, 0},
		{"expired within the leeway", edToken(nil), t0.Add(15*time.Minute + 29*time.Second), nil, 30 * time.Second},
		{"nbf and iat ahead within the leeway", edToken(nil), t0.Add(-30 * time.Second), nil, 30 * time.Second},
		{"typ application/at+jwt", mint(header(token.EdDSA, edKey.ID, func(h map[string]any) { h["typ"] = "application/at+jwt" }), payload(nil), signEd(edPrivate)), t0, nil, 0},
		{"typ in upper case", mint(header(token.EdDSA, edKey.ID, func(h map[string]any) { h["typ"] = "AT+JWT" }), payload(nil), signEd(edPrivate)), t0, nil, 0},
		{"aud as a single string", edToken(func(c map[string]any) { c["aud"] = audience }), t0, nil, 0},
		{"aud naming ours among others", edToken(func(c map[string]any) { c["aud"] = []string{"https://other.example.com/mcp", audience} }), t0,
			func(c *token.Claims) { c.Audience = []string{"https://other.example.com/mcp", audience} }, 0},
		{"no nbf, iat, agent_id, loa or scope", edToken(func(c map[string]any) {
			for _, k := range []string{"nbf", "iat", "agent_id", "loa", "scope"} {
				delete(c, k)
			}
		}), t0, func(c *token.Claims) {
			c.NotBefore, c.IssuedAt, c.AgentID, c.LoA, c.Scope = time.Time{}, time.Time{}, "", 0, ""
		}, 0},
		{"null optional claims are absent", edToken(func(c map[string]any) { c["nbf"], c["client_id"], c["artifact"] = nil, nil, nil }), t0,
			func(c *token.Claims) { c.NotBefore = time.Time{} }, 0},
		{"client_id and artifact", edToken(func(c map[string]any) {
			c["client_id"], c["artifact"] = "kc_abc", map[string]any{"id": "repo-1", "type": "repository", "extra": []any{1, map[string]any{"k": true}}}
		}), t0, func(c *token.Claims) {
			c.ClientID, c.Artifact = "kc_abc", &token.Artifact{ID: "repo-1", Type: "repository"}
		}, 0},
		{"fractional dates lose their fraction", edToken(func(c map[string]any) { c["exp"] = float64(t0.Add(time.Hour).Unix()) + 0.75 }), t0,
			func(c *token.Claims) { c.ExpiresAt = t0.Add(time.Hour) }, 0},
		{"unknown claims are ignored", edToken(func(c map[string]any) { c["cnf"] = map[string]any{"jkt": "x"}; c["x-list"] = []any{nil, 1.5, "s"} }), t0, nil, 0},
		{"unknown header parameters are ignored", mint(header(token.HS256, hsKey.ID, func(h map[string]any) { h["jku"] = "https://evil.example.com/jwks" }), payload(nil), signHS(hsKey.Secret)), t0, nil, 0},
		{"escaped names are names", edRaw(strings.Replace(payload(nil), `"iss"`, `"\u0069ss"`, 1)), t0, nil, 0},
		{"JSON white space", mint(" { \"alg\" : \"EdDSA\" ,\n\"typ\":\"at+jwt\", \"kid\":\"ed_test\" } ", " "+payload(nil)+"\n", signEd(edPrivate)), t0, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := expect
			w.Now, w.Leeway = tc.at, tc.leeway
			got, err := token.Verify(tc.raw, testKeys, w)
			if err != nil {
				t.Fatalf("refused: %v (%s)", err, token.Reason(err))
			}
			want := genuineClaims()
			if tc.want != nil {
				tc.want(&want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("claims\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestVerifyRefusesForgeries holds the manager's table of classic attacks
// (manager/internal/tokens/tokens_test.go, TestClassicAttacksFail and
// TestHS256TokenCannotBeReplayedAsEdDSA) and what a byte-level verifier adds.
func TestVerifyRefusesForgeries(t *testing.T) {
	edHeader := func(edit func(map[string]any)) string { return header(token.EdDSA, edKey.ID, edit) }
	genuine := edToken(nil)
	parts := strings.Split(genuine, ".")
	tests := []struct {
		name string
		raw  string
		at   time.Time
		keys token.Keys
		want error
	}{
		// The manager's table.
		{"alg none", mint(header("none", edKey.ID, nil), payload(nil), nil), t0, nil, token.ErrUnsupportedAlgorithm},
		{"HS256 signed with the EdDSA public key under the EdDSA kid",
			mint(header(token.HS256, edKey.ID, nil), payload(nil), signHS(edKey.Public)), t0, nil, token.ErrUnsupportedAlgorithm},
		{"EdDSA token under an HS256 kid", mint(header(token.EdDSA, hsKey.ID, nil), payload(nil), signEd(otherPrivate)), t0, nil, token.ErrUnsupportedAlgorithm},
		{"wrong audience", edToken(func(c map[string]any) { c["aud"] = "https://evil.example.com/" }), t0, nil, token.ErrAudience},
		{"wrong issuer", edToken(func(c map[string]any) { c["iss"] = "https://evil.example.com" }), t0, nil, token.ErrIssuer},
		{"missing typ", mint(edHeader(func(h map[string]any) { delete(h, "typ") }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrType},
		{"typ JWT", mint(edHeader(func(h map[string]any) { h["typ"] = "JWT" }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrType},
		{"unknown kid", mint(edHeader(func(h map[string]any) { h["kid"] = "ed_unknown" }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrUnknownKey},
		{"missing kid", mint(edHeader(func(h map[string]any) { delete(h, "kid") }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrUnknownKey},
		{"expired", genuine, t0.Add(901 * time.Second), nil, token.ErrExpired},
		{"not yet valid", edToken(func(c map[string]any) { c["nbf"] = t0.Add(time.Hour).Unix() }), t0, nil, token.ErrNotYetValid},
		{"no exp", edToken(func(c map[string]any) { delete(c, "exp") }), t0, nil, token.ErrExpired},
		{"tampered payload", parts[0] + "." + b64(strings.Replace(payload(nil), `"loa":2`, `"loa":4`, 1)) + "." + parts[2], t0, nil, token.ErrBadSignature},
		{"garbage", "not.a.token", t0, nil, token.ErrMalformed},

		// Algorithm and key.
		{"alg missing", mint(edHeader(func(h map[string]any) { delete(h, "alg") }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrUnsupportedAlgorithm},
		{"alg not a string", mint(edHeader(func(h map[string]any) { h["alg"] = []string{"EdDSA"} }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrUnsupportedAlgorithm},
		{"alg in another case", mint(edHeader(func(h map[string]any) { h["alg"] = "eddsa" }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrUnsupportedAlgorithm},
		{"alg RS256", mint(edHeader(func(h map[string]any) { h["alg"] = "RS256" }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrUnsupportedAlgorithm},
		{"HS256 signed with the HS256 secret under the EdDSA kid",
			mint(header(token.HS256, edKey.ID, nil), payload(nil), signHS(hsKey.Secret)), t0, nil, token.ErrUnsupportedAlgorithm},
		{"kid not a string", mint(edHeader(func(h map[string]any) { h["kid"] = 1 }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrUnknownKey},
		{"typ not a string", mint(edHeader(func(h map[string]any) { h["typ"] = true }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrType},
		{"typ with parameters", mint(edHeader(func(h map[string]any) { h["typ"] = "at+jwt; v=1" }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrType},
		{"no key set", genuine, t0, token.KeyMap(nil), token.ErrUnknownKey},
		{"key set returns another kid's key", genuine, t0, lookup(func(string) (token.Key, bool) { return hsKey, true }), token.ErrUnknownKey},
		{"Ed25519 key without its 32 bytes", genuine, t0, keysWith(token.Key{ID: edKey.ID, Algorithm: token.EdDSA, Public: edKey.Public[:31]}), token.ErrUnknownKey},
		{"HS256 secret shorter than 32 bytes", hsToken(nil), t0, keysWith(token.Key{ID: hsKey.ID, Algorithm: token.HS256, Secret: hsKey.Secret[:31]}), token.ErrUnknownKey},
		{"key without an algorithm", genuine, t0, keysWith(token.Key{ID: edKey.ID, Public: edKey.Public}), token.ErrUnsupportedAlgorithm},

		// Signature.
		{"signed by another Ed25519 key", mint(edHeader(nil), payload(nil), signEd(otherPrivate)), t0, nil, token.ErrBadSignature},
		{"HS256 signed with another secret", mint(header(token.HS256, hsKey.ID, nil), payload(nil), signHS([]byte(strings.Repeat("x", 32)))), t0, nil, token.ErrBadSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", t0, nil, token.ErrBadSignature},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:40], t0, nil, token.ErrBadSignature},
		{"tampered header", b64(strings.Replace(edHeader(nil), "at+jwt", "AT+JWT", 1)) + "." + parts[1] + "." + parts[2], t0, nil, token.ErrBadSignature},
		{"bad signature and bad claims: the signature decides", parts[0] + "." + b64(`{"exp":"soon"}`) + "." + parts[2], t0, nil, token.ErrBadSignature},

		// Structure and encoding.
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], t0, nil, token.ErrMalformed},
		{"padded signature", genuine + "==", t0, nil, token.ErrMalformed},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(parts[0]+"."+parts[1]) + ".+/" + parts[2][2:], t0, nil, token.ErrMalformed},
		{"non-canonical trailing bits", parts[0] + "." + parts[1] + "." + nonCanonical(parts[2]), t0, nil, token.ErrMalformed},
		{"line break in a segment", parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2], t0, nil, token.ErrMalformed},
		{"four segments", genuine + "." + parts[2], t0, nil, token.ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], t0, nil, token.ErrMalformed},
		{"empty", "", t0, nil, token.ErrMalformed},
		{"huge input", parts[0] + "." + strings.Repeat("A", token.MaxSize) + "." + parts[2], t0, nil, token.ErrMalformed},
		{"header not JSON", b64("alg=EdDSA") + "." + parts[1] + "." + parts[2], t0, nil, token.ErrMalformed},
		{"header an array", b64(`["EdDSA"]`) + "." + parts[1] + "." + parts[2], t0, nil, token.ErrMalformed},
		{"data after the header", b64(edHeader(nil)+"{}") + "." + parts[1] + "." + parts[2], t0, nil, token.ErrMalformed},
		{"crit header", mint(edHeader(func(h map[string]any) { h["crit"] = []string{"b64"}; h["b64"] = false }), payload(nil), signEd(edPrivate)), t0, nil, token.ErrMalformed},
		{"duplicate alg in the header", mint(`{"alg":"HS256","typ":"at+jwt","kid":"ed_test","alg":"EdDSA"}`, payload(nil), signEd(edPrivate)), t0, nil, token.ErrMalformed},
		{"header name differing only in case", mint(`{"alg":"EdDSA","typ":"at+jwt","kid":"ed_test","KID":"hs_test"}`, payload(nil), signEd(edPrivate)), t0, nil, token.ErrMalformed},

		// Claims, read after the signature.
		{"duplicate claim keys", edRaw(strings.Replace(payload(nil), `"iss":`, `"iss":"https://evil.example.com","iss":`, 1)), t0, nil, token.ErrMalformed},
		{"duplicate claim keys differing in case", edRaw(strings.Replace(payload(nil), `"sub":`, `"SUB":"ans://v1.0.0.evil","sub":`, 1)), t0, nil, token.ErrMalformed},
		{"duplicate claim keys equal under Unicode folding", edRaw(strings.Replace(payload(nil), `"sub":`, `"ſub":"ans://v1.0.0.evil","sub":`, 1)), t0, nil, token.ErrMalformed},
		{"unknown claims differing only in case", edToken(func(c map[string]any) { c["x-tenant"], c["X-Tenant"] = "a", "b" }), t0, nil, token.ErrMalformed},
		{"claim named in another case alone", edRaw(strings.Replace(payload(nil), `"iss":`, `"Iss":`, 1)), t0, nil, token.ErrMalformed},
		{"duplicate keys in the artifact", edToken(func(c map[string]any) { c["artifact"] = rawJSON(`{"id":"a","id":"b","type":"t"}`) }), t0, nil, token.ErrMalformed},
		{"duplicate keys in an unknown claim", edToken(func(c map[string]any) { c["x"] = rawJSON(`[{"k":1,"k":2}]`) }), t0, nil, token.ErrMalformed},
		{"claims not an object", edRaw(`[` + payload(nil) + `]`), t0, nil, token.ErrMalformed},
		{"claims null", edRaw(`null`), t0, nil, token.ErrMalformed},
		{"data after the claims", edRaw(payload(nil) + `{}`), t0, nil, token.ErrMalformed},
		{"claims not UTF-8", edRaw(strings.Replace(payload(nil), "mcp:read", "mcp:\xffread", 1)), t0, nil, token.ErrMalformed},
		{"exp a string", edToken(func(c map[string]any) { c["exp"] = "1748780100" }), t0, nil, token.ErrMalformed},
		{"exp out of range", edToken(func(c map[string]any) { c["exp"] = 1e300 }), t0, nil, token.ErrMalformed},
		{"loa a fraction", edToken(func(c map[string]any) { c["loa"] = 2.5 }), t0, nil, token.ErrMalformed},
		{"loa a string", edToken(func(c map[string]any) { c["loa"] = "4" }), t0, nil, token.ErrMalformed},
		{"aud a number", edToken(func(c map[string]any) { c["aud"] = 1 }), t0, nil, token.ErrMalformed},
		{"aud with a number in it", edToken(func(c map[string]any) { c["aud"] = []any{audience, 1} }), t0, nil, token.ErrMalformed},
		{"sub an object", edToken(func(c map[string]any) { c["sub"] = map[string]any{"ans": ans} }), t0, nil, token.ErrMalformed},
		{"artifact a string", edToken(func(c map[string]any) { c["artifact"] = "repo-1" }), t0, nil, token.ErrMalformed},

		// Claim rules.
		{"expired at exp exactly", genuine, t0.Add(15 * time.Minute), nil, token.ErrExpired},
		{"exp null", edToken(func(c map[string]any) { c["exp"] = nil }), t0, nil, token.ErrExpired},
		{"issued in the future", edToken(func(c map[string]any) { c["iat"] = t0.Add(time.Second).Unix() }), t0, nil, token.ErrNotYetValid},
		{"no issuer", edToken(func(c map[string]any) { delete(c, "iss") }), t0, nil, token.ErrIssuer},
		{"issuer differing in case", edToken(func(c map[string]any) { c["iss"] = strings.ToUpper(issuer) }), t0, nil, token.ErrIssuer},
		{"no aud", edToken(func(c map[string]any) { delete(c, "aud") }), t0, nil, token.ErrAudience},
		{"empty aud array", edToken(func(c map[string]any) { c["aud"] = []string{} }), t0, nil, token.ErrAudience},
		{"aud naming a prefix of ours", edToken(func(c map[string]any) { c["aud"] = "https://mcp.example.com" }), t0, nil, token.ErrAudience},
		{"no sub", edToken(func(c map[string]any) { delete(c, "sub") }), t0, nil, token.ErrMissingClaim},
		{"no jti", edToken(func(c map[string]any) { delete(c, "jti") }), t0, nil, token.ErrMissingClaim},
		{"no org", edToken(func(c map[string]any) { delete(c, "org") }), t0, nil, token.ErrMissingClaim},
		{"no ans", edToken(func(c map[string]any) { delete(c, "ans") }), t0, nil, token.ErrMissingClaim},
		{"sub is not ans", edToken(func(c map[string]any) { c["sub"] = "ans://v1.0.0.other.agents.acme.example" }), t0, nil, token.ErrMissingClaim},
		{"jti not a UUID", edToken(func(c map[string]any) { c["jti"] = "token-1" }), t0, nil, token.ErrMissingClaim},
		{"jti a UUID in upper case", edToken(func(c map[string]any) { c["jti"] = strings.ToUpper(jti) }), t0, nil, token.ErrMissingClaim},
		{"jti a braced UUID", edToken(func(c map[string]any) { c["jti"] = "{" + jti + "}" }), t0, nil, token.ErrMissingClaim},
		{"another organization", edToken(func(c map[string]any) { c["org"] = agentID }), t0, nil, token.ErrMissingClaim},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := tc.keys
			if keys == nil {
				keys = testKeys
			}
			w := expect
			w.Now = tc.at
			got, err := token.Verify(tc.raw, keys, w)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !reflect.DeepEqual(got, token.Claims{}) {
				t.Fatalf("claims returned with an error: %+v", got)
			}
		})
	}
}

func TestVerifyFailsClosedOnAnEmptyExpectation(t *testing.T) {
	raw := edToken(nil)
	// A token whose claims are empty where the expectation is.
	blank := edToken(func(c map[string]any) { c["iss"], c["aud"] = "", "" })
	tests := []struct {
		name string
		raw  string
		edit func(*token.Expect)
		want error
	}{
		{"no issuer", raw, func(e *token.Expect) { e.Issuer = "" }, token.ErrIssuer},
		{"no issuer, token with an empty iss", blank, func(e *token.Expect) { e.Issuer = "" }, token.ErrIssuer},
		{"no audience", raw, func(e *token.Expect) { e.Audience = "" }, token.ErrAudience},
		{"no audience, token with an empty aud", edToken(func(c map[string]any) { c["aud"] = "" }), func(e *token.Expect) { e.Audience = "" }, token.ErrAudience},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := expect
			tc.edit(&w)
			if _, err := token.Verify(tc.raw, testKeys, w); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyChecksTheOrganizationOnlyWhenExpected(t *testing.T) {
	other := edToken(func(c map[string]any) { c["org"] = agentID })
	w := expect
	w.Organization = ""
	if _, err := token.Verify(other, testKeys, w); err != nil {
		t.Fatalf("without an expected organization: %v", err)
	}
	if _, err := token.Verify(edToken(func(c map[string]any) { delete(c, "org") }), testKeys, w); !errors.Is(err, token.ErrMissingClaim) {
		t.Fatalf("a token without org, with no organization expected: %v", err)
	}
	if _, err := token.Verify(other, testKeys, expect); !errors.Is(err, token.ErrMissingClaim) {
		t.Fatalf("another organization's token: %v", err)
	}
}

func TestVerifyUsesTheClockWhenNowIsZero(t *testing.T) {
	now := time.Now()
	raw := edToken(func(c map[string]any) {
		c["nbf"], c["iat"], c["exp"] = now.Unix(), now.Unix(), now.Add(time.Hour).Unix()
	})
	w := expect
	w.Now = time.Time{}
	if _, err := token.Verify(raw, testKeys, w); err != nil {
		t.Fatalf("a token valid now is refused: %v", err)
	}
	if _, err := token.Verify(edToken(nil), testKeys, w); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("a token of 2025 is not expired now: %v", err)
	}
}

func TestNegativeLeewayIsNone(t *testing.T) {
	w := expect
	w.Now, w.Leeway = t0.Add(15*time.Minute-time.Second), -time.Hour
	if _, err := token.Verify(edToken(nil), testKeys, w); err != nil {
		t.Fatalf("negative leeway shortened the token's life: %v", err)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("other"), ""},
		{token.ErrMalformed, "token_malformed"},
		{token.ErrUnsupportedAlgorithm, "token_algorithm"},
		{token.ErrUnknownKey, "token_unknown_key"},
		{token.ErrBadSignature, "token_signature"},
		{token.ErrType, "token_type"},
		{token.ErrIssuer, "token_issuer"},
		{token.ErrAudience, "token_audience"},
		{token.ErrExpired, "token_expired"},
		{token.ErrNotYetValid, "token_not_yet_valid"},
		{token.ErrMissingClaim, "token_claims"},
	}
	for _, tc := range tests {
		if got := token.Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	_, err := verifyAt(edToken(nil), t0.Add(time.Hour))
	if got := token.Reason(err); got != "token_expired" {
		t.Errorf("Reason of Verify's wrapped error %v = %q", err, got)
	}
	codes := token.Reasons()
	if len(codes) != len(tests)-2 {
		t.Errorf("Reasons() = %q: not one code per sentinel", codes)
	}
	for _, tc := range tests[2:] {
		if !slices.Contains(codes, tc.want) {
			t.Errorf("Reasons() lacks %q", tc.want)
		}
	}
	slices.Sort(codes)
	if len(slices.Compact(codes)) != len(tests)-2 {
		t.Errorf("Reasons() repeats a code: %q", codes)
	}
}

func TestScopes(t *testing.T) {
	tests := []struct {
		scope string
		want  []string
	}{
		{"", nil},
		{"mcp:read", []string{"mcp:read"}},
		{"mcp:read mcp:tools deploy", []string{"mcp:read", "mcp:tools", "deploy"}},
		{" mcp:read  deploy ", []string{"mcp:read", "deploy"}},
	}
	for _, tc := range tests {
		c := token.Claims{Scope: tc.scope}
		got := c.Scopes()
		if len(got) == 0 && len(tc.want) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Scopes of %q = %q, want %q", tc.scope, got, tc.want)
		}
		for _, s := range tc.want {
			if !c.HasScope(s) {
				t.Errorf("HasScope(%q) false in %q", s, tc.scope)
			}
		}
	}
	c := token.Claims{Scope: "mcp:read mcp:tools"}
	for _, s := range []string{"", "mcp", "mcp:read mcp:tools", "mcp:tool", "MCP:READ", " "} {
		if c.HasScope(s) {
			t.Errorf("HasScope(%q) true in %q", s, c.Scope)
		}
	}
	if n := testing.AllocsPerRun(100, func() { c.HasScope("mcp:tools") }); n != 0 {
		t.Errorf("HasScope allocates %v times", n)
	}
}

// lookup is a Keys made of a function.
type lookup func(string) (token.Key, bool)

func (l lookup) Key(kid string) (token.Key, bool) { return l(kid) }

// rawJSON puts JSON text into a payload as is.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// nonCanonical changes the unused low bits of the last character of an
// unpadded base64url segment, which a lenient decoder ignores.
func nonCanonical(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

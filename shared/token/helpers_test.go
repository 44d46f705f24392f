package token_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/knaight/knaight/shared/token"
)

// The tests mint tokens with the standard library, as the manager's
// golang-jwt lays them out: header and claims are JSON, each segment is
// unpadded base64url, and the signature is over "header.payload".

const (
	issuer   = "https://knaight.example.com"
	audience = "https://mcp.example.com/mcp"
	org      = "4b0c5e0e-7c53-4f6e-9a57-1b2f6d1c9e01"
	agentID  = "9d3f2a61-0b7e-4c1a-8e5d-6f2b7c8d9e0a"
	jti      = "1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
	ans      = "ans://v1.0.0.bot.agents.acme.example"
)

var (
	t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	edPrivate = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	edKey     = token.Key{ID: "ed_test", Algorithm: token.EdDSA, Public: edPrivate.Public().(ed25519.PublicKey)}
	hsKey     = token.Key{ID: "hs_test", Algorithm: token.HS256, Secret: []byte("0123456789abcdef0123456789abcdef")}
	testKeys  = token.KeyMap{edKey.ID: edKey, hsKey.ID: hsKey}

	expect = token.Expect{Issuer: issuer, Audience: audience, Organization: org, Now: t0}

	// otherPrivate is an Ed25519 key the verifier does not know.
	otherPrivate = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// header returns the JSON header of a token of alg under kid, after edit.
func header(alg token.Algorithm, kid string, edit func(map[string]any)) string {
	h := map[string]any{"alg": string(alg), "typ": "at+jwt", "kid": kid}
	if edit != nil {
		edit(h)
	}
	return mustJSON(h)
}

// payload returns the JSON claims the manager issues at t0, after edit.
func payload(edit func(map[string]any)) string {
	c := map[string]any{
		"iss": issuer, "sub": ans, "aud": []string{audience},
		"exp": t0.Add(15 * time.Minute).Unix(), "nbf": t0.Unix(), "iat": t0.Unix(), "jti": jti,
		"org": org, "agent_id": agentID, "ans": ans, "loa": 2, "scope": "mcp:read mcp:tools",
	}
	if edit != nil {
		edit(c)
	}
	return mustJSON(c)
}

// signEd signs input with an Ed25519 private key.
func signEd(priv ed25519.PrivateKey) func(string) []byte {
	return func(input string) []byte { return ed25519.Sign(priv, []byte(input)) }
}

// signHS signs input with HMAC-SHA256.
func signHS(secret []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

// mint assembles a token from raw header and payload JSON, signed by sign
// (nil: an empty signature, as alg none has).
func mint(headerJSON, payloadJSON string, sign func(string) []byte) string {
	input := b64(headerJSON) + "." + b64(payloadJSON)
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// edToken is a genuine EdDSA token, after edit of its claims.
func edToken(edit func(map[string]any)) string {
	return mint(header(token.EdDSA, edKey.ID, nil), payload(edit), signEd(edPrivate))
}

// hsToken is a genuine HS256 token, after edit of its claims.
func hsToken(edit func(map[string]any)) string {
	return mint(header(token.HS256, hsKey.ID, nil), payload(edit), signHS(hsKey.Secret))
}

// edRaw is an EdDSA token with exactly the given payload JSON.
func edRaw(payloadJSON string) string {
	return mint(header(token.EdDSA, edKey.ID, nil), payloadJSON, signEd(edPrivate))
}

// resign replaces the signature of raw's first two segments with a genuine
// one, so that the fuzzer can reach the claims: HMAC when the header names
// the HS256 key, Ed25519 otherwise.
func resign(raw string) string {
	h, rest, _ := strings.Cut(raw, ".")
	p, _, _ := strings.Cut(rest, ".")
	sign := signEd(edPrivate)
	if hj, err := base64.RawURLEncoding.DecodeString(h); err == nil && bytes.Contains(hj, []byte(hsKey.ID)) {
		sign = signHS(hsKey.Secret)
	}
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(sign(h+"."+p))
}

// genuineClaims are the claims of payload(nil).
func genuineClaims() token.Claims {
	return token.Claims{
		Issuer: issuer, Subject: ans, Audience: []string{audience},
		ExpiresAt: t0.Add(15 * time.Minute), NotBefore: t0, IssuedAt: t0, ID: jti,
		Organization: org, AgentID: agentID, ANSName: ans, LoA: 2, Scope: "mcp:read mcp:tools",
	}
}

func keysWith(k token.Key) token.KeyMap { return token.KeyMap{k.ID: k} }

// verifyAt verifies raw with the test keys at now.
func verifyAt(raw string, now time.Time) (token.Claims, error) {
	w := expect
	w.Now = now
	return token.Verify(raw, testKeys, w)
}

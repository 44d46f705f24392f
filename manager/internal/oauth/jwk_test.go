package oauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/knaight/knaight/manager/internal/fault"
)

func enc(b []byte) string { return b64.EncodeToString(b) }

func edJWK(t *testing.T, kid string) map[string]any {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": enc(pub), "kid": kid}
}

func ecJWK(t *testing.T, kid string) map[string]any {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "EC", "crv": "P-256", "x": enc(raw[1:33]), "y": enc(raw[33:]), "kid": kid, "use": "sig"}
}

func rsaJWK(t *testing.T, bits int, kid string) map[string]any {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "RSA", "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes()), "kid": kid, "alg": "PS256"}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestParseJWKSet(t *testing.T) {
	ed, ec, rs := edJWK(t, "ed"), ecJWK(t, "ec"), rsaJWK(t, 2048, "rs")
	set, err := ParseJWKSet(mustJSON(t, map[string]any{"keys": []any{ed, ec, rs}}))
	if err != nil {
		t.Fatal(err)
	}
	for i, alg := range []string{"EdDSA", "ES256", "PS256"} {
		if set.Keys[i].Alg != alg {
			t.Errorf("key %d alg %q, want %q", i, set.Keys[i].Alg, alg)
		}
		if _, _, err := set.Keys[i].publicKey(); err != nil {
			t.Errorf("key %d: %v", i, err)
		}
	}

	offCurve := with(ec, "y", enc(make([]byte, 32)))
	small := rsaJWK(t, 1024, "small")
	tests := []struct {
		name  string
		jwks  any
		field string
		msg   string
	}{
		{"not an object", []any{ed}, "jwks", "JWK Set"},
		{"no keys", map[string]any{}, "jwks.keys", "array"},
		{"empty", map[string]any{"keys": []any{}}, "jwks.keys", "1 to 5"},
		{"six keys", map[string]any{"keys": []any{ed, ed, ed, ed, ed, ed}}, "jwks.keys", "1 to 5"},
		{"private Ed25519 key", map[string]any{"keys": []any{with(ed, "d", "c2VjcmV0")}}, "jwks.keys[0].d", "private key material"},
		{"private RSA key", map[string]any{"keys": []any{with(rs, "p", "x", "q", "y")}}, "jwks.keys[0].p", "private key material"},
		{"symmetric key", map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}}}, "jwks.keys[0].k", "private key material"},
		{"no kid", map[string]any{"keys": []any{with(ed, "kid", nil)}}, "jwks.keys[0].kid", "required"},
		{"duplicate kid", map[string]any{"keys": []any{ed, with(ec, "kid", "ed")}}, "jwks.keys[1].kid", "duplicate"},
		{"unknown kty", map[string]any{"keys": []any{with(ed, "kty", "XYZ")}}, "jwks.keys[0].kty", "OKP"},
		{"X25519", map[string]any{"keys": []any{with(ed, "crv", "X25519")}}, "jwks.keys[0].crv", "Ed25519"},
		{"short x", map[string]any{"keys": []any{with(ed, "x", enc([]byte{1, 2}))}}, "jwks.keys[0].x", "32-byte"},
		{"padded x", map[string]any{"keys": []any{with(ed, "x", ed["x"].(string)+"=")}}, "jwks.keys[0].x", "32-byte"},
		{"P-384", map[string]any{"keys": []any{with(ec, "crv", "P-384")}}, "jwks.keys[0].crv", "P-256"},
		{"point off the curve", map[string]any{"keys": []any{offCurve}}, "jwks.keys[0].x", "not a point"},
		{"EC with an RSA alg", map[string]any{"keys": []any{with(ec, "alg", "RS256")}}, "jwks.keys[0].alg", "ES256"},
		{"RSA-1024", map[string]any{"keys": []any{small}}, "jwks.keys[0].n", "2048"},
		{"RSA without alg", map[string]any{"keys": []any{with(rs, "alg", nil)}}, "jwks.keys[0].alg", "RS256 or PS256"},
		{"RSA with HS256", map[string]any{"keys": []any{with(rs, "alg", "HS256")}}, "jwks.keys[0].alg", "RS256 or PS256"},
		{"even exponent", map[string]any{"keys": []any{with(rs, "e", enc([]byte{1, 0, 0}))}}, "jwks.keys[0].e", "odd"},
		{"encryption key", map[string]any{"keys": []any{with(ed, "use", "enc")}}, "jwks.keys[0].use", "sig"},
		{"kid not a string", map[string]any{"keys": []any{with(ed, "kid", 7)}}, "jwks.keys[0].kid", "string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJWKSet(mustJSON(t, tc.jwks))
			inv, ok := fault.AsInvalid(err)
			if !ok {
				t.Fatalf("err %v, want field errors", err)
			}
			for _, f := range inv.Errors {
				if f.Field == tc.field && strings.Contains(f.Message, tc.msg) {
					if tc.msg == "private key material" && f.Value != nil {
						t.Fatalf("a private member's value is repeated: %v", f.Value)
					}
					return
				}
			}
			t.Fatalf("no error at %s containing %q: %v", tc.field, tc.msg, err)
		})
	}
}

func TestMaxLoA(t *testing.T) {
	for method, want := range map[string]int{ClientSecretBasic: 2, ClientSecretPost: 2, PrivateKeyJWT: 3} {
		if got := MaxLoA(method); got != want {
			t.Errorf("MaxLoA(%s) = %d, want %d", method, got, want)
		}
	}
}

func TestErrorIs(t *testing.T) {
	err := errorf(ErrInvalidClient, "nope")
	if !errors.Is(err, ErrInvalidClient) || errors.Is(err, ErrInvalidRequest) || err.Status() != 401 || errorf(ErrInvalidScope, "x").Status() != 400 {
		t.Fatal("error kinds")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

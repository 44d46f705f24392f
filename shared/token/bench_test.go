package token_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/knaight/knaight/shared/token"
)

// BenchmarkVerify measures Verify against the bare signature check of the
// same signing input, the floor no verifier goes below: the difference is
// what parsing and the claim rules cost.
func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name string
		raw  string
	}{
		{"EdDSA", edToken(nil)},
		{"HS256", hsToken(nil)},
	} {
		dot := strings.LastIndexByte(tc.raw, '.')
		input := []byte(tc.raw[:dot])
		sig, err := base64.RawURLEncoding.DecodeString(tc.raw[dot+1:])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := token.Verify(tc.raw, testKeys, expect); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var ok bool
				if tc.name == "EdDSA" {
					ok = ed25519.Verify(edKey.Public, input, sig)
				} else {
					m := hmac.New(sha256.New, hsKey.Secret)
					m.Write(input)
					ok = hmac.Equal(m.Sum(nil), sig)
				}
				if !ok {
					b.Fatal("baseline does not verify")
				}
			}
		})
	}
}

// BenchmarkVerifyRefused measures a forgery refused at the header, before
// any signature work: what a flood of junk tokens costs.
func BenchmarkVerifyRefused(b *testing.B) {
	raw := mint(header("none", edKey.ID, nil), payload(nil), nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := token.Verify(raw, testKeys, expect); err == nil {
			b.Fatal("alg none verified")
		}
	}
}

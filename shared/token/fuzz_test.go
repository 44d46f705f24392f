package token_test

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/token"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzVerify from fuzzSeeds")

// fuzzSeeds are FuzzVerify's seed corpus, kept in testdata/fuzz/FuzzVerify
// (regenerate with go test -run TestFuzzSeedCorpus -update). With resign,
// the fuzzer's header and payload get a genuine signature, so that
// mutations reach the claims rather than stopping at the signature.
func fuzzSeeds() map[string]struct {
	raw    string
	resign bool
} {
	type seed = struct {
		raw    string
		resign bool
	}
	return map[string]seed{
		"genuine-eddsa": {edToken(nil), false},
		"genuine-hs256": {hsToken(nil), false},
		"artifact-and-client": {edToken(func(c map[string]any) {
			c["client_id"], c["artifact"], c["aud"] = "kc_abc", map[string]any{"id": "repo-1", "type": "repository"}, audience
		}), false},
		"alg-none":            {mint(header("none", edKey.ID, nil), payload(nil), nil), false},
		"hs256-with-ed-pub":   {mint(header(token.HS256, edKey.ID, nil), payload(nil), signHS(edKey.Public)), false},
		"typ-jwt":             {mint(header(token.EdDSA, edKey.ID, func(h map[string]any) { h["typ"] = "JWT" }), payload(nil), signEd(edPrivate)), false},
		"expired":             {edToken(func(c map[string]any) { c["exp"] = t0.Add(-time.Second).Unix() }), false},
		"padded":              {edToken(nil) + "==", false},
		"four-segments":       {edToken(nil) + ".e30", false},
		"duplicate-claims":    {edRaw(strings.Replace(payload(nil), `"iss":`, `"iss":"x","ISS":`, 1)), true},
		"claim-types":         {edToken(func(c map[string]any) { c["loa"], c["aud"], c["exp"] = 2.5, []any{audience, nil}, "1748780100" }), true},
		"nested-unknown":      {hsToken(func(c map[string]any) { c["x"] = []any{map[string]any{"a": []any{1, "b", nil, true}}} }), true},
		"fractional-dates":    {edToken(func(c map[string]any) { c["exp"], c["nbf"] = 1748781000.999, -0.5 }), true},
		"unicode-folded-name": {edRaw(strings.Replace(payload(nil), `"sub":`, `"ſub":"y","sub":`, 1)), true},
	}
}

// corpusFile is one seed in the go test fuzz v1 format.
func corpusFile(raw string, resign bool) string {
	return fmt.Sprintf("go test fuzz v1\nstring(%q)\nbool(%v)\n", raw, resign)
}

func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range fuzzSeeds() {
		path := filepath.Join(dir, name)
		want := corpusFile(s.raw, s.resign)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (%v): run go test -run TestFuzzSeedCorpus -update", path, err)
		}
	}
}

// FuzzVerify checks that Verify never panics, that errors always carry a
// reason and no claims, that whatever verifies satisfies every rule and
// verifies again identically, and that it stops verifying when one bit of
// its signature changes or the signature loses a byte.
func FuzzVerify(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string, sign bool) {
		if sign {
			raw = resign(raw)
		}
		c, err := token.Verify(raw, testKeys, expect)
		if err != nil {
			if token.Reason(err) == "" {
				t.Fatalf("error without a reason code: %v", err)
			}
			if !reflect.DeepEqual(c, token.Claims{}) {
				t.Fatalf("claims with an error: %+v", c)
			}
			return
		}
		switch {
		case c.Issuer != issuer, c.Organization != org, !slices.Contains(c.Audience, audience):
			t.Fatalf("iss, org or aud not as expected: %+v", c)
		case c.Subject == "" || c.Subject != c.ANSName || len(c.ID) != 36:
			t.Fatalf("sub, ans or jti wrong: %+v", c)
		case !expect.Now.Before(c.ExpiresAt), expect.Now.Before(c.NotBefore), expect.Now.Before(c.IssuedAt):
			t.Fatalf("times wrong: %+v", c)
		}
		again, err := token.Verify(raw, testKeys, expect)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("verified once, then %v %+v", err, again)
		}

		dot := strings.LastIndexByte(raw, '.')
		input, s64 := raw[:dot], raw[dot+1:]
		sig, err := base64.RawURLEncoding.DecodeString(s64)
		if err != nil || len(sig) == 0 {
			t.Fatalf("verified with signature %q: %v", s64, err)
		}
		flipped := slices.Clone(sig)
		flipped[len(raw)%len(sig)] ^= 1 << (len(raw) % 8)
		for _, bad := range [][]byte{flipped, sig[:len(sig)-1]} {
			forged := input + "." + base64.RawURLEncoding.EncodeToString(bad)
			if _, err := token.Verify(forged, testKeys, expect); !errors.Is(err, token.ErrBadSignature) {
				t.Fatalf("altered signature: %v, want %v", err, token.ErrBadSignature)
			}
		}
	})
}

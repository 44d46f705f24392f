package sign

import (
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

// fuzzHeaderNames are the names FuzzParseHeaders fills, in argument order.
var fuzzHeaderNames = [...]string{
	HeaderAgent, HeaderTimestamp, HeaderSignature, HeaderKeyID, HeaderOrganization,
	AliasHeaderAgent, AliasHeaderTimestamp, AliasHeaderSignature, AliasHeaderOrganization,
}

// fuzzHeader builds a case-insensitive header map: an empty argument leaves
// the header out, and "\n" separates repeated values.
func fuzzHeader(vals [9]string) header {
	h := header{}
	for i, v := range vals {
		if v == "" {
			continue
		}
		h[strings.ToLower(fuzzHeaderNames[i])] = strings.Split(v, "\n")
	}
	return h
}

func FuzzParseHeaders(f *testing.F) {
	sig := "hmac-sha256=60cb41be9586ab1e245e2f9f4fceacade9a2177257073d83030f0603d73dfa87"
	f.Add(deployBot, t0Stamp, sig, "hk_abc", "org-1", "", "", "", "")
	f.Add("", "", "", "", "", "service.knaight", t0Stamp, sig, "org-123")
	f.Add(deployBot, t0Stamp, sig, "", "", deployBot, t0Stamp, strings.ToUpper(sig), "")
	f.Add(deployBot, "2025-01-25T11:00:00.5+01:00", sig+"\n"+sig, "", "a\nb", "", "", "", "")
	f.Add(deployBot+"\x00", t0Stamp, "hmac-sha256=abc123...", " hk", "", "x", "", "", "")
	f.Add("ans://ü", "2024-02-29T23:59:59.999999999-23:59", "", "", "", "", "", sig, "org")
	f.Fuzz(func(t *testing.T, agent, ts, sg, kid, org, aAgent, aTS, aSig, aOrg string) {
		h, err := ParseHeaders(fuzzHeader([9]string{agent, ts, sg, kid, org, aAgent, aTS, aSig, aOrg}).get)
		if err != nil {
			if h != (Headers{}) {
				t.Fatalf("error %v with headers %+v", err, h)
			}
			return
		}
		if h.Agent == "" || h.Timestamp == "" || h.Signature == "" {
			t.Fatalf("required field empty: %+v", h)
		}
		if _, err := ParseSignature(h.Signature); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseTimestamp(h.Timestamp); err != nil {
			t.Fatal(err)
		}
		out := header{}
		h.Apply(func(name, value string) {
			k := strings.ToLower(name)
			if _, dup := out[k]; dup {
				t.Fatalf("Apply set %s twice", name)
			}
			out[k] = []string{value}
		})
		h2, err := ParseHeaders(out.get)
		if err != nil {
			t.Fatalf("round trip of %+v: %v", h, err)
		}
		if h2 != h {
			t.Fatalf("round trip: %+v, want %+v", h2, h)
		}
		// A parsed agent and timestamp always make a canonical string.
		if _, err := Canonical(Request{Method: "POST", Target: "/", BodySHA256: BodyDigest(nil), Agent: h.Agent, Timestamp: h.Timestamp}); err != nil {
			t.Fatalf("Canonical of parsed headers %+v: %v", h, err)
		}
	})
}

var signatureSyntax = regexp.MustCompile(`^hmac-sha256=[0-9a-fA-F]{64}$`)

func FuzzParseSignature(f *testing.F) {
	f.Add("hmac-sha256=60cb41be9586ab1e245e2f9f4fceacade9a2177257073d83030f0603d73dfa87")
	f.Add("hmac-sha256=60CB41BE9586AB1E245E2F9F4FCEACADE9A2177257073D83030F0603D73DFA87")
	f.Add("hmac-sha256=abc123...")
	f.Add("HMAC-SHA256=60cb41be9586ab1e245e2f9f4fceacade9a2177257073d83030f0603d73dfa87")
	f.Add("hmac-sha256=60cb41be9586ab1e245e2f9f4fceacade9a2177257073d83030f0603d73dfa8g")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		sum, err := ParseSignature(v)
		if (err == nil) != signatureSyntax.MatchString(v) {
			t.Fatalf("ParseSignature(%q) error %v disagrees with the syntax", v, err)
		}
		if err != nil {
			if sum != ([32]byte{}) {
				t.Fatal("non-zero result with an error")
			}
			return
		}
		if want := SignaturePrefix + hex.EncodeToString(sum[:]); want != strings.ToLower(v) {
			t.Fatalf("ParseSignature(%q) = %x", v, sum)
		}
	})
}

// FuzzSignMatchesReference checks Sign and Canonical against the reference
// implementation for any request Canonical accepts, and Key against Sign.
func FuzzSignMatchesReference(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), "POST", "/mcp?x=1", "body", deployBot, t0Stamp)
	f.Add([]byte(strings.Repeat("k", 100)), "get", "/a?", "", "service.knaight", "2025-01-25T10:00:00.1-01:00")
	f.Add([]byte(strings.Repeat("k", 64)), "GET", "/"+strings.Repeat("x", 700), "", "a", t0Stamp)
	f.Fuzz(func(t *testing.T, key []byte, method, target, body, agent, ts string) {
		in := vectorInput{Method: method, Target: target, Body: body, Agent: agent, Timestamp: ts}
		r := requestOf(in)
		c, err := Canonical(r)
		if err != nil {
			return
		}
		if want := refCanonical(in); c != want {
			t.Fatalf("Canonical = %q, want %q", c, want)
		}
		sig, err := Sign(key, r)
		if len(key) < MinKeySize {
			if err == nil {
				t.Fatal("short key accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := refSign(key, c); sig != want {
			t.Fatalf("Sign = %s, want %s", sig, want)
		}
		tm, _ := ParseTimestamp(ts)
		if err := (Verifier{Now: at(tm)}).Verify(key, r, sig); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		k := NewKey(key)
		if got, err := k.Sign(r); err != nil || got != sig {
			t.Fatalf("Key.Sign = %s, %v; want %s", got, err, sig)
		}
		if err := (Verifier{}).VerifyKeyAt(tm, k, r, sig); err != nil {
			t.Fatalf("VerifyKeyAt: %v", err)
		}
	})
}

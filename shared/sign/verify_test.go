package sign

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	testKey   = []byte("0123456789abcdef0123456789abcdef")
	otherKey  = []byte("fedcba9876543210fedcba9876543210")
	testBody  = []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy"}}`)
	t0        = time.Date(2025, 1, 25, 10, 0, 0, 0, time.UTC)
	t0Stamp   = "2025-01-25T10:00:00Z"
	testAgent = deployBot
)

func baseRequest() Request {
	return Request{Method: "POST", Target: "/mcp?session=1", BodySHA256: BodyDigest(testBody), Agent: testAgent, Timestamp: t0Stamp}
}

func mustSign(t testing.TB, key []byte, r Request) string {
	t.Helper()
	s, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestVerify(t *testing.T) {
	signed := baseRequest()
	sig := mustSign(t, testKey, signed)
	tests := []struct {
		name  string
		v     Verifier
		key   []byte
		edit  func(r *Request) // the request the verifier sees
		sig   string           // "" means sig
		want  error
		check func(t *testing.T, err error)
	}{
		{name: "good signature verifies"},
		{name: "upper-case hex verifies", sig: SignaturePrefix + strings.ToUpper(strings.TrimPrefix(sig, SignaturePrefix))},
		{name: "wrong key fails", key: otherKey, want: ErrBadSignature},
		{name: "tampered method fails", edit: func(r *Request) { r.Method = "PUT" }, want: ErrBadSignature},
		{name: "lower-case method is the same method", edit: func(r *Request) { r.Method = "post" }},
		{name: "tampered path fails", edit: func(r *Request) { r.Target = "/mcp/admin?session=1" }, want: ErrBadSignature},
		{name: "tampered query fails", edit: func(r *Request) { r.Target = "/mcp?session=2" }, want: ErrBadSignature},
		{name: "dropped query fails", edit: func(r *Request) { r.Target = "/mcp" }, want: ErrBadSignature},
		{name: "percent-encoding is not normalized", edit: func(r *Request) { r.Target = "/%6Dcp?session=1" }, want: ErrBadSignature},
		{name: "tampered body fails", edit: func(r *Request) { r.BodySHA256 = BodyDigest([]byte(`{"jsonrpc":"2.0","id":7}`)) }, want: ErrBadSignature},
		{name: "tampered agent fails", edit: func(r *Request) { r.Agent = "ans://v1.0.0.other-bot.agents.example.com" }, want: ErrBadSignature},
		{name: "tampered timestamp fails", edit: func(r *Request) { r.Timestamp = "2025-01-25T10:00:01Z" }, want: ErrBadSignature},
		{name: "same instant written differently fails", edit: func(r *Request) { r.Timestamp = "2025-01-25T11:00:00+01:00" }, want: ErrBadSignature},
		{name: "signature of another request fails", sig: mustSign(t, testKey, Request{Method: "GET", Target: "/mcp", BodySHA256: BodyDigest(nil), Agent: testAgent, Timestamp: t0Stamp}), want: ErrBadSignature},

		{name: "timestamp exactly skew in the past is accepted", v: Verifier{Now: at(t0.Add(DefaultSkew))}},
		{name: "timestamp skew+1s in the past is stale", v: Verifier{Now: at(t0.Add(DefaultSkew + time.Second))}, want: ErrStale},
		{name: "timestamp exactly skew in the future is accepted", v: Verifier{Now: at(t0.Add(-DefaultSkew))}},
		{name: "timestamp skew+1s in the future fails", v: Verifier{Now: at(t0.Add(-DefaultSkew - time.Second))}, want: ErrFuture},
		{name: "custom skew boundary is accepted", v: Verifier{Skew: 30 * time.Second, Now: at(t0.Add(30 * time.Second))}},
		{name: "custom skew+1s is stale", v: Verifier{Skew: 30 * time.Second, Now: at(t0.Add(31 * time.Second))}, want: ErrStale},
		{name: "negative skew means the default", v: Verifier{Skew: -time.Second, Now: at(t0.Add(DefaultSkew))}},
		{name: "a stale request reports staleness before the signature", v: Verifier{Now: at(t0.Add(time.Hour))}, key: otherKey, want: ErrStale},

		{name: "malformed timestamp fails", edit: func(r *Request) { r.Timestamp = "2025-01-25 10:00:00Z" }, want: ErrMalformedTimestamp},
		{name: "timestamp without zone fails", edit: func(r *Request) { r.Timestamp = "2025-01-25T10:00:00" }, want: ErrMalformedTimestamp},
		{name: "signature without prefix fails", sig: strings.TrimPrefix(sig, SignaturePrefix), want: ErrMalformedSignature},
		{name: "signature with upper-case prefix fails", sig: "HMAC-SHA256=" + strings.TrimPrefix(sig, SignaturePrefix), want: ErrMalformedSignature},
		{name: "signature too short fails", sig: sig[:len(sig)-2], want: ErrMalformedSignature},
		{name: "signature too long fails", sig: sig + "00", want: ErrMalformedSignature},
		{name: "non-hex signature fails", sig: sig[:len(sig)-1] + "g", want: ErrMalformedSignature},
		{name: "empty signature fails", sig: " ", want: ErrMalformedSignature},
		{name: "short key is refused", key: []byte("0123456789abcde"), want: ErrWeakKey},
		{name: "unset body digest is refused", edit: func(r *Request) { r.BodySHA256 = [32]byte{} }, want: ErrInvalidRequest},
		{name: "control character in the target is refused", edit: func(r *Request) { r.Target = "/mcp\nX: y" }, want: ErrInvalidRequest},
		{name: "target not in origin form is refused", edit: func(r *Request) { r.Target = "http://example.com/mcp" }, want: ErrInvalidRequest},
		{name: "invalid UTF-8 in the target is refused", edit: func(r *Request) { r.Target = "/mcp\xff" }, want: ErrInvalidRequest},
		{name: "DEL in the agent is refused", edit: func(r *Request) { r.Agent += "\x7f" }, want: ErrInvalidRequest},
		{name: "agent with a trailing space is refused", edit: func(r *Request) { r.Agent += " " }, want: ErrInvalidRequest},
		{name: "method that is not a token is refused", edit: func(r *Request) { r.Method = "PO ST" }, want: ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.v
			if v.Now == nil {
				v.Now = at(t0)
			}
			key := tt.key
			if key == nil {
				key = testKey
			}
			r := signed
			if tt.edit != nil {
				tt.edit(&r)
			}
			s := tt.sig
			if s == "" {
				s = sig
			}
			err := v.Verify(key, r, s)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			// VerifyAt at the instant Now gives decides the same, without
			// reading Now.
			now := v.Now()
			w := v
			w.Now = func() time.Time { t.Error("VerifyAt read Now"); return time.Time{} }
			if got := w.VerifyAt(now, key, r, s); fmt.Sprint(got) != fmt.Sprint(err) {
				t.Fatalf("VerifyAt = %v, Verify = %v", got, err)
			}
			// And so does VerifyKeyAt with the key prepared.
			if got := w.VerifyKeyAt(now, NewKey(key), r, s); fmt.Sprint(got) != fmt.Sprint(err) {
				t.Fatalf("VerifyKeyAt = %v, Verify = %v", got, err)
			}
		})
	}
}

func TestVerifyAtDoesNotAllocate(t *testing.T) {
	r := baseRequest()
	sig := mustSign(t, testKey, r)
	v := Verifier{}
	if n := testing.AllocsPerRun(100, func() {
		if err := v.VerifyAt(t0, testKey, r, sig); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("VerifyAt allocates %v times", n)
	}
}

func TestVerifyFractionalTimestampBoundary(t *testing.T) {
	r := baseRequest()
	r.Timestamp = "2025-01-25T10:05:00.001Z" // 1 ms beyond the window
	sig := mustSign(t, testKey, r)
	if err := (Verifier{Now: at(t0)}).Verify(testKey, r, sig); !errors.Is(err, ErrFuture) {
		t.Fatalf("Verify = %v, want ErrFuture", err)
	}
	r.Timestamp = "2025-01-25T11:05:00+01:00" // exactly the window, in another zone
	sig = mustSign(t, testKey, r)
	if err := (Verifier{Now: at(t0)}).Verify(testKey, r, sig); err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
}

func TestVerifyZeroVerifierUsesTheClock(t *testing.T) {
	r := baseRequest()
	r.Timestamp = time.Now().UTC().Format(time.RFC3339)
	if err := (Verifier{}).Verify(testKey, r, mustSign(t, testKey, r)); err != nil {
		t.Fatal(err)
	}
	r.Timestamp = t0Stamp
	if err := (Verifier{}).Verify(testKey, r, mustSign(t, testKey, r)); !errors.Is(err, ErrStale) {
		t.Fatalf("Verify = %v, want ErrStale", err)
	}
}

func TestSignRefuses(t *testing.T) {
	if _, err := Sign([]byte("short"), baseRequest()); !errors.Is(err, ErrWeakKey) {
		t.Errorf("short key: %v", err)
	}
	r := baseRequest()
	r.Timestamp = "yesterday"
	if _, err := Sign(testKey, r); !errors.Is(err, ErrMalformedTimestamp) {
		t.Errorf("bad timestamp: %v", err)
	}
	r = baseRequest()
	r.Agent = ""
	if _, err := Sign(testKey, r); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty agent: %v", err)
	}
	if b, err := AppendCanonical([]byte("keep"), r); !errors.Is(err, ErrInvalidRequest) || string(b) != "keep" {
		t.Errorf("AppendCanonical = %q, %v", b, err)
	}
}

func TestParseTimestamp(t *testing.T) {
	good := []struct {
		in   string
		want time.Time
	}{
		{"2025-01-25T10:00:00Z", t0},
		{"2025-01-25T10:00:00.5Z", t0.Add(500 * time.Millisecond)},
		{"2025-01-25T10:00:00.123456789Z", t0.Add(123456789)},
		{"2025-01-25T11:30:00+01:30", t0},
		{"2025-01-25T05:00:00-05:00", t0},
		{"2025-01-25T10:00:00-00:00", t0},
		{"2024-02-29T00:00:00Z", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range good {
		got, err := ParseTimestamp(tt.in)
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v in UTC", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{
		"", "2025-01-25", "2025-01-25T10:00Z", "2025-01-25t10:00:00Z", "2025-01-25T10:00:00z",
		"2025-01-25 10:00:00Z", "2025-01-25T10:00:00", "2025-01-25T10:00:00.Z", "2025-01-25T10:00:00.1234567890Z",
		"2025-01-25T10:00:00,5Z", "2025-01-25T10:00:60Z", "2025-01-25T24:00:00Z", "2025-02-29T10:00:00Z",
		"2025-13-01T10:00:00Z", "2025-00-01T10:00:00Z", "2025-01-00T10:00:00Z", "2025-01-25T10:00:00+0100",
		"2025-01-25T10:00:00+24:00", "2025-01-25T10:00:00Z ", " 2025-01-25T10:00:00Z", "+025-01-25T10:00:00Z",
		"2025-01-25T10:00:00ZZ", "2025-01-25T10:00:00GMT", "1737799200",
	} {
		if _, err := ParseTimestamp(in); !errors.Is(err, ErrMalformedTimestamp) {
			t.Errorf("ParseTimestamp(%q) = %v, want ErrMalformedTimestamp", in, err)
		}
	}
}

// header is a case-insensitive header map like a proxy-wasm one.
type header map[string][]string

func (h header) get(name string) []string { return h[strings.ToLower(name)] }

func hdr(kv ...string) header {
	h := header{}
	for i := 0; i < len(kv); i += 2 {
		k := strings.ToLower(kv[i])
		h[k] = append(h[k], kv[i+1])
	}
	return h
}

func TestParseHeaders(t *testing.T) {
	sig := mustSign(t, testKey, baseRequest())
	tests := []struct {
		name string
		h    header
		want Headers
		err  error
	}{
		{name: "X-Knaight-* form parses",
			h:    hdr(HeaderAgent, testAgent, HeaderTimestamp, t0Stamp, HeaderSignature, sig, HeaderKeyID, "hk_abc", HeaderOrganization, "org-1"),
			want: Headers{Agent: testAgent, Timestamp: t0Stamp, Signature: sig, KeyID: "hk_abc", Organization: "org-1"}},
		{name: "X-SCK-* form parses as alias",
			h:    hdr("X-SCK-ANS-ID", "service.knaight", "X-SCK-Timestamp", t0Stamp, "X-SCK-Signature", sig, "X-SCK-Organization", "org-123"),
			want: Headers{Agent: "service.knaight", Timestamp: t0Stamp, Signature: sig, Organization: "org-123", Alias: true}},
		{name: "names match in any case",
			h:    hdr("x-knaight-agent", testAgent, "X-KNAIGHT-TIMESTAMP", t0Stamp, "x-sck-signature", sig),
			want: Headers{Agent: testAgent, Timestamp: t0Stamp, Signature: sig, Alias: true}},
		{name: "both forms with the same value are accepted",
			h:    hdr(HeaderAgent, testAgent, AliasHeaderAgent, testAgent, HeaderTimestamp, t0Stamp, HeaderSignature, sig),
			want: Headers{Agent: testAgent, Timestamp: t0Stamp, Signature: sig, Alias: true}},
		{name: "identical repetition is accepted",
			h:    hdr(HeaderAgent, testAgent, HeaderAgent, testAgent, HeaderTimestamp, t0Stamp, HeaderSignature, sig),
			want: Headers{Agent: testAgent, Timestamp: t0Stamp, Signature: sig}},
		{name: "conflicting alias agent is ambiguous",
			h:   hdr(HeaderAgent, testAgent, AliasHeaderAgent, "service.knaight", HeaderTimestamp, t0Stamp, HeaderSignature, sig),
			err: ErrMalformedHeader},
		{name: "conflicting alias timestamp is ambiguous",
			h:   hdr(HeaderAgent, testAgent, HeaderTimestamp, t0Stamp, AliasHeaderTimestamp, "2025-01-25T10:00:01Z", HeaderSignature, sig),
			err: ErrMalformedHeader},
		{name: "conflicting alias signature is ambiguous",
			h:   hdr(HeaderAgent, testAgent, HeaderTimestamp, t0Stamp, HeaderSignature, sig, AliasHeaderSignature, strings.ToUpper(sig)),
			err: ErrMalformedHeader},
		{name: "conflicting alias organization is ambiguous",
			h:   hdr(HeaderAgent, testAgent, HeaderTimestamp, t0Stamp, HeaderSignature, sig, HeaderOrganization, "a", AliasHeaderOrganization, "b"),
			err: ErrMalformedHeader},
		{name: "repetition with different values is ambiguous",
			h:   hdr(HeaderAgent, testAgent, HeaderAgent, "other", HeaderTimestamp, t0Stamp, HeaderSignature, sig),
			err: ErrMalformedHeader},
		{name: "repeated key id with different values is ambiguous",
			h:   hdr(HeaderAgent, testAgent, HeaderTimestamp, t0Stamp, HeaderSignature, sig, HeaderKeyID, "hk_a", HeaderKeyID, "hk_b"),
			err: ErrMalformedHeader},
		{name: "missing agent", h: hdr(HeaderTimestamp, t0Stamp, HeaderSignature, sig), err: ErrMissingHeader},
		{name: "missing timestamp", h: hdr(HeaderAgent, testAgent, HeaderSignature, sig), err: ErrMissingHeader},
		{name: "missing signature", h: hdr(HeaderAgent, testAgent, HeaderTimestamp, t0Stamp), err: ErrMissingHeader},
		{name: "empty agent is malformed", h: hdr(HeaderAgent, "", HeaderTimestamp, t0Stamp, HeaderSignature, sig), err: ErrMalformedHeader},
		{name: "control character is malformed", h: hdr(HeaderAgent, "a\x00b", HeaderTimestamp, t0Stamp, HeaderSignature, sig), err: ErrMalformedHeader},
		{name: "surrounding space is malformed", h: hdr(HeaderAgent, testAgent, HeaderTimestamp, t0Stamp, HeaderSignature, sig, HeaderKeyID, " hk_a"), err: ErrMalformedHeader},
		{name: "malformed timestamp", h: hdr(HeaderAgent, testAgent, HeaderTimestamp, "Sat, 25 Jan 2025 10:00:00 GMT", HeaderSignature, sig), err: ErrMalformedTimestamp},
		{name: "malformed signature", h: hdr(HeaderAgent, testAgent, HeaderTimestamp, t0Stamp, HeaderSignature, "sha256=abc123"), err: ErrMalformedSignature},
		{name: "milestone 3 placeholder signature is malformed", h: hdr(AliasHeaderAgent, "service.knaight", AliasHeaderTimestamp, t0Stamp, AliasHeaderSignature, "hmac-sha256=abc123..."), err: ErrMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeaders(tt.h.get)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseHeaders = %+v, %v; want %v", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseHeaders = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	h := Headers{Agent: "a", Timestamp: t0Stamp, Signature: "s", KeyID: "k", Organization: "o"}
	got := map[string]string{}
	h.Apply(func(n, v string) { got[n] = v })
	want := map[string]string{HeaderAgent: "a", HeaderTimestamp: t0Stamp, HeaderSignature: "s", HeaderKeyID: "k", HeaderOrganization: "o"}
	if len(got) != len(want) {
		t.Fatalf("Apply set %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	h.Alias, h.KeyID, h.Organization = true, "", ""
	got = map[string]string{}
	h.Apply(func(n, v string) { got[n] = v })
	if len(got) != 3 || got[AliasHeaderAgent] != "a" || got[AliasHeaderTimestamp] != t0Stamp || got[AliasHeaderSignature] != "s" {
		t.Fatalf("Apply with Alias set %v", got)
	}
}

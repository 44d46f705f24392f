package sign

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var (
	testKey  = bytes.Repeat([]byte{0x42}, 32)
	testNow  = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	testBody = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}`)
)

func testRequest(ts time.Time) Request {
	return Request{Method: "POST", Target: "/mcp?x=1", BodySHA256: BodyDigest(testBody), Agent: deployBot, Timestamp: ts.Format(time.RFC3339)}
}

func mustSign(t testing.TB, key []byte, r Request) string {
	t.Helper()
	s, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	good := testRequest(testNow)
	sig := mustSign(t, testKey, good)
	at := func(d time.Duration) Request { return testRequest(testNow.Add(d)) }
	change := func(f func(*Request)) Request { r := good; f(&r); return r }
	tests := []struct {
		name string
		key  []byte
		req  Request
		sig  string
		want error
	}{
		{"a good signature verifies", testKey, good, sig, nil},
		{"upper-case hex verifies", testKey, good, "hmac-sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "hmac-sha256=")), nil},
		{"another key fails", bytes.Repeat([]byte{0x43}, 32), good, sig, ErrBadSignature},
		{"another method fails", testKey, change(func(r *Request) { r.Method = "PUT" }), sig, ErrBadSignature},
		{"another target fails", testKey, change(func(r *Request) { r.Target = "/mcp?x=2" }), sig, ErrBadSignature},
		{"another body fails", testKey, change(func(r *Request) { r.BodySHA256 = BodyDigest([]byte("{}")) }), sig, ErrBadSignature},
		{"another agent fails", testKey, change(func(r *Request) { r.Agent = "ans://v1.0.0.other.example.com" }), sig, ErrBadSignature},
		{"another timestamp fails", testKey, change(func(r *Request) { r.Timestamp = testNow.Add(time.Second).Format(time.RFC3339) }), sig, ErrBadSignature},
		{"exactly the window in the past verifies", testKey, at(-DefaultSkew), mustSign(t, testKey, at(-DefaultSkew)), nil},
		{"exactly the window in the future verifies", testKey, at(DefaultSkew), mustSign(t, testKey, at(DefaultSkew)), nil},
		{"one second beyond the past window is stale", testKey, at(-DefaultSkew - time.Second), mustSign(t, testKey, at(-DefaultSkew-time.Second)), ErrStale},
		{"one second beyond the future window fails", testKey, at(DefaultSkew + time.Second), mustSign(t, testKey, at(DefaultSkew+time.Second)), ErrFuture},
		{"a malformed timestamp fails", testKey, change(func(r *Request) { r.Timestamp = "25/01/2025" }), sig, ErrMalformedTimestamp},
		{"a signature without its prefix fails", testKey, good, strings.TrimPrefix(sig, "hmac-sha256="), ErrMalformedSignature},
		{"a short signature fails", testKey, good, sig[:len(sig)-2], ErrMalformedSignature},
		{"a non-hex signature fails", testKey, good, sig[:len(sig)-1] + "g", ErrMalformedSignature},
		{"a weak key is refused", []byte("short"), good, sig, ErrWeakKey},
		{"a target without a slash fails", testKey, change(func(r *Request) { r.Target = "mcp" }), sig, ErrInvalidRequest},
		{"a newline in the agent fails", testKey, change(func(r *Request) { r.Agent = "a\nb" }), sig, ErrInvalidRequest},
		{"an unset body digest fails", testKey, change(func(r *Request) { r.BodySHA256 = [32]byte{} }), sig, ErrInvalidRequest},
	}
	v := Verifier{Now: func() time.Time { return testNow }}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(tc.key, tc.req, tc.sig)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReplayIsRejectedWithinTheWindowAndForgottenAfter(t *testing.T) {
	now := testNow
	clock := func() time.Time { return now }
	cache := NewMemoryReplayCache(10)
	cache.Now = clock
	v := Verifier{Now: clock, Replay: cache}
	r := testRequest(testNow)
	sig := mustSign(t, testKey, r)
	if err := v.Verify(testKey, r, sig); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(testKey, r, sig); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use: %v, want ErrReplay", err)
	}
	// A bad signature is never recorded, so it cannot fill the cache.
	bad := mustSign(t, bytes.Repeat([]byte{1}, 32), r)
	for range 20 {
		if err := v.Verify(testKey, r, bad); !errors.Is(err, ErrBadSignature) {
			t.Fatal(err)
		}
	}
	if cache.Len() != 1 {
		t.Fatalf("cache holds %d entries, want 1", cache.Len())
	}
	// Past the window the signature is stale anyway, and the cache forgets it.
	now = testNow.Add(DefaultSkew + time.Second)
	if err := v.Verify(testKey, r, sig); !errors.Is(err, ErrStale) {
		t.Fatalf("after the window: %v, want ErrStale", err)
	}
	cache.Seen([32]byte{9}, now.Add(time.Minute))
	if cache.Len() != 1 {
		t.Fatalf("expired entries kept: %d", cache.Len())
	}
}

func TestFullReplayCacheFailsClosed(t *testing.T) {
	cache := NewMemoryReplayCache(2)
	cache.Now = func() time.Time { return testNow }
	v := Verifier{Now: cache.Now, Replay: cache}
	for i := range 3 {
		r := testRequest(testNow.Add(time.Duration(i) * time.Second))
		err := v.Verify(testKey, r, mustSign(t, testKey, r))
		if i < 2 && err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == 2 && !errors.Is(err, ErrReplay) {
			t.Fatalf("full cache accepted a new signature: %v", err)
		}
	}
}

func header(pairs ...string) func(string) []string {
	h := http.Header{}
	for i := 0; i < len(pairs); i += 2 {
		h.Add(pairs[i], pairs[i+1])
	}
	return h.Values
}

func TestParseHeaders(t *testing.T) {
	sig := mustSign(t, testKey, testRequest(testNow))
	ts := testNow.Format(time.RFC3339)
	tests := []struct {
		name  string
		get   func(string) []string
		want  error
		alias bool
	}{
		{"the X-Knaight-* form parses", header("X-Knaight-Agent", deployBot, "X-Knaight-Timestamp", ts, "X-Knaight-Signature", sig), nil, false},
		{"the X-SCK-* form parses", header("X-SCK-ANS-ID", deployBot, "X-SCK-Timestamp", ts, "X-SCK-Signature", sig), nil, true},
		{"both forms with equal values parse", header("X-Knaight-Agent", deployBot, "X-SCK-ANS-ID", deployBot, "X-Knaight-Timestamp", ts, "X-Knaight-Signature", sig), nil, true},
		{"both forms with different values are ambiguous", header("X-Knaight-Agent", deployBot, "X-SCK-ANS-ID", "service.knaight", "X-Knaight-Timestamp", ts, "X-Knaight-Signature", sig), ErrMalformedHeader, false},
		{"a repeated header with different values is ambiguous", header("X-Knaight-Agent", deployBot, "X-Knaight-Agent", "x", "X-Knaight-Timestamp", ts, "X-Knaight-Signature", sig), ErrMalformedHeader, false},
		{"a missing signature is missing", header("X-Knaight-Agent", deployBot, "X-Knaight-Timestamp", ts), ErrMissingHeader, false},
		{"a missing agent is missing", header("X-Knaight-Timestamp", ts, "X-Knaight-Signature", sig), ErrMissingHeader, false},
		{"a bad timestamp is malformed", header("X-Knaight-Agent", deployBot, "X-Knaight-Timestamp", "yesterday", "X-Knaight-Signature", sig), ErrMalformedTimestamp, false},
		{"a bad signature is malformed", header("X-Knaight-Agent", deployBot, "X-Knaight-Timestamp", ts, "X-Knaight-Signature", "sha1=abc"), ErrMalformedSignature, false},
		{"an empty agent is malformed", header("X-Knaight-Agent", "", "X-Knaight-Timestamp", ts, "X-Knaight-Signature", sig), ErrMalformedHeader, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeaders(tc.get)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("ParseHeaders = %v, want %v", err, tc.want)
			}
			if err == nil && h.Alias != tc.alias {
				t.Fatalf("Alias = %v, want %v", h.Alias, tc.alias)
			}
		})
	}
}

func TestSignHTTPAndVerifyHTTPRoundTrip(t *testing.T) {
	var got Headers
	v := Verifier{Replay: NewMemoryReplayCache(100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h, err := v.VerifyHTTP(r, body, func(agent, keyID string) ([][]byte, error) {
			if agent != deployBot || keyID != "hk_1" {
				return nil, nil
			}
			return [][]byte{bytes.Repeat([]byte{7}, 32), testKey}, nil // an overlap of two keys
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got = h
	}))
	defer srv.Close()
	send := func(req *http.Request) int {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	req, _ := http.NewRequest("POST", srv.URL+"/mcp/{id}?q=a%20b", bytes.NewReader(testBody))
	if err := SignHTTP(req, testBody, testKey, deployBot, "hk_1", time.Now()); err != nil {
		t.Fatal(err)
	}
	replay := req.Clone(t.Context())
	replay.Body = io.NopCloser(bytes.NewReader(testBody))
	if code := send(req); code != 200 || got.Agent != deployBot || got.KeyID != "hk_1" {
		t.Fatalf("signed request: %d %+v", code, got)
	}
	if code := send(replay); code != 401 {
		t.Fatalf("replayed request: %d", code)
	}
	unsigned, _ := http.NewRequest("POST", srv.URL+"/mcp", bytes.NewReader(testBody))
	if code := send(unsigned); code != 401 {
		t.Fatalf("unsigned request: %d", code)
	}
}

func FuzzParseHeaders(f *testing.F) {
	sig := "hmac-sha256=" + strings.Repeat("ab", 32)
	f.Add(deployBot, "2025-01-25T10:00:00Z", sig, "hk_1", "org", false)
	f.Add("service.knaight", "2025-01-25T10:00:00.5+01:00", sig, "", "", true)
	f.Add("", "", "", "", "", false)
	f.Fuzz(func(t *testing.T, agent, ts, signature, kid, org string, alias bool) {
		names := []string{HeaderAgent, HeaderTimestamp, HeaderSignature, HeaderOrganization}
		if alias {
			names = []string{AliasHeaderAgent, AliasHeaderTimestamp, AliasHeaderSignature, AliasHeaderOrganization}
		}
		h1, err := ParseHeaders(header(names[0], agent, names[1], ts, names[2], signature, HeaderKeyID, kid, names[3], org))
		if err != nil {
			return
		}
		hdr := http.Header{}
		h1.Apply(func(name, value string) { hdr.Set(name, value) })
		h2, err := ParseHeaders(hdr.Values)
		if err != nil {
			t.Fatalf("Apply output does not parse: %v (%+v)", err, h1)
		}
		if h1 != h2 {
			t.Fatalf("round trip %+v != %+v", h1, h2)
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	f.Add("hmac-sha256=" + strings.Repeat("0f", 32))
	f.Add("hmac-sha256=")
	f.Add("HMAC-SHA256=" + strings.Repeat("0F", 32))
	f.Fuzz(func(t *testing.T, s string) {
		mac, err := ParseSignature(s)
		if err != nil {
			return
		}
		// Whatever parses is exactly the prefix and 64 hex digits.
		if len(s) != len(SignaturePrefix)+64 {
			t.Fatalf("accepted %q", s)
		}
		if got, _ := ParseSignature(SignaturePrefix + strings.ToLower(s[len(SignaturePrefix):])); got != mac {
			t.Fatalf("case changes the value of %q", s)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	r := testRequest(testNow)
	sig := mustSign(b, testKey, r)
	v := Verifier{Now: func() time.Time { return testNow }}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(testKey, r, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBodyDigest1KiB(b *testing.B) {
	body := bytes.Repeat([]byte("a"), 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		BodyDigest(body)
	}
}

package sign

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func keysOf(ks ...[]byte) func(agent, keyID string) ([][]byte, error) {
	return func(string, string) ([][]byte, error) { return ks, nil }
}

func TestSignHTTPVerifyHTTPOverTheWire(t *testing.T) {
	now := time.Now()
	var gotErr error
	var gotHeaders Headers
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		gotHeaders, gotErr = Verifier{}.VerifyHTTP(r, body, keysOf(testKey))
	}))
	defer srv.Close()
	for _, target := range []string{"/mcp", "/mcp?session=a%20b&x=1", "/tools/{id}/Zürich", "/a%2Fb?", "/"} {
		t.Run(target, func(t *testing.T) {
			body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
			req, err := http.NewRequest("POST", srv.URL+target, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if err := SignHTTP(req, body, testKey, testAgent, "hk_test", now); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if gotErr != nil {
				t.Fatalf("VerifyHTTP: %v", gotErr)
			}
			if gotHeaders.Agent != testAgent || gotHeaders.KeyID != "hk_test" || gotHeaders.Alias {
				t.Fatalf("headers %+v", gotHeaders)
			}
		})
	}
}

func TestSignHTTPHeaders(t *testing.T) {
	req := httptest.NewRequest("GET", "http://upstream.example/mcp", nil)
	req.Header = nil
	now := time.Date(2025, 1, 25, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	if err := SignHTTP(req, nil, testKey, testAgent, "", now); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get(HeaderTimestamp); got != "2025-01-25T10:00:00.123Z" {
		t.Errorf("timestamp %q, want milliseconds in UTC", got)
	}
	if _, ok := req.Header[HeaderKeyID]; ok {
		t.Error("empty key id sent")
	}
	if err := SignHTTP(req, nil, testKey[:8], testAgent, "", now); !errors.Is(err, ErrWeakKey) {
		t.Errorf("short key: %v", err)
	}
	if err := SignHTTP(req, nil, testKey, testAgent, "hk\n", now); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("bad key id: %v", err)
	}
}

// The gateway re-signs a request that came with the agent's X-SCK-*
// headers; the upstream must not see two conflicting signatures.
func TestSignHTTPReplacesExistingHeaders(t *testing.T) {
	body := []byte(`{"action": "invoke"}`)
	req := httptest.NewRequest("POST", "/api/v1/enforcement/verify", bytes.NewReader(body))
	for _, kv := range [][2]string{
		{AliasHeaderAgent, "service.knaight"}, {AliasHeaderTimestamp, t0Stamp}, {AliasHeaderSignature, "hmac-sha256=abc123"},
		{AliasHeaderOrganization, "org-123"}, {HeaderKeyID, "hk_agent"}, {HeaderSignature, "hmac-sha256=def"},
	} {
		req.Header.Add(kv[0], kv[1])
	}
	now := time.Now()
	if err := SignHTTP(req, body, otherKey, "service.knaight", "", now); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{AliasHeaderAgent, AliasHeaderTimestamp, AliasHeaderSignature, AliasHeaderOrganization, HeaderKeyID, HeaderOrganization} {
		if v := req.Header.Values(name); len(v) != 0 {
			t.Errorf("%s still set: %q", name, v)
		}
	}
	if _, err := (Verifier{}).VerifyHTTP(req, body, keysOf(otherKey)); err != nil {
		t.Fatal(err)
	}
}

// readRequest parses a raw HTTP/1.1 request as a net/http server does.
func readRequest(t *testing.T, raw string) *http.Request {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// A client that is not net/http may send a target net/url would re-encode;
// the raw target as received is what it signed.
func TestVerifyHTTPUsesTheRawTarget(t *testing.T) {
	const target = "/tools/{id}/caf%c3%a9?q=a|b"
	r := Request{Method: "GET", Target: target, BodySHA256: BodyDigest(nil), Agent: testAgent, Timestamp: time.Now().UTC().Format(time.RFC3339)}
	sig := mustSign(t, testKey, r)
	req := readRequest(t, "GET "+target+" HTTP/1.1\r\nHost: upstream\r\nX-Knaight-Agent: "+testAgent+
		"\r\nX-Knaight-Timestamp: "+r.Timestamp+"\r\nX-Knaight-Signature: "+sig+"\r\n\r\n")
	if req.URL.RequestURI() == target {
		t.Fatalf("test target %q is not re-encoded by net/url; pick another", target)
	}
	if _, err := (Verifier{}).VerifyHTTP(req, nil, keysOf(testKey)); err != nil {
		t.Fatal(err)
	}

	// Absolute form through a forward proxy: the origin-form target counts.
	r.Target = "/mcp?x=1"
	sig = mustSign(t, testKey, r)
	req = readRequest(t, "GET http://upstream.example/mcp?x=1 HTTP/1.1\r\nHost: upstream.example\r\nX-SCK-ANS-ID: "+testAgent+
		"\r\nX-SCK-Timestamp: "+r.Timestamp+"\r\nX-SCK-Signature: "+sig+"\r\n\r\n")
	h, err := (Verifier{}).VerifyHTTP(req, nil, keysOf(testKey))
	if err != nil {
		t.Fatal(err)
	}
	if !h.Alias {
		t.Error("Alias not set for X-SCK-* headers")
	}
}

func TestVerifyHTTPKeys(t *testing.T) {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	signed := func(key []byte, kid string) *http.Request {
		req := httptest.NewRequest("POST", "/mcp", bytes.NewReader(body))
		if err := SignHTTP(req, body, key, testAgent, kid, time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	}
	lookupErr := errors.New("database down")
	tests := []struct {
		name string
		req  *http.Request
		keys func(agent, keyID string) ([][]byte, error)
		want error
	}{
		{"new key during rotation overlap", signed(testKey, "hk_new"), keysOf(otherKey, testKey), nil},
		{"old key during rotation overlap", signed(otherKey, "hk_old"), keysOf(otherKey, testKey), nil},
		{"key not among the agent's keys", signed(testKey, ""), keysOf(otherKey), ErrBadSignature},
		{"no keys for the agent", signed(testKey, ""), keysOf(), ErrUnknownKey},
		{"lookup failure is returned, not a bad signature", signed(testKey, ""), func(string, string) ([][]byte, error) { return nil, lookupErr }, lookupErr},
		{"a short key in the lookup is a configuration error", signed(testKey, ""), keysOf(testKey, []byte("short")), ErrWeakKey},
		{"agent and key id reach the lookup", signed(testKey, "hk_x"), func(agent, kid string) ([][]byte, error) {
			if agent != testAgent || kid != "hk_x" {
				return nil, errors.New("wrong lookup " + agent + " " + kid)
			}
			return [][]byte{testKey}, nil
		}, nil},
		{"unsigned request", httptest.NewRequest("POST", "/mcp", nil), keysOf(testKey), ErrMissingHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verifier{}.VerifyHTTP(tt.req, body, tt.keys)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("VerifyHTTP = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("tampered body", func(t *testing.T) {
		if _, err := (Verifier{}).VerifyHTTP(signed(testKey, ""), []byte(`{}`), keysOf(testKey)); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("VerifyHTTP = %v", err)
		}
	})
	t.Run("replay across keys is recorded once", func(t *testing.T) {
		v := Verifier{Replay: NewMemoryReplayCache(10)}
		req := signed(testKey, "")
		if _, err := v.VerifyHTTP(req, body, keysOf(otherKey, testKey)); err != nil {
			t.Fatal(err)
		}
		if _, err := v.VerifyHTTP(req, body, keysOf(otherKey, testKey)); !errors.Is(err, ErrReplay) {
			t.Fatalf("VerifyHTTP = %v, want ErrReplay", err)
		}
	})
}

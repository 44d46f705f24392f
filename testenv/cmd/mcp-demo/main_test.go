package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/knaight/knaight/testenv/mcpdemo"
)

func TestUpstreamKeyFlag(t *testing.T) {
	secret := bytes.Repeat([]byte{0xfb}, 32) // base64url differs from base64 here
	raw := base64.RawURLEncoding.EncodeToString(secret)
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"base64url without padding", []string{"uk_1=" + raw}, true},
		{"base64url with padding", []string{"uk_1=" + base64.URLEncoding.EncodeToString(secret)}, true},
		{"two keys during a rotation", []string{"uk_1=" + raw, "uk_2=" + raw}, true},
		{"no key id", []string{"=" + raw}, false},
		{"no secret", []string{"uk_1="}, false},
		{"no separator", []string{raw}, false},
		{"standard base64", []string{"uk_1=" + base64.StdEncoding.EncodeToString(secret)}, false},
		{"the same key id twice", []string{"uk_1=" + raw, "uk_1=" + raw}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := upstreamKeys{}
			var err error
			for _, a := range tc.args {
				if err = k.Set(a); err != nil {
					break
				}
			}
			if (err == nil) != tc.ok {
				t.Fatalf("Set: %v, want ok %v", err, tc.ok)
			}
			if tc.ok && !bytes.Equal(k["uk_1"], secret) {
				t.Errorf("uk_1 = %x", k["uk_1"])
			}
		})
	}
}

// gateway adds what the gateway adds to an allowed request before signing.
type gateway struct{ next http.RoundTripper }

func (g gateway) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(mcpdemo.HeaderDecisionID, "0123456789abcdef0123456789abcdef")
	return g.next.RoundTrip(r)
}

func TestRunServesUntilCancelled(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, ln, mcpdemo.Options{UpstreamKeys: map[string][]byte{"uk_1": key}, Logger: discard()})
	}()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}

	signer := &mcpdemo.SigningTransport{Agent: "ans://v1.0.0.smoke.agents.example.com", KeyID: "uk_1", Key: key}
	client := mcp.NewClient(&mcp.Implementation{Name: "smoke", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: gateway{signer}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"}) // with a session and its SSE stream
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpdemo.ToolEcho, Arguments: map[string]any{"text": "hi"}})
	if err != nil || res.IsError {
		t.Fatalf("echo: %v %+v", err, res)
	}

	cancel() // with the client's SSE stream open
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	cs.Close()
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

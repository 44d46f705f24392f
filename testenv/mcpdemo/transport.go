package mcpdemo

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/knaight/knaight/shared/sign"
)

// SigningTransport is the client side of an AI agent calling MCP servers
// through the gateway: an http.RoundTripper that presents the agent's
// gateway token and signs every request (shared/sign) with the agent's HMAC
// key. Give it to the MCP SDK's client as its HTTP client's Transport:
//
//	client := &http.Client{Transport: &mcpdemo.SigningTransport{Token: tok, Agent: ans, KeyID: kid, Key: key}}
//	t := &mcp.StreamableClientTransport{Endpoint: gatewayURL + "/mcp", HTTPClient: client}
//
// Each request, retries and the SDK's GET and DELETE included, is signed
// again at send time, so none is taken for a replay. It is safe for
// concurrent use.
type SigningTransport struct {
	// Base sends the signed requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Token is the agent's gateway bearer token, sent as Authorization:
	// Bearer; "" sends no Authorization header.
	Token string
	// Agent is the agent's ANS name, signed in X-Knaight-Agent.
	Agent string
	// KeyID is the id of Key, sent in X-Knaight-Key-Id when not "".
	KeyID string
	// Key is the agent's raw HMAC secret (the manager shows it in base64url:
	// decode it first).
	Key []byte
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
}

// RoundTrip reads the request body, signs a copy of the request over it and
// sends the copy through Base; req itself is not changed.
func (t *SigningTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("sign request: read body: %w", err)
		}
	}
	out := req.Clone(req.Context())
	if req.Body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	if err := sign.SignHTTP(out, body, t.Key, t.Agent, t.KeyID, now()); err != nil {
		return nil, fmt.Errorf("sign request for %s: %w", t.Agent, err)
	}
	if t.Token != "" {
		out.Header.Set("Authorization", "Bearer "+t.Token)
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

package stack

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Agent is an agent of the demo role as its operator registered it: what
// it holds to call the gateway.
type Agent struct {
	// ID is the manager's id; ANSName its identity; KeyID and Key its
	// first HMAC request-signing key.
	ID, ANSName, KeyID string
	Key                []byte
	// ClientID and ClientSecret are its OAuth client (client_secret_basic).
	ClientID, ClientSecret string
}

// Signal is a trust signal as the API takes it.
type Signal struct {
	Kind  string
	Value float64
}

// IdentitySignals and ScorecardSignal are docs/trust.md's worked example:
// together they take an agent to L3, the level the demo policy requires.
var (
	IdentitySignals = []Signal{{"identity.admin_attestation", 1}, {"identity.dns_verified", 1}, {"github.org_verified", 1}}
	ScorecardSignal = Signal{"scorecard.score", 8}
)

// RegisterAgent registers an ACTIVE agent of the demo role in the stack's
// environment, with an OAuth client for LoA 2 and the scopes mcp:read and
// mcp:invoke.
func (s *Stack) RegisterAgent(ctx context.Context, name string) (Agent, error) {
	var reg struct {
		ID  string `json:"id"`
		ANS struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"ans"`
		HMACKey struct {
			KID    string `json:"kid"`
			Secret string `json:"secret"`
		} `json:"hmacKey"`
	}
	if err := s.API.Do(ctx, "POST", "/api/v1/agents", map[string]any{
		"name": name, "roleTemplateId": s.DemoRoleID, "environment": Environment, "activate": true}, 201, &reg); err != nil {
		return Agent{}, err
	}
	if reg.ANS.Status != "ACTIVE" {
		return Agent{}, fmt.Errorf("register %s: ANS status %q, want ACTIVE", name, reg.ANS.Status)
	}
	key, err := base64.RawURLEncoding.DecodeString(reg.HMACKey.Secret)
	if err != nil {
		return Agent{}, fmt.Errorf("register %s: HMAC key: %w", name, err)
	}
	a := Agent{ID: reg.ID, ANSName: reg.ANS.Name, KeyID: reg.HMACKey.KID, Key: key}
	var client struct{ ClientID, ClientSecret string }
	if err := s.API.Do(ctx, "POST", "/api/v1/agents/"+a.ID+"/oauth-clients", map[string]any{
		"authMethod": "client_secret_basic", "loa": 2, "scopes": []string{"mcp:read", "mcp:invoke"}}, 201, &client); err != nil {
		return Agent{}, err
	}
	a.ClientID, a.ClientSecret = client.ClientID, client.ClientSecret
	return a, nil
}

// AddSignals records trust signals for the agent through the API, observed
// now, from source.
func (s *Stack) AddSignals(ctx context.Context, a Agent, source string, signals ...Signal) error {
	now := time.Now().UTC().Format(time.RFC3339)
	for _, sig := range signals {
		if err := s.API.Do(ctx, "POST", "/api/v1/agents/"+a.ID+"/signals", map[string]any{
			"source": source, "kind": sig.Kind, "value": sig.Value, "observedAt": now}, 201, nil); err != nil {
			return err
		}
	}
	return nil
}

// Token gets a gateway token as the agent itself does: OAuth
// client_credentials at the manager's token endpoint, for the gateway's
// resource, through client (nil: http.DefaultClient).
func (s *Stack) Token(ctx context.Context, client *http.Client, a Agent) (string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"mcp:read mcp:invoke"}, "resource": {s.Resource}}
	req, err := http.NewRequestWithContext(ctx, "POST", s.Manager.URL+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(a.ClientID, a.ClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/oauth2/token: %d: %s", resp.StatusCode, raw)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("/oauth2/token: no access token in %s", raw)
	}
	return tok.AccessToken, nil
}

package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/tokens"
)

// MaxLoA is the highest level of assurance a client authenticating with
// method may put in its tokens. A shared secret is a bearer credential that
// the manager also holds (hashed) and that travels with every request; a
// private key never leaves the client, so it proves more. Level 4 needs
// more than any client credential: it is only issued through the API.
func MaxLoA(method string) int {
	if method == PrivateKeyJWT {
		return 3
	}
	return 2
}

// Client is an agent's OAuth client. It never carries the secret.
type Client struct {
	ClientID       string     `json:"clientId" example:"kc_3xq7mz2kd4b5lw6p"`
	OrganizationID uuid.UUID  `json:"organizationId"`
	AgentID        uuid.UUID  `json:"agentId"`
	AuthMethod     string     `json:"authMethod" enum:"client_secret_basic,client_secret_post,private_key_jwt"`
	LoA            int        `json:"loa" doc:"The level of assurance of the client's tokens."`
	Scopes         []string   `json:"scopes" doc:"The scopes the client may request; a request without scope gets all of them."`
	JWKS           *JWKSet    `json:"jwks,omitempty" doc:"The public keys that verify the client's assertions (private_key_jwt only)."`
	CreatedAt      time.Time  `json:"createdAt"`
	RevokedAt      *time.Time `json:"revokedAt,omitempty"`
}

// Created is a new client with its secret. The secret exists only here.
type Created struct {
	Client
	Secret string `json:"clientSecret,omitempty" doc:"The client secret (client_secret_* methods only). Only its SHA-256 is stored: it is shown in this response and never again."`
}

// NewClient is what a client is created from.
type NewClient struct {
	AuthMethod string
	LoA        int
	Scopes     []string
	// JWKS is the JWK Set of a private_key_jwt client; nil otherwise.
	JWKS json.RawMessage
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// clientIDRe is the shape of a client id: "kc_" and 80 random bits.
var clientIDRe = regexp.MustCompile(`^kc_[a-z2-7]{16}$`)

func newClientID() string {
	var b [10]byte
	rand.Read(b[:])
	return "kc_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// newSecret returns 256 random bits, base64url. That much entropy makes a
// fast hash enough to store it.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

var scopeRe = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,256}$`)

// validate reports every invalid field of in and returns the parsed JWK
// Set of a private_key_jwt client.
func (in NewClient) validate() (*JWKSet, error) {
	var inv fault.Invalid
	if !slices.Contains(AuthMethods(), in.AuthMethod) {
		inv.Add("authMethod", "must be "+strings.Join(AuthMethods(), ", "), in.AuthMethod)
	}
	if in.LoA < 1 || in.LoA > 4 {
		inv.Add("loa", "must be 1 to 4", in.LoA)
	} else if maxLoA := MaxLoA(in.AuthMethod); in.LoA > maxLoA {
		inv.Add("loa", fmt.Sprintf("a %s client may carry at most LoA %d", in.AuthMethod, maxLoA), in.LoA)
	}
	if len(in.Scopes) > tokens.MaxScopes {
		inv.Add("scopes", fmt.Sprintf("at most %d scopes", tokens.MaxScopes), len(in.Scopes))
	}
	for i, s := range in.Scopes {
		if !scopeRe.MatchString(s) {
			inv.Add(fmt.Sprintf("scopes[%d]", i), "a scope is 1 to 256 printable ASCII characters without spaces, '\"' or '\\'", s)
		} else if slices.Index(in.Scopes, s) != i {
			inv.Add(fmt.Sprintf("scopes[%d]", i), "duplicate scope", s)
		}
	}
	var set *JWKSet
	hasJWKS := len(in.JWKS) > 0 && string(in.JWKS) != "null"
	switch {
	case in.AuthMethod == PrivateKeyJWT && !hasJWKS:
		inv.Add("jwks", "required for private_key_jwt: the JWK Set of the client's public keys", nil)
	case in.AuthMethod == PrivateKeyJWT:
		var err error
		if set, err = ParseJWKSet(in.JWKS); err != nil {
			bad, _ := fault.AsInvalid(err)
			inv.Errors = append(inv.Errors, bad.Errors...)
		}
	case hasJWKS:
		inv.Add("jwks", "only a private_key_jwt client has keys; a "+in.AuthMethod+" client gets a secret", nil)
	}
	return set, inv.Err()
}

func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// CreateClient creates an OAuth client for one of the organization's agents
// and records OAUTH_CLIENT_CREATED. A client_secret_* client gets a secret,
// returned only here. An agent whose registration ended cannot get one.
func CreateClient(ctx context.Context, tx pgx.Tx, org, agent uuid.UUID, in NewClient, actor string, now time.Time) (Created, error) {
	set, err := in.validate()
	if err != nil {
		return Created{}, err
	}
	a, err := agents.Get(ctx, tx, org, agent)
	if err != nil {
		return Created{}, err
	}
	if a.ANS.Status.Terminal() {
		return Created{}, fmt.Errorf("agent %s is %s: %w", agent, a.ANS.Status, fault.ErrConflict)
	}
	c := Created{Client: Client{
		ClientID: newClientID(), OrganizationID: org, AgentID: agent, AuthMethod: in.AuthMethod, LoA: in.LoA,
		Scopes: in.Scopes, JWKS: set, CreatedAt: stamp(now),
	}}
	if c.Scopes == nil {
		c.Scopes = []string{}
	}
	var secretHash, jwks []byte
	if set != nil {
		if jwks, err = json.Marshal(set); err != nil {
			return Created{}, fmt.Errorf("encode jwks: %w", err)
		}
	} else {
		c.Secret = newSecret()
		secretHash = hashSecret(c.Secret)
	}
	_, err = tx.Exec(ctx, `INSERT INTO oauth_clients (client_id, organization_id, agent_id, auth_method, secret_hash, jwks, loa, scopes, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.ClientID, org, agent, c.AuthMethod, secretHash, jwks, c.LoA, c.Scopes, c.CreatedAt)
	if err != nil {
		return Created{}, fmt.Errorf("create oauth client: %w", err)
	}
	details := map[string]any{"clientId": c.ClientID, "agentId": agent, "ansName": a.ANS.Name, "authMethod": c.AuthMethod, "loa": c.LoA, "scopes": c.Scopes}
	if set != nil {
		kids := make([]string, len(set.Keys))
		for i, k := range set.Keys {
			kids[i] = k.KID
		}
		details["kids"] = kids
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "OAUTH_CLIENT_CREATED", Actor: actor,
		SubjectType: "oauth_client", SubjectID: c.ClientID, Details: details}, now)
	return c, err
}

const selectClient = `SELECT client_id, organization_id, agent_id, auth_method, secret_hash, jwks, loa, scopes, created_at, revoked_at FROM oauth_clients`

// record is a stored client with what authenticates it.
type record struct {
	Client
	secretHash []byte
}

func scanClient(row pgx.CollectableRow) (record, error) {
	var r record
	var loa int16
	var jwks []byte
	err := row.Scan(&r.ClientID, &r.OrganizationID, &r.AgentID, &r.AuthMethod, &r.secretHash, &jwks, &loa, &r.Scopes, &r.CreatedAt, &r.RevokedAt)
	if err != nil {
		return r, err
	}
	r.LoA = int(loa)
	r.CreatedAt = r.CreatedAt.UTC()
	if jwks != nil {
		r.JWKS = &JWKSet{}
		if err := json.Unmarshal(jwks, r.JWKS); err != nil {
			return r, fmt.Errorf("decode jwks of oauth client %s: %w", r.ClientID, err)
		}
	}
	return r, nil
}

// getClient returns a client by id, whatever its organization: the id is
// what a client presents, and it names the organization.
func getClient(ctx context.Context, q db.Querier, clientID string, lock string) (record, error) {
	rows, err := q.Query(ctx, selectClient+` WHERE client_id = $1 `+lock, clientID)
	if err != nil {
		return record{}, fmt.Errorf("load oauth client: %w", err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanClient)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("oauth client %s: %w", clientID, fault.ErrNotFound)
	}
	return r, err
}

// ListClients returns the agent's OAuth clients, revoked ones included,
// newest first, without secrets.
func ListClients(ctx context.Context, q db.Querier, org, agent uuid.UUID) ([]Client, error) {
	if _, err := agents.Get(ctx, q, org, agent); err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, selectClient+` WHERE organization_id = $1 AND agent_id = $2 ORDER BY created_at DESC, client_id`, org, agent)
	if err != nil {
		return nil, fmt.Errorf("list oauth clients: %w", err)
	}
	recs, err := pgx.CollectRows(rows, scanClient)
	out := make([]Client, len(recs))
	for i, r := range recs {
		out[i] = r.Client
	}
	return out, err
}

// RevokeClient revokes one of the organization's clients, revokes the live
// tokens issued to it (a client is revoked because its credential is no
// longer trusted, and so are the tokens that credential obtained), and
// records OAUTH_CLIENT_REVOKED. Revoking a revoked client changes nothing.
func RevokeClient(ctx context.Context, tx pgx.Tx, org uuid.UUID, clientID, actor string, now time.Time) (Client, error) {
	if !clientIDRe.MatchString(clientID) {
		return Client{}, fmt.Errorf("oauth client %q: %w", clientID, fault.ErrNotFound)
	}
	// FOR UPDATE waits for token requests that hold the client FOR SHARE,
	// so the tokens they issue are among those revoked below.
	r, err := getClient(ctx, tx, clientID, "FOR UPDATE")
	if err != nil {
		return Client{}, err
	}
	if r.OrganizationID != org {
		// Another organization's client does not exist for this one.
		return Client{}, fmt.Errorf("oauth client %s: %w", clientID, fault.ErrNotFound)
	}
	if r.RevokedAt != nil {
		return r.Client, nil
	}
	at := stamp(now)
	if _, err := tx.Exec(ctx, `UPDATE oauth_clients SET revoked_at = $2 WHERE client_id = $1`, clientID, at); err != nil {
		return Client{}, fmt.Errorf("revoke oauth client: %w", err)
	}
	r.RevokedAt = &at
	rows, err := tx.Query(ctx, `SELECT jti FROM gateway_tokens WHERE organization_id = $1 AND client_id = $2 AND revoked_at IS NULL AND expires_at > $3`,
		org, clientID, now)
	if err != nil {
		return Client{}, fmt.Errorf("find oauth client tokens: %w", err)
	}
	jtis, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return Client{}, fmt.Errorf("find oauth client tokens: %w", err)
	}
	for _, jti := range jtis {
		if _, err := tokens.Revoke(ctx, tx, org, jti, "oauth client "+clientID+" revoked", actor, now); err != nil {
			return Client{}, err
		}
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "OAUTH_CLIENT_REVOKED", Actor: actor,
		SubjectType: "oauth_client", SubjectID: clientID,
		Details: map[string]any{"clientId": clientID, "agentId": r.AgentID, "tokensRevoked": len(jtis)}}, now)
	return r.Client, err
}

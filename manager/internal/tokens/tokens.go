// Package tokens issues and checks gateway tokens: short-lived JWTs
// (RFC 9068 "at+jwt") bound to one agent, its ANS name, a level of
// assurance, scopes and one protected MCP resource. Every token is recorded
// (never the token itself) so it can be introspected and revoked, and
// revocation follows the agent: an ANS registration that stops serving, or
// trust falling below the agent's policy, revokes its live tokens.
package tokens

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
)

// TokenType is the JWT "typ" header of gateway tokens (RFC 9068).
const TokenType = "at+jwt"

// Claims are a gateway token's claims (contract 4). The subject is the
// agent's ANS name, so the gateway can pin it to the request's
// X-Knaight-Agent header.
type Claims struct {
	jwt.RegisteredClaims
	Organization string    `json:"org"`
	AgentID      string    `json:"agent_id"`
	ANSName      string    `json:"ans"`
	LoA          int       `json:"loa"`
	Scope        string    `json:"scope"`
	ClientID     string    `json:"client_id,omitempty"`
	Artifact     *Artifact `json:"artifact,omitempty"`
}

// Artifact is what the token was issued for, in the Milestone 3 terms.
type Artifact struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// Record is the stored trace of an issued token.
type Record struct {
	JTI            uuid.UUID  `json:"tokenId"`
	OrganizationID uuid.UUID  `json:"organizationId"`
	AgentID        uuid.UUID  `json:"agentId"`
	ANSName        string     `json:"ansName"`
	KID            string     `json:"kid"`
	Audience       string     `json:"audience"`
	Scopes         []string   `json:"scope"`
	LoA            int        `json:"loaLevel"`
	ArtifactID     string     `json:"artifactId,omitempty"`
	ArtifactType   string     `json:"artifactType,omitempty"`
	IssuerID       string     `json:"issuerId"`
	ClientID       string     `json:"clientId,omitempty"`
	IssuedAt       time.Time  `json:"issuedAt"`
	NotBefore      time.Time  `json:"notBefore"`
	ExpiresAt      time.Time  `json:"expiresAt"`
	RevokedAt      *time.Time `json:"revokedAt,omitempty"`
	RevokedReason  string     `json:"revokedReason,omitempty"`
	RevokedBy      string     `json:"revokedBy,omitempty"`
}

// Service issues and verifies tokens for one issuer URL.
type Service struct {
	Keys Keys
	// Issuer is the "iss" of every token: the manager's public URL.
	Issuer string
}

// IssueRequest asks for a token for one agent.
type IssueRequest struct {
	AgentID      uuid.UUID
	Audience     string // "" = the organization's default audience
	Scopes       []string
	LoA          int
	TTL          time.Duration // 0 = the organization's default
	ArtifactID   string
	ArtifactType string
	IssuerID     string // who the token is issued on behalf of (Milestone 3's issuerId)
	ClientID     string
}

// Issued is a new token and its record. Token exists only here.
type Issued struct {
	Token string
	Record
}

var scopeRe = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,256}$`)

// MaxScopes bounds the scopes of one token.
const MaxScopes = 64

// validateScopes checks RFC 6749 scope tokens; field names the JSON field.
func validateScopes(inv *fault.Invalid, field string, scopes []string) {
	if len(scopes) > MaxScopes {
		inv.Add(field, fmt.Sprintf("at most %d scopes", MaxScopes), len(scopes))
		return
	}
	for i, s := range scopes {
		if !scopeRe.MatchString(s) {
			inv.Add(fmt.Sprintf("%s[%d]", field, i), "a scope is 1 to 256 printable ASCII characters without spaces, '\"' or '\\'", s)
		} else if slices.Index(scopes, s) != i {
			inv.Add(fmt.Sprintf("%s[%d]", field, i), "duplicate scope", s)
		}
	}
}

// Issue signs a token for an ACTIVE agent of the organization, records it
// and records TOKEN_ISSUED, in tx. The token's trust is not checked here:
// the gateway checks it on every request, so a token issued below the
// policy starts working when the agent's trust rises. Group issues many in
// one transaction.
func (s Service) Issue(ctx context.Context, tx pgx.Tx, org uuid.UUID, req IssueRequest, actor string, now time.Time) (Issued, error) {
	var r issueReads
	b := &pgx.Batch{}
	s.queueReads(b, org, req.AgentID, &r)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return Issued{}, fmt.Errorf("issue token: %w", err)
	}
	if r.err != nil {
		return Issued{}, r.err
	}
	c, err := check(req, &r)
	if err != nil {
		return Issued{}, err
	}
	k, err := s.signingKey(ctx, tx, org, &r, actor, now)
	if err != nil {
		return Issued{}, err
	}
	t, err := s.sign(org, req, c, k, now)
	if err != nil {
		return Issued{}, err
	}
	if err := record(ctx, tx, []*Issued{&t}); err != nil {
		return Issued{}, err
	}
	_, err = ledger.Append(ctx, tx, issuedEntry(&t, actor), now)
	return t, err
}

// issueReads is what issuing a token reads before it signs.
type issueReads struct {
	settings        Settings
	ansName, status string          // the agent's ANS registration; "" when there is no such agent
	keys            map[string]*key // the organization's active keys, by algorithm
	err             error           // what makes this request fail on its own: no such organization
}

// queueReads queues the reads of one token request into b, results into
// r: the organization's token settings, the agent's ANS name and status,
// and the organization's active signing keys. One batch is one round trip
// to PostgreSQL, whatever it holds; on a busy manager the round trips, not
// the queries, are what a token costs.
func (s Service) queueReads(b *pgx.Batch, org, agent uuid.UUID, r *issueReads) {
	r.keys = map[string]*key{}
	b.Queue(selectSettings, org).QueryRow(func(row pgx.Row) (err error) {
		r.settings, err = scanSettings(row, org)
		if errors.Is(err, fault.ErrNotFound) {
			r.err, err = err, nil
		}
		return err
	})
	b.Queue(`SELECT r.name, r.status FROM role_agents a JOIN ans_registrations r ON r.organization_id = a.organization_id AND r.agent_id = a.id
		WHERE a.organization_id = $1 AND a.id = $2`, org, agent).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&r.ansName, &r.status); !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	})
	b.Queue(selectKeyMaterial+` WHERE organization_id = $1 AND retired_at IS NULL`, org).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			k, err := s.Keys.load(rows)
			if err != nil {
				return err
			}
			r.keys[k.alg] = k
		}
		return rows.Err()
	})
}

// checked is a request that passed check: its audience and lifetime
// resolved from the organization's settings, and its agent's ANS name.
type checked struct {
	audience, ansName string
	ttl               time.Duration
	algorithm         string
}

// check validates a request against what was read: the fields first (all
// their errors at once), then the agent. It touches no database, so a
// request it refuses changes nothing.
func check(req IssueRequest, r *issueReads) (checked, error) {
	settings := r.settings
	var inv fault.Invalid
	aud := req.Audience
	switch {
	case aud == "" && len(settings.Audiences) == 0:
		inv.Add("audience", "the organization has no default audience: name one, or set audiences in the token settings", nil)
	case aud == "":
		aud = settings.Audiences[0]
	case !slices.Contains(settings.Audiences, aud):
		inv.Add("audience", "not one of the organization's token audiences", aud)
	}
	if req.LoA < 1 || req.LoA > 4 {
		inv.Add("loaLevel", "must be 1 to 4", req.LoA)
	}
	validateScopes(&inv, "scope", req.Scopes)
	ttl := req.TTL
	if ttl == 0 {
		ttl = time.Duration(settings.DefaultTTLSeconds) * time.Second
	}
	if ttl < time.Minute || ttl > time.Duration(settings.MaxTTLSeconds)*time.Second {
		inv.Add("ttlSeconds", fmt.Sprintf("must be between 60 and the organization's maximum of %d", settings.MaxTTLSeconds), int(ttl.Seconds()))
	}
	if err := inv.Err(); err != nil {
		return checked{}, err
	}
	if r.ansName == "" {
		return checked{}, fault.Field("agentId", "no such agent in this organization", req.AgentID)
	}
	if r.status != "ACTIVE" {
		return checked{}, fmt.Errorf("agent %s is %s, not ACTIVE: %w", req.AgentID, r.status, fault.ErrConflict)
	}
	return checked{audience: aud, ansName: r.ansName, ttl: ttl, algorithm: settings.Algorithm}, nil
}

// signingKey returns the active key read into r for the organization's
// algorithm, creating the organization's first key of it (and keeping it
// in r for the next request of the organization) when there is none.
func (s Service) signingKey(ctx context.Context, tx pgx.Tx, org uuid.UUID, r *issueReads, actor string, now time.Time) (*key, error) {
	alg := r.settings.Algorithm
	if k := r.keys[alg]; k != nil {
		return k, nil
	}
	k, err := s.Keys.active(ctx, tx, org, alg, actor, now)
	if err != nil {
		return nil, err
	}
	r.keys[alg] = k
	return k, nil
}

// sign makes the token and its record.
func (s Service) sign(org uuid.UUID, req IssueRequest, c checked, k *key, now time.Time) (Issued, error) {
	at := now.UTC().Truncate(time.Second)
	rec := Record{
		JTI: uuid.New(), OrganizationID: org, AgentID: req.AgentID, ANSName: c.ansName, KID: k.kid, Audience: c.audience,
		Scopes: req.Scopes, LoA: req.LoA, ArtifactID: req.ArtifactID, ArtifactType: req.ArtifactType,
		IssuerID: req.IssuerID, ClientID: req.ClientID, IssuedAt: at, NotBefore: at, ExpiresAt: at.Add(c.ttl),
	}
	if rec.Scopes == nil {
		rec.Scopes = []string{}
	}
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.Issuer, Subject: c.ansName, Audience: jwt.ClaimStrings{c.audience}, ID: rec.JTI.String(),
			IssuedAt: jwt.NewNumericDate(at), NotBefore: jwt.NewNumericDate(at), ExpiresAt: jwt.NewNumericDate(rec.ExpiresAt),
		},
		Organization: org.String(), AgentID: req.AgentID.String(), ANSName: c.ansName, LoA: req.LoA,
		Scope: strings.Join(rec.Scopes, " "), ClientID: req.ClientID,
	}
	if req.ArtifactID != "" || req.ArtifactType != "" {
		claims.Artifact = &Artifact{ID: req.ArtifactID, Type: req.ArtifactType}
	}
	method := jwt.SigningMethod(jwt.SigningMethodEdDSA)
	if k.alg == HS256 {
		method = jwt.SigningMethodHS256
	}
	t := jwt.NewWithClaims(method, claims)
	t.Header["typ"] = TokenType
	t.Header["kid"] = k.kid
	token, err := t.SignedString(k.signer())
	if err != nil {
		return Issued{}, fmt.Errorf("sign token: %w", err)
	}
	return Issued{Token: token, Record: rec}, nil
}

// record stores the records of issued tokens, in one statement however
// many there are.
func record(ctx context.Context, tx pgx.Tx, issued []*Issued) error {
	n := len(issued)
	var (
		jtis, orgs, agents                              = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		kids, audiences, artifactIDs, artifactTypes, by = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		scopes                                          = make([]string, n) // each a text[] literal: unnest cannot take an array of arrays of different lengths
		clients                                         = make([]*string, n)
		loas                                            = make([]int16, n)
		issuedAt, expiresAt                             = make([]time.Time, n), make([]time.Time, n)
	)
	for i, t := range issued {
		r := &t.Record
		jtis[i], orgs[i], agents[i], kids[i], audiences[i] = r.JTI, r.OrganizationID, r.AgentID, r.KID, r.Audience
		scopes[i], loas[i], artifactIDs[i], artifactTypes[i], by[i] = textArray(r.Scopes), int16(r.LoA), r.ArtifactID, r.ArtifactType, r.IssuerID
		issuedAt[i], expiresAt[i] = r.IssuedAt, r.ExpiresAt
		if r.ClientID != "" {
			clients[i] = &r.ClientID
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO gateway_tokens (jti, organization_id, agent_id, kid, audience, scopes, loa, artifact_id, artifact_type, issuer_id, client_id, issued_at, not_before, expires_at)
		SELECT jti, org, agent, kid, aud, scopes::text[], loa, artifact_id, artifact_type, issuer_id, client_id, issued_at, issued_at, expires_at
		FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::smallint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[])
			AS t (jti, org, agent, kid, aud, scopes, loa, artifact_id, artifact_type, issuer_id, client_id, issued_at, expires_at)`,
		jtis, orgs, agents, kids, audiences, scopes, loas, artifactIDs, artifactTypes, by, clients, issuedAt, expiresAt)
	if err != nil {
		return fmt.Errorf("record token: %w", err)
	}
	return nil
}

// textArray writes scopes as a PostgreSQL text[] literal. Scopes are
// printable ASCII without spaces, quotes or backslashes (validateScopes),
// and are quoted anyway.
func textArray(scopes []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, sc := range scopes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(sc)
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// issuedEntry is the TOKEN_ISSUED event of t.
func issuedEntry(t *Issued, actor string) ledger.Entry {
	r := &t.Record
	return ledger.Entry{OrganizationID: r.OrganizationID, Type: "TOKEN_ISSUED", Actor: actor, SubjectType: "agent", SubjectID: r.AgentID.String(),
		Details: map[string]any{"tokenId": r.JTI, "ansName": r.ANSName, "audience": r.Audience, "scope": r.Scopes, "loa": r.LoA, "kid": r.KID,
			"expiresAt": r.ExpiresAt, "artifactId": r.ArtifactID, "artifactType": r.ArtifactType, "issuerId": r.IssuerID, "clientId": r.ClientID}}
}

// ErrInvalidToken means the token is not a valid, live gateway token of
// this issuer: bad signature or header, wrong issuer or audience, expired,
// not yet valid, unknown, or revoked. Callers answer "inactive" (RFC 7662)
// or 401, without saying more to the client; the wrapped text is for logs.
var ErrInvalidToken = errors.New("invalid token")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// Verify checks a token completely: header (typ at+jwt, a known kid, the
// kid's own algorithm and no other), signature, issuer, time claims, that
// the audience is one of its organization's (or exactly audience when
// non-empty), and that it was issued here and is not revoked.
func (s Service) Verify(ctx context.Context, q db.Querier, token, audience string, now time.Time) (Claims, Record, error) {
	var claims Claims
	var k *key
	parser := jwt.NewParser(
		jwt.WithIssuer(s.Issuer), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, TokenType) && !strings.EqualFold(typ, "application/"+TokenType) {
			return nil, fmt.Errorf("typ %q is not %s", typ, TokenType)
		}
		kid, _ := t.Header["kid"].(string)
		var err error
		if k, err = s.Keys.open(ctx, q, kid); err != nil {
			return nil, err
		}
		// The key decides the algorithm, never the token: this is what
		// defeats alg=none and HS256-signed-with-the-public-key.
		if t.Method.Alg() != k.alg {
			return nil, fmt.Errorf("alg %s does not match key %s (%s)", t.Method.Alg(), k.kid, k.alg)
		}
		return k.verifier(), nil
	})
	if err != nil {
		return claims, Record{}, invalid("%v", err)
	}
	rec, err := getRecord(ctx, q, k.org, claims.ID)
	if errors.Is(err, fault.ErrNotFound) {
		return claims, rec, invalid("jti %s was not issued by this manager", claims.ID)
	}
	if err != nil {
		return claims, rec, err
	}
	switch {
	case rec.KID != k.kid || claims.Organization != k.org.String():
		return claims, rec, invalid("token does not match its record")
	case rec.RevokedAt != nil:
		return claims, rec, invalid("revoked: %s", rec.RevokedReason)
	}
	if audience != "" {
		if !slices.Contains(claims.Audience, audience) {
			return claims, rec, invalid("audience %v is not %s", []string(claims.Audience), audience)
		}
	} else {
		settings, err := GetSettings(ctx, q, k.org)
		if err != nil {
			return claims, rec, err
		}
		if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(settings.Audiences, a) }) {
			return claims, rec, invalid("audience %v is not one of the organization's", []string(claims.Audience))
		}
	}
	return claims, rec, nil
}

const selectRecord = `SELECT t.jti, t.organization_id, t.agent_id, r.name, t.kid, t.audience, t.scopes, t.loa, t.artifact_id, t.artifact_type,
	t.issuer_id, coalesce(t.client_id, ''), t.issued_at, t.not_before, t.expires_at, t.revoked_at, coalesce(t.revoked_reason, ''), coalesce(t.revoked_by, '')
	FROM gateway_tokens t JOIN ans_registrations r ON r.organization_id = t.organization_id AND r.agent_id = t.agent_id`

func scanRecord(row pgx.CollectableRow) (Record, error) {
	var r Record
	var loa int16
	err := row.Scan(&r.JTI, &r.OrganizationID, &r.AgentID, &r.ANSName, &r.KID, &r.Audience, &r.Scopes, &loa, &r.ArtifactID, &r.ArtifactType,
		&r.IssuerID, &r.ClientID, &r.IssuedAt, &r.NotBefore, &r.ExpiresAt, &r.RevokedAt, &r.RevokedReason, &r.RevokedBy)
	r.LoA = int(loa)
	r.IssuedAt, r.NotBefore, r.ExpiresAt = r.IssuedAt.UTC(), r.NotBefore.UTC(), r.ExpiresAt.UTC()
	return r, err
}

func getRecord(ctx context.Context, q db.Querier, org uuid.UUID, jti string) (Record, error) {
	id, err := uuid.Parse(jti)
	if err != nil {
		return Record{}, fmt.Errorf("token %q: %w", jti, fault.ErrNotFound)
	}
	rows, err := q.Query(ctx, selectRecord+` WHERE t.organization_id = $1 AND t.jti = $2`, org, id)
	if err != nil {
		return Record{}, fmt.Errorf("load token record: %w", err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRecord)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("token %s: %w", jti, fault.ErrNotFound)
	}
	return r, err
}

// Get returns the record of one of the organization's tokens.
func Get(ctx context.Context, q db.Querier, org, jti uuid.UUID) (Record, error) {
	return getRecord(ctx, q, org, jti.String())
}

// Revoke revokes one of the organization's tokens and records
// TOKEN_REVOKED. Revoking a revoked token changes nothing and succeeds.
func Revoke(ctx context.Context, tx pgx.Tx, org, jti uuid.UUID, reason, actor string, now time.Time) (Record, error) {
	tag, err := tx.Exec(ctx, `UPDATE gateway_tokens SET revoked_at = $3, revoked_reason = $4, revoked_by = $5
		WHERE organization_id = $1 AND jti = $2 AND revoked_at IS NULL`, org, jti, now.UTC().Truncate(time.Microsecond), reason, actor)
	if err != nil {
		return Record{}, fmt.Errorf("revoke token: %w", err)
	}
	rec, err := Get(ctx, tx, org, jti)
	if err != nil || tag.RowsAffected() == 0 {
		return rec, err
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "TOKEN_REVOKED", Actor: actor, SubjectType: "agent", SubjectID: rec.AgentID.String(),
		Details: map[string]any{"tokenId": jti, "reason": reason, "expiresAt": rec.ExpiresAt}}, now)
	return rec, err
}

// RevokeAgent revokes every live token of an agent with cause as the
// reason, and records one TOKENS_REVOKED event listing them. It returns how
// many it revoked.
func RevokeAgent(ctx context.Context, tx pgx.Tx, org, agent uuid.UUID, cause, actor string, now time.Time) (int, error) {
	rows, err := tx.Query(ctx, `UPDATE gateway_tokens SET revoked_at = $3, revoked_reason = $4, revoked_by = $5
		WHERE organization_id = $1 AND agent_id = $2 AND revoked_at IS NULL AND expires_at > $3 RETURNING jti`,
		org, agent, now.UTC().Truncate(time.Microsecond), cause, actor)
	if err != nil {
		return 0, fmt.Errorf("revoke agent tokens: %w", err)
	}
	jtis, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(jtis) == 0 {
		return 0, err
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "TOKENS_REVOKED", Actor: actor, SubjectType: "agent", SubjectID: agent.String(),
		Details: map[string]any{"cause": cause, "tokenIds": jtis}}, now)
	return len(jtis), err
}

// Introspection is an RFC 7662 response. An inactive token has only
// Active=false: nothing else is said about it.
type Introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	// Knaight's claims.
	Organization string    `json:"org,omitempty"`
	AgentID      string    `json:"agent_id,omitempty"`
	ANSName      string    `json:"ans,omitempty"`
	LoA          int       `json:"loa,omitempty"`
	Artifact     *Artifact `json:"artifact,omitempty"`
}

// Introspect reports whether token is active now and, if so, its claims.
// When org is non-nil, a token of another organization is inactive.
func (s Service) Introspect(ctx context.Context, q db.Querier, token string, org *uuid.UUID, now time.Time) (Introspection, error) {
	c, rec, err := s.Verify(ctx, q, token, "", now)
	if errors.Is(err, ErrInvalidToken) || (err == nil && org != nil && rec.OrganizationID != *org) {
		return Introspection{Active: false}, nil
	}
	if err != nil {
		return Introspection{}, err
	}
	return Introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: "Bearer",
		Exp: c.ExpiresAt.Unix(), Iat: c.IssuedAt.Unix(), Nbf: c.NotBefore.Unix(), Sub: c.Subject, Aud: c.Audience, Iss: c.Issuer, Jti: c.ID,
		Organization: c.Organization, AgentID: c.AgentID, ANSName: c.ANSName, LoA: c.LoA, Artifact: c.Artifact,
	}, nil
}

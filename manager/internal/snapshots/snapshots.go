// Package snapshots builds contract 1, the snapshot a gateway enforces,
// from the manager's live state: one organization's environment at one
// version, read in one REPEATABLE READ transaction so that the version and
// the state agree, then signed with the organization's snapshot key. The
// version is kept by database triggers (migration 004), so this package
// only reads it. A Builder keeps the last build of each environment, so a
// version is built and signed once however many gateways poll it; each
// request then only seals it to its gateway.
package snapshots

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/bundles"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/gateways"
	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/snapshot"
)

// DefaultClockSkew is the request timestamp window gateways enforce.
const DefaultClockSkew = 300 * time.Second

// TokenKeys returns an organization's gateway-token verification keys at
// now.
type TokenKeys func(ctx context.Context, q db.Querier, org uuid.UUID, now time.Time) ([]snapshot.TokenKey, error)

// Builder builds, signs and caches snapshots. It is safe for concurrent use.
type Builder struct {
	Pool      *pgxpool.Pool
	Gateways  gateways.Service
	AgentKeys *agents.Keys
	TokenKeys TokenKeys
	// Issuer is the manager's URL, the "iss" of gateway tokens.
	Issuer string
	// Settings are the enforcement settings every snapshot carries.
	Settings snapshot.Settings
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	latest map[scope]*Built
	flight singleflight.Group
}

type scope struct {
	org uuid.UUID
	env policy.Environment
}

// Built is a signed snapshot.
type Built struct {
	Snapshot *snapshot.Snapshot
	// Payload is the snapshot's JSON, the bytes Signature signs.
	Payload   []byte
	Signature []byte
	KeyID     string
}

// Version returns the organization's current snapshot version.
func Version(ctx context.Context, q db.Querier, org uuid.UUID) (uint64, error) {
	var v int64
	if err := q.QueryRow(ctx, `SELECT version FROM snapshot_versions WHERE organization_id = $1`, org).Scan(&v); err != nil {
		return 0, fmt.Errorf("snapshot version: %w", err)
	}
	return uint64(v), nil
}

// Get returns the snapshot of the organization's environment at version
// or later: the cached build if it is of version, else a new build.
// Concurrent calls for one environment share one build.
func (b *Builder) Get(ctx context.Context, org uuid.UUID, env policy.Environment, version uint64) (*Built, error) {
	key := scope{org, env}
	if cached := b.cached(key); cached != nil && cached.Snapshot.Version >= version {
		return cached, nil
	}
	v, err, _ := b.flight.Do(org.String()+"/"+string(env)+"/"+strconv.FormatUint(version, 10), func() (any, error) {
		now := time.Now
		if b.Now != nil {
			now = b.Now
		}
		return b.Build(context.WithoutCancel(ctx), org, env, now())
	})
	if err != nil {
		return nil, err
	}
	return v.(*Built), nil
}

// Build reads the organization's environment in one read-only REPEATABLE
// READ transaction, builds its snapshot, validates it as a filter would and
// signs it. Missing keys are gateways.ErrNotConfigured. The build becomes
// the environment's cached one unless a later version is cached already.
func (b *Builder) Build(ctx context.Context, org uuid.UUID, env policy.Environment, now time.Time) (*Built, error) {
	key := scope{org, env}
	last := b.cached(key)
	var out *Built
	err := pgx.BeginTxFunc(ctx, b.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		s, kid, signer, err := b.read(ctx, tx, org, env, now, last)
		if err != nil {
			return err
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("build snapshot %d of %s: %w", s.Version, env, err)
		}
		payload, signature, err := snapshot.EncodeSigned(s, signer)
		if err != nil {
			return fmt.Errorf("encode snapshot: %w", err)
		}
		out = &Built{Snapshot: s, Payload: payload, Signature: signature, KeyID: kid}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.remember(key, out)
	return out, nil
}

// cached returns the environment's latest build, nil before the first.
func (b *Builder) cached(key scope) *Built {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.latest[key]
}

// remember makes built the environment's cached build, unless a later
// version is cached already.
func (b *Builder) remember(key scope, built *Built) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.latest == nil {
		b.latest = map[scope]*Built{}
	}
	if cur := b.latest[key]; cur == nil || cur.Snapshot.Version < built.Snapshot.Version {
		b.latest[key] = built
	}
}

// read reads the snapshot. The lists of last, the environment's previous
// build if any, size its lists, so that they are allocated once at about
// the right size instead of regrown row by row: 100,000 revocations grown
// by append are copied several times over.
func (b *Builder) read(ctx context.Context, tx pgx.Tx, org uuid.UUID, env policy.Environment, now time.Time, last *Built) (*snapshot.Snapshot, string, ed25519.PrivateKey, error) {
	var expectRevocations, expectAgents int
	if last != nil {
		expectRevocations, expectAgents = len(last.Snapshot.Revocations), len(last.Snapshot.Agents)
	}
	s := &snapshot.Snapshot{Schema: snapshot.Schema, OrganizationID: org.String(), Environment: env, IssuedAt: now.UTC().Truncate(time.Second), Issuer: b.Issuer, Settings: b.Settings}
	var version int64
	err := tx.QueryRow(ctx, `SELECT v.version, o.slug FROM snapshot_versions v JOIN organizations o ON o.id = v.organization_id WHERE v.organization_id = $1`, org).
		Scan(&version, &s.Organization)
	if err != nil {
		return nil, "", nil, fmt.Errorf("read snapshot version: %w", err)
	}
	s.Version = uint64(version)

	kid, signer, err := b.Gateways.SnapshotSigner(ctx, tx, org)
	if err != nil {
		return nil, "", nil, err
	}
	ukid, usecret, err := b.Gateways.UpstreamSecret(ctx, tx, org, env)
	if err != nil {
		return nil, "", nil, err
	}
	s.Upstream = snapshot.UpstreamKey{ID: ukid, Secret: usecret}

	if s.TokenKeys, err = b.TokenKeys(ctx, tx, org, now); err != nil {
		return nil, "", nil, err
	}
	if s.TokenKeys == nil {
		s.TokenKeys = []snapshot.TokenKey{}
	}
	if s.Revocations, err = revocations(ctx, tx, org, now, expectRevocations); err != nil {
		return nil, "", nil, err
	}
	if s.Agents, err = b.agents(ctx, tx, org, env, now, expectAgents); err != nil {
		return nil, "", nil, err
	}
	if s.Bundle, err = activeBundle(ctx, tx, org, env); err != nil {
		return nil, "", nil, err
	}
	s.ProtectedResource = snapshot.ProtectedResource{AuthorizationServers: []string{b.Issuer}, ScopesSupported: scopes(s.Bundle.Policies)}
	return s, kid, signer, nil
}

// revocations lists the organization's revoked tokens that expire after
// now; expect is the capacity to start with. The list is never nil, so
// that no revocations are written as [] rather than null.
//
// There can be hundreds of thousands, so each row costs no allocation: the
// jti is read in its 16-byte binary form (not as text the server formats
// and the driver copies into a string per row), into the same variables
// every time (pgx's Scan takes its destinations as interfaces, so
// variables declared per row would each move to the heap), and the token
// ids are formatted at the end into one string (setTokenIDs).
func revocations(ctx context.Context, q db.Querier, org uuid.UUID, now time.Time, expect int) ([]snapshot.Revocation, error) {
	rows, err := q.Query(ctx, `SELECT jti, expires_at FROM gateway_tokens
		WHERE organization_id = $1 AND revoked_at IS NOT NULL AND expires_at > $2
		ORDER BY expires_at, jti`, org, now)
	if err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	defer rows.Close()
	out, ids := make([]snapshot.Revocation, 0, expect), make([]uuid.UUID, 0, expect)
	var jti uuid.UUID
	var expires time.Time
	dest := []any{(*[16]byte)(&jti), &expires} // binary, not uuid.UUID's sql.Scanner
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read revocations: %w", err)
		}
		out, ids = append(out, snapshot.Revocation{ExpiresAt: expires.UTC()}), append(ids, jti)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	setTokenIDs(out, ids)
	return out, nil
}

// setTokenIDs sets each revocation's TokenID to the text form of its id
// (ids[i] is out[i]'s). The strings are cut from one allocation, not one
// each: they are only ever used together, in the snapshot.
func setTokenIDs(out []snapshot.Revocation, ids []uuid.UUID) {
	const size = len("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
	var all strings.Builder
	all.Grow(size * len(ids))
	var text [size]byte
	for _, id := range ids {
		all.Write(db.AppendUUID(text[:0], id))
	}
	s := all.String()
	for i := range out {
		out[i].TokenID = s[i*size : (i+1)*size]
	}
}

// agents lists the environment's agents; only ACTIVE ones carry their live
// HMAC keys. Agents of other environments are not listed: a gateway holds
// the secrets of the agents that may call through it and no others.
// expect is the capacity to start with.
func (b *Builder) agents(ctx context.Context, q db.Querier, org uuid.UUID, env policy.Environment, now time.Time, expect int) ([]snapshot.Agent, error) {
	out, ids, err := listAgents(ctx, q, org, env, expect)
	if err != nil {
		return nil, err
	}
	keys, err := b.AgentKeys.LiveKeys(ctx, q, org, now)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Status == snapshot.StatusActive {
			out[i].Keys = hmacKeys(keys[ids[i]])
		}
	}
	return out, nil
}

// listAgents reads the environment's agents, without keys, and their ids
// (ids[i] is out[i]'s), with capacity for expect of them.
func listAgents(ctx context.Context, q db.Querier, org uuid.UUID, env policy.Environment, expect int) (out []snapshot.Agent, ids []uuid.UUID, err error) {
	rows, err := q.Query(ctx, `SELECT a.id, r.name, r.status, t.name, a.trust_level, a.trust_score
		FROM role_agents a
		JOIN role_templates t ON t.organization_id = a.organization_id AND t.id = a.role_template_id
		JOIN ans_registrations r ON r.organization_id = a.organization_id AND r.agent_id = a.id
		WHERE a.organization_id = $1 AND a.environment = $2 ORDER BY r.name`, org, env)
	if err != nil {
		return nil, nil, fmt.Errorf("read agents: %w", err)
	}
	defer rows.Close()
	// Never nil, like the revocations.
	out, ids = make([]snapshot.Agent, 0, expect), make([]uuid.UUID, 0, expect)
	// One set of destinations for every row, as in revocations; the id is
	// scanned as *[16]byte, from its binary form: as a uuid.UUID, a
	// sql.Scanner, pgx would format it as text and have it parsed.
	var a snapshot.Agent
	var id uuid.UUID
	var level int16
	dest := []any{(*[16]byte)(&id), &a.ANSName, &a.Status, &a.RoleTemplate, &level, &a.TrustScore}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, fmt.Errorf("read agents: %w", err)
		}
		a.ID, a.TrustLevel = id.String(), policy.TrustLevel(level)
		out, ids = append(out, a), append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read agents: %w", err)
	}
	return out, ids, nil
}

// hmacKeys converts an agent's live keys to the snapshot's form, nil if it
// has none.
func hmacKeys(keys []agents.Key) []snapshot.HMACKey {
	if len(keys) == 0 {
		return nil
	}
	out := make([]snapshot.HMACKey, len(keys))
	for i, k := range keys {
		out[i] = snapshot.HMACKey{ID: k.KID, Secret: k.Secret}
		if k.ExpiresAt != nil {
			t := k.ExpiresAt.UTC()
			out[i].ExpiresAt = &t
		}
	}
	return out
}

func activeBundle(ctx context.Context, q db.Querier, org uuid.UUID, env policy.Environment) (snapshot.Bundle, error) {
	served, err := bundles.ActiveBundle(ctx, q, org, env)
	if err != nil {
		// No active bundle: the snapshot denies everything with
		// policy_missing, which is what the environment asked for.
		if errors.Is(err, fault.ErrNotFound) {
			return snapshot.Bundle{Policies: []policy.Policy{}}, nil
		}
		return snapshot.Bundle{}, err
	}
	ps, err := bundles.Policies(served.Tarball)
	if err != nil {
		return snapshot.Bundle{}, fmt.Errorf("bundle %s: %w", served.ID, err)
	}
	kept := ps[:0]
	for _, p := range ps {
		if p.Environment == env {
			kept = append(kept, p)
		}
	}
	return snapshot.Bundle{ID: served.ID.String(), Revision: served.Revision, Policies: kept}, nil
}

// scopes is the sorted union of the policies' required scopes.
func scopes(ps []policy.Policy) []string {
	var out []string
	for _, p := range ps {
		for _, s := range p.RequiredScopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

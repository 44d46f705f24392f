package bundles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/policies"
	"github.com/knaight/knaight/shared/policy"
)

// Status is where a bundle is in its lifecycle: DRAFT (compiled, unsigned)
// -> PUBLISHED (signed) -> ACTIVE (served to the environment's sidecars) <->
// INACTIVE (replaced by a later activation); any but REVOKED -> REVOKED.
type Status string

// The bundle statuses.
const (
	Draft     Status = "DRAFT"
	Published Status = "PUBLISHED"
	Active    Status = "ACTIVE"
	Inactive  Status = "INACTIVE"
	Revoked   Status = "REVOKED"
)

// MediaType is the content type of a bundle tarball.
const MediaType = "application/vnd.openpolicyagent.bundles"

// Root is the bundle's only root: data.knaight and package knaight.policy.
const Root = "knaight"

// CompileRequest is what a bundle is compiled from.
type CompileRequest struct {
	Version     string
	Environment policy.Environment
	// PolicyIDs are the policies to include; empty means every policy of
	// the organization in Environment.
	PolicyIDs []uuid.UUID
	Artifacts []string
	Controls  []string
}

// Bundle is a bundle's metadata; the tarball is served on its own.
type Bundle struct {
	ID               uuid.UUID          `json:"id"`
	OrganizationID   uuid.UUID          `json:"organizationId"`
	Environment      policy.Environment `json:"environment"`
	Version          string             `json:"version"`
	Status           Status             `json:"status" enum:"DRAFT,PUBLISHED,ACTIVE,INACTIVE,REVOKED"`
	Revision         string             `json:"revision" doc:"The manifest revision OPA reports for the bundle."`
	ContentHash      string             `json:"contentHash" doc:"SHA-256 (hex) of the tarball as served."`
	PolicyIDs        []uuid.UUID        `json:"policyIds"`
	Artifacts        []string           `json:"artifacts"`
	Controls         []string           `json:"controls"`
	SignerID         *string            `json:"signerId,omitempty"`
	SigningKeyID     *string            `json:"signingKeyId,omitempty"`
	SignedAt         *time.Time         `json:"signedAt,omitempty"`
	PublishedAt      *time.Time         `json:"publishedAt,omitempty"`
	ActivatedAt      *time.Time         `json:"activatedAt,omitempty"`
	RevokedAt        *time.Time         `json:"revokedAt,omitempty"`
	PreviousActiveID *uuid.UUID         `json:"previousActiveId,omitempty" doc:"The bundle that was active when this one was activated; revoking this one while active reactivates it."`
	CreatedBy        string             `json:"createdBy"`
	CreatedAt        time.Time          `json:"createdAt"`
}

// ContentHash is the SHA-256, in hex, of a tarball.
func ContentHash(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// resolve loads the policies a request names, or all of the environment's.
func resolve(ctx context.Context, q db.Querier, org uuid.UUID, req CompileRequest) ([]policies.Policy, error) {
	if len(req.PolicyIDs) == 0 {
		return policies.List(ctx, q, org, uuid.Nil, req.Environment)
	}
	inv := &fault.Invalid{}
	out := make([]policies.Policy, 0, len(req.PolicyIDs))
	for i, id := range req.PolicyIDs {
		field := "policies[" + strconv.Itoa(i) + "]"
		p, err := policies.Get(ctx, q, org, id)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			inv.Add(field, "no such policy in this organization", id)
		case err != nil:
			return nil, err
		case p.Environment != req.Environment:
			inv.Add(field, "the policy is for "+string(p.Environment)+", the bundle for "+string(req.Environment), id)
		default:
			out = append(out, p)
		}
	}
	return out, inv.Err()
}

// build writes the unsigned tarball of a bundle.
func build(req CompileRequest, models []policy.Policy, id uuid.UUID) ([]byte, error) {
	raw, err := json.Marshal(map[string]any{Root: map[string]any{"policies": models}})
	if err != nil {
		return nil, fmt.Errorf("encode bundle data: %w", err)
	}
	var data map[string]any
	if err := util.UnmarshalJSON(raw, &data); err != nil {
		return nil, fmt.Errorf("decode bundle data: %w", err)
	}
	roots := []string{Root}
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: req.Version, Roots: &roots, Metadata: map[string]any{
			"bundleId": id.String(), "environment": string(req.Environment), "semanticsVersion": policy.SemanticsVersion,
		}},
		Data:    data,
		Modules: []bundle.ModuleFile{{URL: LibraryPath, Path: LibraryPath, Raw: Library}},
	}
	var buf bytes.Buffer
	if err := bundle.Write(&buf, b); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// Compile builds a DRAFT bundle from the organization's policies and
// records BUNDLE_COMPILED. Invalid or unknown policies are field errors at
// "policies[i]"; a version already used in the environment is a conflict.
func Compile(ctx context.Context, tx pgx.Tx, org uuid.UUID, req CompileRequest, actor string, now time.Time) (Bundle, error) {
	ps, err := resolve(ctx, tx, org, req)
	if err != nil {
		return Bundle{}, err
	}
	models := make([]policy.Policy, len(ps))
	for i, p := range ps {
		models[i] = p.Model()
	}
	var verr *policy.ValidationError
	if _, err := policy.Compile(models); errors.As(err, &verr) {
		inv := &fault.Invalid{}
		for _, fe := range verr.Errors {
			// fe.Field starts with the policy's index in models, which is
			// the request's index when it named the policies.
			inv.Add("policies"+fe.Field, "policy "+indexedID(models, fe.Field)+": "+fe.Message, fe.Value)
		}
		return Bundle{}, inv
	} else if err != nil {
		return Bundle{}, err
	}
	b := Bundle{
		ID: uuid.New(), OrganizationID: org, Environment: req.Environment, Version: req.Version, Status: Draft, Revision: req.Version,
		PolicyIDs: make([]uuid.UUID, len(ps)), Artifacts: nonNil(req.Artifacts), Controls: nonNil(req.Controls),
		CreatedBy: actor, CreatedAt: now.UTC().Truncate(time.Microsecond),
	}
	for i, p := range ps {
		b.PolicyIDs[i] = p.ID
	}
	tarball, err := build(req, models, b.ID)
	if err != nil {
		return Bundle{}, err
	}
	b.ContentHash = ContentHash(tarball)
	_, err = tx.Exec(ctx, `INSERT INTO policy_bundles (id, organization_id, environment, version, status, revision, content_hash, tarball, policy_ids, artifacts, controls, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		b.ID, org, b.Environment, b.Version, b.Status, b.Revision, b.ContentHash, tarball, b.PolicyIDs, b.Artifacts, b.Controls, b.CreatedBy, b.CreatedAt)
	if db.IsUniqueViolation(err, "policy_bundles_organization_id_environment_version_key") {
		return Bundle{}, fmt.Errorf("version %q already exists in %s: %w", req.Version, req.Environment, fault.ErrConflict)
	}
	if err != nil {
		return Bundle{}, fmt.Errorf("store bundle: %w", err)
	}
	return b, appendEvent(ctx, tx, b, "BUNDLE_COMPILED", actor, now, map[string]any{"policyIds": b.PolicyIDs, "artifacts": b.Artifacts, "controls": b.Controls})
}

// indexedID returns the id of the policy a Compile field path ("[2].minLoa")
// starts with.
func indexedID(models []policy.Policy, field string) string {
	var i int
	if _, err := fmt.Sscanf(field, "[%d]", &i); err != nil || i < 0 || i >= len(models) {
		return "?"
	}
	return models[i].ID
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func appendEvent(ctx context.Context, tx pgx.Tx, b Bundle, typ, actor string, now time.Time, extra map[string]any) error {
	details := map[string]any{"version": b.Version, "environment": b.Environment, "status": b.Status, "contentHash": b.ContentHash}
	for k, v := range extra {
		details[k] = v
	}
	_, err := ledger.Append(ctx, tx, ledger.Entry{OrganizationID: b.OrganizationID, Type: typ, Actor: actor, SubjectType: "policy_bundle", SubjectID: b.ID.String(), Details: details}, now)
	return err
}

// Publish signs a DRAFT bundle with the organization's bundle signing key,
// puts .signatures.json into its tarball and records BUNDLE_PUBLISHED. Any
// other status is a conflict.
func (k Keys) Publish(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, signer, actor string, now time.Time) (Bundle, error) {
	b, err := lock(ctx, tx, org, id)
	if err != nil {
		return Bundle{}, err
	}
	if b.Status != Draft {
		return Bundle{}, fmt.Errorf("bundle %s is %s; only a DRAFT bundle can be published: %w", id, b.Status, fault.ErrConflict)
	}
	key, err := k.get(ctx, tx, org, actor, now)
	if err != nil {
		return Bundle{}, err
	}
	var tarball []byte
	if err := tx.QueryRow(ctx, `SELECT tarball FROM policy_bundles WHERE organization_id = $1 AND id = $2`, org, id).Scan(&tarball); err != nil {
		return Bundle{}, fmt.Errorf("load bundle %s: %w", id, err)
	}
	ob, err := bundle.NewReader(bytes.NewReader(tarball)).Read()
	if err != nil {
		return Bundle{}, fmt.Errorf("read bundle %s: %w", id, err)
	}
	if err := ob.GenerateSignature(bundle.NewSigningConfig(key.pem, Algorithm, ""), key.KeyID, true); err != nil {
		return Bundle{}, fmt.Errorf("sign bundle %s: %w", id, err)
	}
	var buf bytes.Buffer
	if err := bundle.Write(&buf, ob); err != nil {
		return Bundle{}, fmt.Errorf("write bundle %s: %w", id, err)
	}
	t := now.UTC().Truncate(time.Microsecond)
	b.Status, b.ContentHash, b.SignerID, b.SigningKeyID, b.SignedAt, b.PublishedAt = Published, ContentHash(buf.Bytes()), &signer, &key.KeyID, &t, &t
	_, err = tx.Exec(ctx, `UPDATE policy_bundles SET status = $3, content_hash = $4, tarball = $5, signer_id = $6, signing_kid = $7, signed_at = $8, published_at = $8
		WHERE organization_id = $1 AND id = $2`, org, id, b.Status, b.ContentHash, buf.Bytes(), signer, key.KeyID, t)
	if err != nil {
		return Bundle{}, fmt.Errorf("publish bundle %s: %w", id, err)
	}
	return b, appendEvent(ctx, tx, b, "BUNDLE_PUBLISHED", actor, now, map[string]any{"signerId": signer, "kid": key.KeyID})
}

// Activate makes a PUBLISHED or INACTIVE bundle the ACTIVE one of its
// environment, turns the previous ACTIVE one INACTIVE and remembers it for
// rollback, and records BUNDLE_ACTIVATED. Other statuses are a conflict.
func Activate(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, actor string, now time.Time) (Bundle, error) {
	b, err := lock(ctx, tx, org, id)
	if err != nil {
		return Bundle{}, err
	}
	if b.Status != Published && b.Status != Inactive {
		return Bundle{}, fmt.Errorf("bundle %s is %s; only a PUBLISHED or INACTIVE bundle can be activated: %w", id, b.Status, fault.ErrConflict)
	}
	var prev *uuid.UUID
	err = tx.QueryRow(ctx, `UPDATE policy_bundles SET status = 'INACTIVE' WHERE organization_id = $1 AND environment = $2 AND status = 'ACTIVE' RETURNING id`,
		org, b.Environment).Scan(&prev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Bundle{}, fmt.Errorf("deactivate bundle: %w", err)
	}
	if err := setActive(ctx, tx, &b, prev, now); err != nil {
		return Bundle{}, err
	}
	extra := map[string]any{}
	if prev != nil {
		extra["previousActiveId"] = prev.String()
	}
	return b, appendEvent(ctx, tx, b, "BUNDLE_ACTIVATED", actor, now, extra)
}

func setActive(ctx context.Context, tx pgx.Tx, b *Bundle, prev *uuid.UUID, now time.Time) error {
	t := now.UTC().Truncate(time.Microsecond)
	b.Status, b.ActivatedAt = Active, &t
	if prev != nil {
		b.PreviousActiveID = prev
	}
	_, err := tx.Exec(ctx, `UPDATE policy_bundles SET status = 'ACTIVE', activated_at = $3, previous_active_id = $4 WHERE organization_id = $1 AND id = $2`,
		b.OrganizationID, b.ID, t, b.PreviousActiveID)
	if db.IsUniqueViolation(err, "policy_bundles_active") {
		return fmt.Errorf("another bundle of %s was activated at the same time: %w", b.Environment, fault.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("activate bundle %s: %w", b.ID, err)
	}
	return nil
}

// Revoke marks a bundle REVOKED and records BUNDLE_REVOKED. Revoking the
// ACTIVE bundle rolls back: the bundle that was active before it becomes
// ACTIVE again (BUNDLE_ACTIVATED with cause "rollback") unless it was revoked
// too, in which case the environment has no active bundle. Revoking a
// REVOKED bundle is a conflict.
func Revoke(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, actor string, now time.Time) (Bundle, *Bundle, error) {
	b, err := lock(ctx, tx, org, id)
	if err != nil {
		return Bundle{}, nil, err
	}
	if b.Status == Revoked {
		return Bundle{}, nil, fmt.Errorf("bundle %s is already REVOKED: %w", id, fault.ErrConflict)
	}
	wasActive := b.Status == Active
	t := now.UTC().Truncate(time.Microsecond)
	b.Status, b.RevokedAt = Revoked, &t
	if _, err := tx.Exec(ctx, `UPDATE policy_bundles SET status = 'REVOKED', revoked_at = $3 WHERE organization_id = $1 AND id = $2`, org, id, t); err != nil {
		return Bundle{}, nil, fmt.Errorf("revoke bundle %s: %w", id, err)
	}
	if err := appendEvent(ctx, tx, b, "BUNDLE_REVOKED", actor, now, map[string]any{"wasActive": wasActive}); err != nil {
		return Bundle{}, nil, err
	}
	if !wasActive || b.PreviousActiveID == nil {
		return b, nil, nil
	}
	prev, err := lock(ctx, tx, org, *b.PreviousActiveID)
	if err != nil {
		return Bundle{}, nil, err
	}
	if prev.Status != Inactive {
		return b, nil, nil
	}
	if err := setActive(ctx, tx, &prev, nil, now); err != nil {
		return Bundle{}, nil, err
	}
	return b, &prev, appendEvent(ctx, tx, prev, "BUNDLE_ACTIVATED", actor, now, map[string]any{"cause": "rollback", "revokedBundleId": id.String()})
}

const selectBundle = `SELECT id, organization_id, environment, version, status, revision, content_hash, policy_ids, artifacts, controls,
	signer_id, signing_kid, signed_at, published_at, activated_at, revoked_at, previous_active_id, created_by, created_at FROM policy_bundles`

func scan(row pgx.CollectableRow) (Bundle, error) {
	var b Bundle
	err := row.Scan(&b.ID, &b.OrganizationID, &b.Environment, &b.Version, &b.Status, &b.Revision, &b.ContentHash, &b.PolicyIDs, &b.Artifacts, &b.Controls,
		&b.SignerID, &b.SigningKeyID, &b.SignedAt, &b.PublishedAt, &b.ActivatedAt, &b.RevokedAt, &b.PreviousActiveID, &b.CreatedBy, &b.CreatedAt)
	b.CreatedAt = b.CreatedAt.UTC()
	for _, t := range []*time.Time{b.SignedAt, b.PublishedAt, b.ActivatedAt, b.RevokedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return b, err
}

func one(ctx context.Context, q db.Querier, sql string, org, id uuid.UUID) (Bundle, error) {
	rows, err := q.Query(ctx, sql, org, id)
	if err != nil {
		return Bundle{}, fmt.Errorf("get bundle: %w", err)
	}
	b, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("bundle %s: %w", id, fault.ErrNotFound)
	}
	return b, err
}

// lock returns a bundle locked for update.
func lock(ctx context.Context, tx pgx.Tx, org, id uuid.UUID) (Bundle, error) {
	return one(ctx, tx, selectBundle+` WHERE organization_id = $1 AND id = $2 FOR UPDATE`, org, id)
}

// Get returns one of the organization's bundles.
func Get(ctx context.Context, q db.Querier, org, id uuid.UUID) (Bundle, error) {
	return one(ctx, q, selectBundle+` WHERE organization_id = $1 AND id = $2`, org, id)
}

// Tarball returns a bundle's tarball as stored (signed once published).
func Tarball(ctx context.Context, q db.Querier, org, id uuid.UUID) ([]byte, error) {
	var t []byte
	err := q.QueryRow(ctx, `SELECT tarball FROM policy_bundles WHERE organization_id = $1 AND id = $2`, org, id).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("bundle %s: %w", id, fault.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", id, err)
	}
	return t, nil
}

// List returns the organization's bundles, newest first, optionally of one
// environment or status.
func List(ctx context.Context, q db.Querier, org uuid.UUID, env policy.Environment, status Status) ([]Bundle, error) {
	rows, err := q.Query(ctx, selectBundle+` WHERE organization_id = $1 AND ($2 = '' OR environment = $2) AND ($3 = '' OR status = $3)
		ORDER BY created_at DESC, id`, org, string(env), string(status))
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	return pgx.CollectRows(rows, scan)
}

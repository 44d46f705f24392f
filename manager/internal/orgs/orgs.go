// Package orgs manages organizations, the manager's tenants. Creating one
// starts its ledger chain, and bootstrapping the first one also creates its
// first admin key and seeds the baseline role templates, trust thresholds
// and MCP policies, so a new installation enforces something sensible from
// its first minute.
package orgs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/knaight/knaight/manager/internal/ans"
	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
)

// Organization is a tenant.
type Organization struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	ANSDomain string    `json:"ansDomain"`
	CreatedAt time.Time `json:"createdAt"`
}

// New describes an organization to create.
type New struct {
	Name string `json:"name" minLength:"1" maxLength:"200" doc:"Display name."`
	Slug string `json:"slug" minLength:"1" maxLength:"63" pattern:"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$" doc:"Short unique identifier: lowercase letters, digits and hyphens."`
	// ANSDomain is the DNS suffix under which the organization's agents are
	// named: agent "deploy-bot" becomes ans://v1.0.0.deploy-bot.<ansDomain>.
	ANSDomain string `json:"ansDomain" minLength:"3" maxLength:"200" doc:"DNS suffix of the organization's agents' ANS names, e.g. agents.example.com."`
}

var slugRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// Validate reports every invalid field of n.
func (n New) Validate() error {
	var inv fault.Invalid
	if n.Name == "" || len(n.Name) > 200 {
		inv.Add("name", "must be 1 to 200 characters", n.Name)
	}
	if len(n.Slug) > 63 || !slugRe.MatchString(n.Slug) {
		inv.Add("slug", "must be 1 to 63 lowercase letters, digits or inner hyphens", n.Slug)
	}
	if err := ans.CheckHost(n.ANSDomain); err != nil || len(n.ANSDomain) > 200 {
		// Agents are named <label>.<ansDomain>: keep room for a 63-byte label.
		inv.Add("ansDomain", "must be a lowercase DNS name with at least two labels, at most 200 bytes, such as agents.example.com", n.ANSDomain)
	}
	return inv.Err()
}

// Create stores a new organization in tx, starts its ledger chain and
// records ORGANIZATION_CREATED.
func Create(ctx context.Context, tx pgx.Tx, n New, actor string, now time.Time) (Organization, error) {
	if err := n.Validate(); err != nil {
		return Organization{}, err
	}
	o := Organization{ID: uuid.New(), Name: n.Name, Slug: n.Slug, ANSDomain: n.ANSDomain, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	_, err := tx.Exec(ctx, `INSERT INTO organizations (id, name, slug, ans_domain, created_at) VALUES ($1, $2, $3, $4, $5)`,
		o.ID, o.Name, o.Slug, o.ANSDomain, o.CreatedAt)
	if db.IsUniqueViolation(err, "organizations_slug_key") {
		return Organization{}, fmt.Errorf("organization slug %q is taken: %w", n.Slug, fault.ErrConflict)
	}
	if err != nil {
		return Organization{}, fmt.Errorf("create organization: %w", err)
	}
	if err := ledger.Init(ctx, tx, o.ID); err != nil {
		return Organization{}, err
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{
		OrganizationID: o.ID, Type: "ORGANIZATION_CREATED", Actor: actor, SubjectType: "organization", SubjectID: o.ID.String(),
		Details: map[string]any{"name": o.Name, "slug": o.Slug, "ansDomain": o.ANSDomain},
	}, now)
	return o, err
}

// Get returns an organization by id.
func Get(ctx context.Context, q db.Querier, id uuid.UUID) (Organization, error) {
	var o Organization
	err := q.QueryRow(ctx, `SELECT id, name, slug, ans_domain, created_at FROM organizations WHERE id = $1`, id).
		Scan(&o.ID, &o.Name, &o.Slug, &o.ANSDomain, &o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, fmt.Errorf("organization %s: %w", id, fault.ErrNotFound)
	}
	o.CreatedAt = o.CreatedAt.UTC()
	return o, err
}

// Any reports whether any organization exists.
func Any(ctx context.Context, q db.Querier) (bool, error) {
	var exists bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM organizations)`).Scan(&exists)
	return exists, err
}

// Bootstrapped is the result of Bootstrap. Token is the admin key's secret;
// it exists nowhere else.
type Bootstrapped struct {
	Organization Organization
	AdminKey     auth.Key
	Token        string
}

// bootstrapLock serialises bootstraps so two racing calls cannot both see
// an empty installation.
const bootstrapLock = 0x6b6e616967687401

// Bootstrap creates an organization with its first admin key and seeds its
// baseline role templates, trust thresholds and MCP policies, all in one
// transaction. With firstOnly it refuses (fault.ErrConflict) once any
// organization exists: that is the unauthenticated-installation path.
func Bootstrap(ctx context.Context, pool *pgxpool.Pool, n New, keyName string, firstOnly bool, actor string, now time.Time) (Bootstrapped, error) {
	if err := n.Validate(); err != nil {
		return Bootstrapped{}, err
	}
	var b Bootstrapped
	err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(bootstrapLock)); err != nil {
			return fmt.Errorf("bootstrap lock: %w", err)
		}
		if firstOnly {
			exists, err := Any(ctx, tx)
			if err != nil {
				return fmt.Errorf("bootstrap: %w", err)
			}
			if exists {
				return fmt.Errorf("the installation is already bootstrapped: %w", fault.ErrConflict)
			}
		}
		var err error
		if b.Organization, err = Create(ctx, tx, n, actor, now); err != nil {
			return err
		}
		if b.AdminKey, b.Token, err = auth.CreateKey(ctx, tx, b.Organization.ID, keyName, auth.RoleAdmin, actor, now); err != nil {
			return err
		}
		return seed(ctx, tx, b.Organization, actor, now)
	})
	return b, err
}

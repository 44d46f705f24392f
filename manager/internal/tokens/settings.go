package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
)

// Signing algorithms. EdDSA (Ed25519) is the default; HS256 is kept for
// gateways and clients that only speak shared-secret JWTs.
const (
	EdDSA = "EdDSA"
	HS256 = "HS256"
)

// Settings are an organization's token policy.
type Settings struct {
	Algorithm         string   `json:"algorithm" enum:"EdDSA,HS256" doc:"How new tokens are signed: EdDSA (Ed25519, published in the JWKS) or HS256 (shared secret, for compatibility)."`
	DefaultTTLSeconds int      `json:"defaultTtlSeconds" minimum:"60" maximum:"86400" doc:"Lifetime of a token that asks for none (default 900: 15 minutes)."`
	MaxTTLSeconds     int      `json:"maxTtlSeconds" minimum:"60" maximum:"86400" doc:"The longest lifetime a token may ask for."`
	Audiences         []string `json:"audiences" maxItems:"32" doc:"The protected MCP resources (RFC 8707 resource identifiers) tokens may be issued for; the first is the default audience."`
}

// Validate reports every invalid field.
func (s Settings) Validate() error {
	var inv fault.Invalid
	if s.Algorithm != EdDSA && s.Algorithm != HS256 {
		inv.Add("algorithm", "must be EdDSA or HS256", s.Algorithm)
	}
	if s.MaxTTLSeconds < 60 || s.MaxTTLSeconds > 86400 {
		inv.Add("maxTtlSeconds", "must be between 60 and 86400", s.MaxTTLSeconds)
	}
	if s.DefaultTTLSeconds < 60 || s.DefaultTTLSeconds > s.MaxTTLSeconds {
		inv.Add("defaultTtlSeconds", "must be at least 60 and at most maxTtlSeconds", s.DefaultTTLSeconds)
	}
	for i, a := range s.Audiences {
		if err := checkResource(a); err != nil {
			inv.Add(fmt.Sprintf("audiences[%d]", i), err.Error(), a)
		} else if slices.Index(s.Audiences, a) != i {
			inv.Add(fmt.Sprintf("audiences[%d]", i), "duplicate audience", a)
		}
	}
	return inv.Err()
}

// checkResource applies RFC 8707: an absolute URI without a fragment.
func checkResource(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return errors.New("must be an absolute URI such as https://mcp.example.com/mcp")
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("must be an http or https URI")
	case u.Fragment != "" || u.RawFragment != "":
		return errors.New("must not have a fragment (RFC 8707)")
	case len(s) > 500:
		return errors.New("must be at most 500 bytes")
	}
	return nil
}

// GetSettings returns the organization's token settings.
func GetSettings(ctx context.Context, q db.Querier, org uuid.UUID) (Settings, error) {
	return scanSettings(q.QueryRow(ctx, selectSettings, org), org)
}

const selectSettings = `SELECT token_algorithm, token_default_ttl_seconds, token_max_ttl_seconds, token_audiences FROM organizations WHERE id = $1`

func scanSettings(row pgx.Row, org uuid.UUID) (Settings, error) {
	var s Settings
	err := row.Scan(&s.Algorithm, &s.DefaultTTLSeconds, &s.MaxTTLSeconds, &s.Audiences)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("organization %s: %w", org, fault.ErrNotFound)
	}
	return s, err
}

// SetSettings stores the organization's token settings and records
// TOKEN_SETTINGS_UPDATED. Switching the algorithm makes sure a signing key
// of the new algorithm exists; tokens signed before keep verifying.
func (k Keys) SetSettings(ctx context.Context, tx pgx.Tx, org uuid.UUID, s Settings, actor string, now time.Time) (Settings, error) {
	if s.Audiences == nil {
		s.Audiences = []string{}
	}
	if err := s.Validate(); err != nil {
		return s, err
	}
	_, err := tx.Exec(ctx, `UPDATE organizations SET token_algorithm = $2, token_default_ttl_seconds = $3, token_max_ttl_seconds = $4, token_audiences = $5 WHERE id = $1`,
		org, s.Algorithm, s.DefaultTTLSeconds, s.MaxTTLSeconds, s.Audiences)
	if err != nil {
		return s, fmt.Errorf("store token settings: %w", err)
	}
	if _, err := k.active(ctx, tx, org, s.Algorithm, actor, now); err != nil {
		return s, err
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "TOKEN_SETTINGS_UPDATED", Actor: actor, SubjectType: "organization", SubjectID: org.String(),
		Details: s}, now)
	return s, err
}

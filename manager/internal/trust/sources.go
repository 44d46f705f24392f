package trust

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/seal"
)

// Source is an external system allowed to push signals of some kinds
// through the signed webhook.
type Source struct {
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	Kinds     []string   `json:"kinds"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// SourceInput registers a source.
type SourceInput struct {
	Name  string   `json:"name" minLength:"1" maxLength:"100" pattern:"^[a-z0-9][a-z0-9._-]*$" doc:"e.g. scw, isaca, scorecard."`
	Kinds []string `json:"kinds" minItems:"1" maxItems:"32" doc:"The signal kinds this source may report."`
}

// NewSource is a registered source with its webhook secret, shown once.
type NewSource struct {
	Source
	Secret string `json:"secret" doc:"The webhook's HMAC-SHA256 key, base64url. Shown only in this response."`
}

func sourceAAD(org, id uuid.UUID) []byte {
	return []byte("trust-source\x00" + org.String() + "\x00" + id.String())
}

// CreateSource registers a source and records TRUST_SOURCE_CREATED.
func CreateSource(ctx context.Context, tx pgx.Tx, sealer *seal.Sealer, org uuid.UUID, in SourceInput, actor string, now time.Time) (NewSource, error) {
	var inv fault.Invalid
	for i, k := range in.Kinds {
		if _, ok := LookupKind(k); !ok {
			inv.Add(fmt.Sprintf("kinds[%d]", i), "unknown signal kind (see docs/trust.md)", k)
		} else if slices.Index(in.Kinds, k) != i {
			inv.Add(fmt.Sprintf("kinds[%d]", i), "duplicate kind", k)
		}
	}
	if err := inv.Err(); err != nil {
		return NewSource{}, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	s := NewSource{Source: Source{ID: uuid.New(), Name: in.Name, Kinds: in.Kinds, CreatedAt: now.UTC().Truncate(time.Microsecond)},
		Secret: base64.RawURLEncoding.EncodeToString(secret)}
	_, err := tx.Exec(ctx, `INSERT INTO trust_sources (id, organization_id, name, kinds, secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		s.ID, org, s.Name, s.Kinds, sealer.Seal(secret, sourceAAD(org, s.ID)), s.CreatedAt)
	if db.IsUniqueViolation(err, "trust_sources_organization_id_name_key") {
		return NewSource{}, fmt.Errorf("a source named %q exists: %w", in.Name, fault.ErrConflict)
	}
	if err != nil {
		return NewSource{}, fmt.Errorf("create source: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "TRUST_SOURCE_CREATED", Actor: actor, SubjectType: "trust_source", SubjectID: s.ID.String(),
		Details: map[string]any{"name": s.Name, "kinds": s.Kinds}}, now)
	return s, err
}

// RevokeSource stops a source's webhook and records TRUST_SOURCE_REVOKED.
// Signals it already delivered keep counting until they expire.
func RevokeSource(ctx context.Context, tx pgx.Tx, org, id uuid.UUID, actor string, now time.Time) error {
	var name string
	err := tx.QueryRow(ctx, `UPDATE trust_sources SET revoked_at = $3 WHERE organization_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING name`, org, id, now).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("source %s: %w", id, fault.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke source: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "TRUST_SOURCE_REVOKED", Actor: actor, SubjectType: "trust_source", SubjectID: id.String(),
		Details: map[string]any{"name": name}}, now)
	return err
}

// ListSources returns the organization's sources by name.
func ListSources(ctx context.Context, q db.Querier, org uuid.UUID) ([]Source, error) {
	rows, err := q.Query(ctx, `SELECT id, name, kinds, created_at, revoked_at FROM trust_sources WHERE organization_id = $1 ORDER BY name`, org)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Source, error) {
		var s Source
		err := row.Scan(&s.ID, &s.Name, &s.Kinds, &s.CreatedAt, &s.RevokedAt)
		s.CreatedAt = s.CreatedAt.UTC()
		return s, err
	})
}

// Webhook errors. Callers answer 401 for ErrWebhookAuth and 409 for
// ErrWebhookReplay, and never say more than the sentinel does.
var (
	// ErrWebhookAuth means the delivery's source, timestamp or signature did
	// not check out.
	ErrWebhookAuth = errors.New("webhook signature, timestamp or source rejected")
	// ErrWebhookReplay means this exact delivery was accepted before.
	ErrWebhookReplay = errors.New("webhook delivery replayed")
)

// WebhookSignature computes the signature a source sends for body at
// timestamp: "hmac-sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func WebhookSignature(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "hmac-sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Delivery is the body a source posts to its webhook.
type Delivery struct {
	AgentID    *uuid.UUID      `json:"agentId,omitempty"`
	ANSName    string          `json:"ansName,omitempty"`
	Kind       string          `json:"kind"`
	Value      float64         `json:"value"`
	ObservedAt time.Time       `json:"observedAt"`
	ExpiresAt  *time.Time      `json:"expiresAt,omitempty"`
	Evidence   json.RawMessage `json:"evidence,omitempty"`
}

// Webhook verifies and records a signed delivery from a source.
type Webhook struct {
	Sealer *seal.Sealer
	// Window is the accepted clock skew of the timestamp, and how long a
	// signature is remembered to refuse replays.
	Window time.Duration
}

// Deliver checks the delivery's source, timestamp (RFC 3339, within
// Window of now) and signature (constant-time), refuses a replay, and
// records the signal as the source, in tx.
func (w Webhook) Deliver(ctx context.Context, tx pgx.Tx, sourceID uuid.UUID, timestamp, signature string, body []byte, now time.Time) (StoredSignal, error) {
	var org uuid.UUID
	var name string
	var kinds []string
	var sealed []byte
	var revoked *time.Time
	err := tx.QueryRow(ctx, `SELECT organization_id, name, kinds, secret_sealed, revoked_at FROM trust_sources WHERE id = $1`, sourceID).
		Scan(&org, &name, &kinds, &sealed, &revoked)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && revoked != nil) {
		return StoredSignal{}, ErrWebhookAuth
	}
	if err != nil {
		return StoredSignal{}, fmt.Errorf("load source: %w", err)
	}
	ts, err := time.Parse(time.RFC3339, timestamp)
	if err != nil || ts.Before(now.Add(-w.Window)) || ts.After(now.Add(w.Window)) {
		return StoredSignal{}, ErrWebhookAuth
	}
	secret, err := w.Sealer.Open(sealed, sourceAAD(org, sourceID))
	if err != nil {
		return StoredSignal{}, fmt.Errorf("open source secret: %w", err)
	}
	want := WebhookSignature(secret, timestamp, body)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(signature))) {
		return StoredSignal{}, ErrWebhookAuth
	}
	digest := sha256.Sum256([]byte(want))
	tag, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (source_id, signature, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, sourceID, digest[:], now)
	if err != nil {
		return StoredSignal{}, fmt.Errorf("remember delivery: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return StoredSignal{}, ErrWebhookReplay
	}

	var d Delivery
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return StoredSignal{}, fault.Field("", "body is not a valid delivery: "+err.Error(), nil)
	}
	if !slices.Contains(kinds, d.Kind) {
		return StoredSignal{}, fault.Field("kind", "this source may not report kind "+d.Kind, d.Kind)
	}
	agent, err := w.resolve(ctx, tx, org, d)
	if err != nil {
		return StoredSignal{}, err
	}
	s, _, err := RecordSignal(ctx, tx, org, agent, SignalInput{Source: name, Kind: d.Kind, Value: d.Value, ObservedAt: d.ObservedAt, ExpiresAt: d.ExpiresAt, Evidence: d.Evidence},
		&sourceID, "source:"+name, now)
	return s, err
}

func (w Webhook) resolve(ctx context.Context, tx pgx.Tx, org uuid.UUID, d Delivery) (uuid.UUID, error) {
	var id uuid.UUID
	var err error
	switch {
	case d.AgentID != nil && d.ANSName == "":
		err = tx.QueryRow(ctx, `SELECT id FROM role_agents WHERE organization_id = $1 AND id = $2`, org, *d.AgentID).Scan(&id)
	case d.AgentID == nil && d.ANSName != "":
		err = tx.QueryRow(ctx, `SELECT agent_id FROM ans_registrations WHERE organization_id = $1 AND name = $2`, org, d.ANSName).Scan(&id)
	default:
		return id, fault.Field("agentId", "name the agent by exactly one of agentId and ansName", nil)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return id, fault.Field("agentId", "no such agent in the source's organization", nil)
	}
	return id, err
}

// ForgetDeliveries deletes remembered webhook signatures older than the
// window: their timestamps would be refused anyway.
func (w Webhook) ForgetDeliveries(ctx context.Context, q db.Querier, now time.Time) error {
	_, err := q.Exec(ctx, `DELETE FROM webhook_deliveries WHERE received_at < $1`, now.Add(-2*w.Window))
	return err
}

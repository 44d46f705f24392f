package trust

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/manager/internal/tokens"
	"github.com/knaight/knaight/shared/policy"
)

// MaxEvidenceBytes bounds a signal's evidence document.
const MaxEvidenceBytes = 16 << 10

// SignalInput is a signal as an admin, operator or source submits it.
type SignalInput struct {
	Source     string          `json:"source" minLength:"1" maxLength:"100" doc:"Who observed it: a connector (github, scorecard), a source name, or an attesting admin."`
	Kind       string          `json:"kind" minLength:"1" maxLength:"100" doc:"A kind from the catalogue in docs/trust.md, e.g. scorecard.score."`
	Value      float64         `json:"value" doc:"The observation, in the kind's unit (see docs/trust.md)."`
	ObservedAt time.Time       `json:"observedAt" doc:"When the source observed it (RFC 3339)."`
	ExpiresAt  *time.Time      `json:"expiresAt,omitempty" doc:"When it stops counting (RFC 3339)."`
	Evidence   json.RawMessage `json:"evidence,omitempty" doc:"A JSON object that lets an auditor check the observation (URLs, digests, badge ids)."`
}

// StoredSignal is a recorded signal.
type StoredSignal struct {
	Signal
	AgentID    uuid.UUID       `json:"agentId"`
	Evidence   json.RawMessage `json:"evidence"`
	RecordedBy string          `json:"recordedBy"`
	CreatedAt  time.Time       `json:"createdAt"`
}

// fieldErrors turns the model's joined *FieldError into a fault.Invalid.
func fieldErrors(err error, prefix string) error {
	if err == nil {
		return nil
	}
	inv := &fault.Invalid{}
	var collect func(error)
	collect = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				collect(x)
			}
			return
		}
		var fe *FieldError
		if errors.As(e, &fe) {
			inv.Add(prefix+fe.Path, fe.Reason, nil)
		} else {
			inv.Add(prefix, e.Error(), nil)
		}
	}
	collect(err)
	return inv
}

// RecordSignal stores a signal for one of the organization's agents, records
// TRUST_SIGNAL_RECORDED and recomputes the agent's trust, all in tx.
func RecordSignal(ctx context.Context, tx pgx.Tx, org, agent uuid.UUID, in SignalInput, sourceID *uuid.UUID, actor string, now time.Time) (StoredSignal, Assessment, error) {
	s := StoredSignal{
		Signal: Signal{ID: uuid.NewString(), Source: in.Source, Kind: in.Kind, Value: in.Value,
			ObservedAt: in.ObservedAt.UTC().Truncate(time.Microsecond)},
		AgentID: agent, Evidence: in.Evidence, RecordedBy: actor, CreatedAt: now.UTC().Truncate(time.Microsecond),
	}
	if in.ExpiresAt != nil {
		t := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		s.ExpiresAt = &t
	}
	err := s.Signal.Validate()
	inv, _ := fieldErrors(err, "").(*fault.Invalid)
	if inv == nil {
		inv = &fault.Invalid{}
	}
	if !s.ObservedAt.IsZero() && s.ObservedAt.After(now.Add(ClockSkew)) {
		inv.Add("observedAt", "is in the future beyond the allowed clock skew of "+ClockSkew.String(), in.ObservedAt)
	}
	if s.ExpiresAt != nil && !s.ExpiresAt.After(now) {
		inv.Add("expiresAt", "has already passed", in.ExpiresAt)
	}
	if len(s.Evidence) == 0 {
		s.Evidence = json.RawMessage("{}")
	} else if len(s.Evidence) > MaxEvidenceBytes {
		inv.Add("evidence", fmt.Sprintf("must be at most %d bytes", MaxEvidenceBytes), nil)
	} else if s.Evidence[0] != '{' {
		inv.Add("evidence", "must be a JSON object", nil)
	}
	if err := inv.Err(); err != nil {
		return s, Assessment{}, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM role_agents WHERE organization_id = $1 AND id = $2)`, org, agent).Scan(&exists); err != nil {
		return s, Assessment{}, fmt.Errorf("record signal: %w", err)
	}
	if !exists {
		return s, Assessment{}, fmt.Errorf("agent %s: %w", agent, fault.ErrNotFound)
	}
	_, err = tx.Exec(ctx, `INSERT INTO signals (id, organization_id, agent_id, source, source_id, kind, value, observed_at, expires_at, evidence, recorded_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		s.ID, org, agent, s.Source, sourceID, s.Kind, s.Value, s.ObservedAt, s.ExpiresAt, string(s.Evidence), actor, s.CreatedAt)
	if err != nil {
		return s, Assessment{}, fmt.Errorf("record signal: %w", err)
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "TRUST_SIGNAL_RECORDED", Actor: actor, SubjectType: "agent", SubjectID: agent.String(),
		Details: map[string]any{"signalId": s.ID, "source": s.Source, "kind": s.Kind, "value": s.Value, "observedAt": s.ObservedAt, "expiresAt": s.ExpiresAt}}, now)
	if err != nil {
		return s, Assessment{}, err
	}
	a, err := Recompute(ctx, tx, org, agent, actor, now)
	return s, a, err
}

// Signals returns every signal recorded for the agent, oldest first.
func Signals(ctx context.Context, q db.Querier, org, agent uuid.UUID) ([]StoredSignal, error) {
	rows, err := q.Query(ctx, `SELECT id, source, kind, value, observed_at, expires_at, agent_id, evidence, recorded_by, created_at
		FROM signals WHERE organization_id = $1 AND agent_id = $2 ORDER BY observed_at, id`, org, agent)
	if err != nil {
		return nil, fmt.Errorf("load signals: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredSignal, error) {
		var s StoredSignal
		var evidence string
		err := row.Scan(&s.ID, &s.Source, &s.Kind, &s.Value, &s.ObservedAt, &s.ExpiresAt, &s.AgentID, &evidence, &s.RecordedBy, &s.CreatedAt)
		s.Evidence = json.RawMessage(evidence)
		s.ObservedAt, s.CreatedAt = s.ObservedAt.UTC(), s.CreatedAt.UTC()
		if s.ExpiresAt != nil {
			t := s.ExpiresAt.UTC()
			s.ExpiresAt = &t
		}
		return s, err
	})
}

// Assessed is an agent's live assessment with what it was measured against.
type Assessed struct {
	Assessment
	Signals        []StoredSignal
	Thresholds     Thresholds
	RoleTemplateID uuid.UUID
	Environment    policy.Environment
	ANSName        string
	ANSStatus      string
}

// AssessAgent computes the agent's trust now from its live signals and the
// thresholds that apply to it.
func AssessAgent(ctx context.Context, q db.Querier, org, agent uuid.UUID, now time.Time) (Assessed, error) {
	var out Assessed
	err := q.QueryRow(ctx, `SELECT a.role_template_id, a.environment, r.name, r.status FROM role_agents a
		JOIN ans_registrations r ON r.organization_id = a.organization_id AND r.agent_id = a.id
		WHERE a.organization_id = $1 AND a.id = $2`, org, agent).Scan(&out.RoleTemplateID, &out.Environment, &out.ANSName, &out.ANSStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, fmt.Errorf("agent %s: %w", agent, fault.ErrNotFound)
	}
	if err != nil {
		return out, fmt.Errorf("assess agent: %w", err)
	}
	if out.Signals, err = Signals(ctx, q, org, agent); err != nil {
		return out, err
	}
	if out.Thresholds, err = ThresholdsFor(ctx, q, org, out.RoleTemplateID); err != nil {
		return out, err
	}
	in := make([]Signal, len(out.Signals))
	for i, s := range out.Signals {
		in[i] = s.Signal
	}
	out.Assessment = Assess(in, out.Thresholds, now)
	return out, nil
}

// Recompute assesses the agent now, stores the result on the agent and, if
// its level changed, records TRUST_LEVEL_CHANGED. The agent row is locked so
// concurrent recomputations of one agent serialise.
func Recompute(ctx context.Context, tx pgx.Tx, org, agent uuid.UUID, actor string, now time.Time) (Assessment, error) {
	var prevLevel int16
	var prevScore float64
	err := tx.QueryRow(ctx, `SELECT trust_level, trust_score FROM role_agents WHERE organization_id = $1 AND id = $2 FOR UPDATE`, org, agent).Scan(&prevLevel, &prevScore)
	if errors.Is(err, pgx.ErrNoRows) {
		return Assessment{}, fmt.Errorf("agent %s: %w", agent, fault.ErrNotFound)
	}
	if err != nil {
		return Assessment{}, fmt.Errorf("recompute trust: %w", err)
	}
	a, err := AssessAgent(ctx, tx, org, agent, now)
	if err != nil {
		return Assessment{}, err
	}
	_, err = tx.Exec(ctx, `UPDATE role_agents SET trust_level = $3, trust_score = $4, trust_computed_at = $5 WHERE organization_id = $1 AND id = $2`,
		org, agent, int16(a.Level), a.Score, now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return Assessment{}, fmt.Errorf("store trust: %w", err)
	}
	if policy.TrustLevel(prevLevel) == a.Level {
		return a.Assessment, nil
	}
	_, err = ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "TRUST_LEVEL_CHANGED", Actor: actor, SubjectType: "agent", SubjectID: agent.String(),
		Details: map[string]any{"from": policy.TrustLevel(prevLevel), "to": a.Level, "previousScore": prevScore, "score": a.Score, "modelVersion": a.ModelVersion}}, now)
	if err != nil || a.Level > policy.TrustLevel(prevLevel) {
		return a.Assessment, err
	}
	return a.Assessment, revokeBelowPolicy(ctx, tx, org, agent, a, policy.TrustLevel(prevLevel), actor, now)
}

// revokeBelowPolicy revokes the agent's live tokens when its trust just fell
// below the minimum of its policy (the policy of its role template in its
// environment). Tokens issued while it was already below stay: the gateway
// denies them on every request until trust rises, which is how a new agent
// earns access without a new token.
func revokeBelowPolicy(ctx context.Context, tx pgx.Tx, org, agent uuid.UUID, a Assessed, prev policy.TrustLevel, actor string, now time.Time) error {
	var required int16
	err := tx.QueryRow(ctx, `SELECT min_trust_level FROM mcp_policies WHERE organization_id = $1 AND role_template_id = $2 AND environment = $3`,
		org, a.RoleTemplateID, string(a.Environment)).Scan(&required)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // no policy: the gateway denies everything anyway
	}
	if err != nil {
		return fmt.Errorf("policy minimum: %w", err)
	}
	min := policy.TrustLevel(required)
	if prev < min || a.Level >= min {
		return nil
	}
	_, err = tokens.RevokeAgent(ctx, tx, org, agent, fmt.Sprintf("trust_below_policy:%s<%s", a.Level, min), actor, now)
	return err
}

// RecomputeDue recomputes every agent of every organization whose stored
// trust may be stale: a signal expired, or a future-dated signal became
// live, since it was last computed; and every agent not computed within
// maxAge, because decay lowers scores continuously. It returns how many
// agents it recomputed. Each agent is its own transaction.
func RecomputeDue(ctx context.Context, pool interface {
	db.Querier
	Begin(context.Context) (pgx.Tx, error)
}, maxAge time.Duration, now time.Time) (int, error) {
	rows, err := pool.Query(ctx, `SELECT a.organization_id, a.id FROM role_agents a
		WHERE a.trust_computed_at IS NULL OR a.trust_computed_at < $2
		   OR EXISTS (SELECT 1 FROM signals s WHERE s.organization_id = a.organization_id AND s.agent_id = a.id
		              AND ((s.expires_at > a.trust_computed_at AND s.expires_at <= $1)
		                OR (s.observed_at > a.trust_computed_at + make_interval(secs => $3) AND s.observed_at <= $1 + make_interval(secs => $3))))`,
		now, now.Add(-maxAge), ClockSkew.Seconds())
	if err != nil {
		return 0, fmt.Errorf("find stale trust: %w", err)
	}
	type key struct{ org, agent uuid.UUID }
	due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (key, error) {
		var k key
		return k, row.Scan(&k.org, &k.agent)
	})
	if err != nil {
		return 0, fmt.Errorf("find stale trust: %w", err)
	}
	for i, k := range due {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := Recompute(ctx, tx, k.org, k.agent, "system:trust-sweep", now)
			return err
		})
		if err != nil {
			return i, err
		}
	}
	return len(due), nil
}

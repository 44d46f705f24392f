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
)

// ThresholdsFor returns the thresholds that apply to agents of a role
// template: the template's own, else the organization's, else the defaults.
func ThresholdsFor(ctx context.Context, q db.Querier, org, roleTemplate uuid.UUID) (Thresholds, error) {
	var raw []byte
	err := q.QueryRow(ctx, `SELECT thresholds FROM role_trust_thresholds WHERE organization_id = $1
		AND (role_template_id = $2 OR role_template_id IS NULL)
		ORDER BY role_template_id NULLS LAST LIMIT 1`, org, roleTemplate).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return DefaultThresholds(), nil
	}
	if err != nil {
		return Thresholds{}, fmt.Errorf("load thresholds: %w", err)
	}
	var th Thresholds
	if err := json.Unmarshal(raw, &th); err != nil {
		return Thresholds{}, fmt.Errorf("stored thresholds: %w", err)
	}
	return th, nil
}

// StoredThresholds reports the thresholds set at one scope: the
// organization's (roleTemplate nil) or a role template's. found is false
// when none are set there.
func StoredThresholds(ctx context.Context, q db.Querier, org uuid.UUID, roleTemplate *uuid.UUID) (th Thresholds, found bool, err error) {
	var raw []byte
	err = q.QueryRow(ctx, `SELECT thresholds FROM role_trust_thresholds WHERE organization_id = $1 AND role_template_id IS NOT DISTINCT FROM $2`, org, roleTemplate).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Thresholds{}, false, nil
	}
	if err != nil {
		return Thresholds{}, false, fmt.Errorf("load thresholds: %w", err)
	}
	return th, true, json.Unmarshal(raw, &th)
}

// ParseThresholds strictly decodes and validates thresholds, reporting
// every problem with its JSON path.
func ParseThresholds(raw []byte) (Thresholds, error) {
	var th Thresholds
	if err := json.Unmarshal(raw, &th); err != nil {
		return th, fieldErrors(err, "")
	}
	return th, fieldErrors(th.Validate(), "")
}

// SetThresholds stores thresholds at one scope (roleTemplate nil: the
// organization's default), records TRUST_THRESHOLDS_SET, and recomputes
// every agent they apply to, in tx.
func SetThresholds(ctx context.Context, tx pgx.Tx, org uuid.UUID, roleTemplate *uuid.UUID, th Thresholds, actor string, now time.Time) error {
	if err := fieldErrors(th.Validate(), ""); err != nil {
		return err
	}
	if roleTemplate != nil {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM role_templates WHERE organization_id = $1 AND id = $2)`, org, *roleTemplate).Scan(&ok); err != nil {
			return fmt.Errorf("set thresholds: %w", err)
		}
		if !ok {
			return fmt.Errorf("role template %s: %w", *roleTemplate, fault.ErrNotFound)
		}
	}
	raw, err := json.Marshal(th)
	if err != nil {
		return fmt.Errorf("encode thresholds: %w", err)
	}
	tag, err := tx.Exec(ctx, `UPDATE role_trust_thresholds SET thresholds = $3, updated_at = $4
		WHERE organization_id = $1 AND role_template_id IS NOT DISTINCT FROM $2`, org, roleTemplate, raw, now)
	if err == nil && tag.RowsAffected() == 0 {
		_, err = tx.Exec(ctx, `INSERT INTO role_trust_thresholds (id, organization_id, role_template_id, thresholds, updated_at) VALUES ($1, $2, $3, $4, $5)`,
			uuid.New(), org, roleTemplate, raw, now)
	}
	if err != nil {
		return fmt.Errorf("store thresholds: %w", err)
	}
	return afterThresholdChange(ctx, tx, org, roleTemplate, "TRUST_THRESHOLDS_SET", map[string]any{"thresholds": json.RawMessage(raw)}, actor, now)
}

// ClearThresholds removes a role template's own thresholds, so the
// organization's apply again, and records TRUST_THRESHOLDS_CLEARED.
func ClearThresholds(ctx context.Context, tx pgx.Tx, org, roleTemplate uuid.UUID, actor string, now time.Time) error {
	tag, err := tx.Exec(ctx, `DELETE FROM role_trust_thresholds WHERE organization_id = $1 AND role_template_id = $2`, org, roleTemplate)
	if err != nil {
		return fmt.Errorf("clear thresholds: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("role template %s has no thresholds of its own: %w", roleTemplate, fault.ErrNotFound)
	}
	return afterThresholdChange(ctx, tx, org, &roleTemplate, "TRUST_THRESHOLDS_CLEARED", map[string]any{}, actor, now)
}

func afterThresholdChange(ctx context.Context, tx pgx.Tx, org uuid.UUID, roleTemplate *uuid.UUID, typ string, details map[string]any, actor string, now time.Time) error {
	subjectType, subject := "organization", org.String()
	if roleTemplate != nil {
		subjectType, subject = "role_template", roleTemplate.String()
	}
	if _, err := ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: typ, Actor: actor, SubjectType: subjectType, SubjectID: subject, Details: details}, now); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT id FROM role_agents WHERE organization_id = $1 AND ($2::uuid IS NULL OR role_template_id = $2)`, org, roleTemplate)
	if err != nil {
		return fmt.Errorf("agents under thresholds: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return fmt.Errorf("agents under thresholds: %w", err)
	}
	for _, id := range ids {
		if _, err := Recompute(ctx, tx, org, id, actor, now); err != nil {
			return err
		}
	}
	return nil
}

package bundles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/shared/policy"
)

// Served is the ACTIVE bundle of an organization's environment as an OPA
// sidecar downloads it.
type Served struct {
	ID          uuid.UUID
	Revision    string
	ContentHash string
	Tarball     []byte
}

// ResolveOrganization returns the id of the organization named by its id or
// its slug; an unknown one is fault.ErrNotFound.
func ResolveOrganization(ctx context.Context, q db.Querier, ref string) (uuid.UUID, error) {
	var id uuid.UUID
	var err error
	if parsed, perr := uuid.Parse(ref); perr == nil {
		err = q.QueryRow(ctx, `SELECT id FROM organizations WHERE id = $1`, parsed).Scan(&id)
	} else {
		err = q.QueryRow(ctx, `SELECT id FROM organizations WHERE slug = $1`, ref).Scan(&id)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, fmt.Errorf("organization %q: %w", ref, fault.ErrNotFound)
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("resolve organization: %w", err)
	}
	return id, nil
}

// ActiveHash returns the content hash of the environment's ACTIVE bundle,
// or "" when it has none.
func ActiveHash(ctx context.Context, q db.Querier, org uuid.UUID, env policy.Environment) (string, error) {
	var h string
	err := q.QueryRow(ctx, `SELECT content_hash FROM policy_bundles WHERE organization_id = $1 AND environment = $2 AND status = 'ACTIVE'`, org, env).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("active bundle hash: %w", err)
	}
	return h, nil
}

// ActiveBundle returns the environment's ACTIVE bundle with its stored
// (signed) tarball; none is fault.ErrNotFound.
func ActiveBundle(ctx context.Context, q db.Querier, org uuid.UUID, env policy.Environment) (Served, error) {
	var s Served
	err := q.QueryRow(ctx, `SELECT id, revision, content_hash, tarball FROM policy_bundles WHERE organization_id = $1 AND environment = $2 AND status = 'ACTIVE'`, org, env).
		Scan(&s.ID, &s.Revision, &s.ContentHash, &s.Tarball)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("no active bundle in %s: %w", env, fault.ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("load active bundle: %w", err)
	}
	return s, nil
}

// StatusReport is the part of an OPA status report the ledger keeps.
type StatusReport struct {
	Labels  map[string]any             `json:"labels"`
	Bundles map[string]json.RawMessage `json:"bundles"`
	Plugins map[string]json.RawMessage `json:"plugins"`
}

type bundleStatus struct {
	Name                     string `json:"name"`
	ActiveRevision           string `json:"active_revision"`
	LastSuccessfulActivation string `json:"last_successful_activation"`
	LastSuccessfulDownload   string `json:"last_successful_download"`
	Code                     string `json:"code"`
	Message                  string `json:"message"`
}

type pluginStatus struct {
	State string `json:"state"`
}

// ParseStatusReport decodes an OPA status report: a JSON object whose
// labels, bundles and plugins, when present, are objects.
func ParseStatusReport(raw []byte) (StatusReport, map[string]any, error) {
	var r StatusReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, nil, fmt.Errorf("a status report is a JSON object with object-valued labels, bundles and plugins: %w", err)
	}
	if r.Labels == nil && r.Bundles == nil && r.Plugins == nil {
		return r, nil, errors.New("a status report has labels, bundles or plugins")
	}
	bs := map[string]any{}
	for name, v := range r.Bundles {
		var b bundleStatus
		if err := json.Unmarshal(v, &b); err != nil {
			return r, nil, fmt.Errorf("bundles.%s is not a bundle status object: %w", name, err)
		}
		s := map[string]any{"activeRevision": b.ActiveRevision}
		for k, v := range map[string]string{"lastSuccessfulActivation": b.LastSuccessfulActivation, "lastSuccessfulDownload": b.LastSuccessfulDownload,
			"errorCode": b.Code, "errorMessage": truncate(b.Message, 500)} {
			if v != "" {
				s[k] = v
			}
		}
		bs[name] = s
	}
	ps := map[string]any{}
	for name, v := range r.Plugins {
		var p pluginStatus
		if err := json.Unmarshal(v, &p); err != nil {
			return r, nil, fmt.Errorf("plugins.%s is not a plugin status object: %w", name, err)
		}
		ps[name] = p.State
	}
	summary := map[string]any{"instanceId": label(r.Labels, "id"), "opaVersion": label(r.Labels, "version"), "bundles": bs, "plugins": ps}
	return r, summary, nil
}

func label(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RecordStatus appends OPA_STATUS_REPORTED with a report's summary.
func RecordStatus(ctx context.Context, tx pgx.Tx, org uuid.UUID, summary map[string]any, actor string, now time.Time) error {
	id, _ := summary["instanceId"].(string)
	_, err := ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "OPA_STATUS_REPORTED", Actor: actor, SubjectType: "opa_instance", SubjectID: id, Details: summary}, now)
	return err
}

// Decision is the part of an OPA decision log event the ledger keeps: never
// the input, which may carry anything.
type Decision struct {
	DecisionID string                     `json:"decision_id"`
	Path       string                     `json:"path"`
	Result     json.RawMessage            `json:"result"`
	Timestamp  string                     `json:"timestamp"`
	Labels     map[string]any             `json:"labels"`
	Bundles    map[string]json.RawMessage `json:"bundles"`
}

// ParseDecisions decodes an OPA decision log upload: a JSON array of
// objects, each with a decision_id.
func ParseDecisions(raw []byte) ([]Decision, error) {
	var ds []Decision
	if err := json.Unmarshal(raw, &ds); err != nil {
		return nil, fmt.Errorf("decision logs are a JSON array of decision objects: %w", err)
	}
	if ds == nil {
		return nil, errors.New("decision logs are a JSON array of decision objects")
	}
	for i, d := range ds {
		if d.DecisionID == "" {
			return nil, fmt.Errorf("decision [%d] has no decision_id", i)
		}
	}
	return ds, nil
}

// summarize describes a decision's result without copying it whole.
func summarize(raw json.RawMessage) map[string]any {
	if len(raw) == 0 {
		return map[string]any{"type": "undefined"}
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return map[string]any{"type": "invalid"}
	}
	switch x := v.(type) {
	case bool:
		return map[string]any{"type": "boolean", "value": x}
	case map[string]any:
		s := map[string]any{"type": "object"}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) > 20 {
			keys = keys[:20]
		}
		s["keys"] = keys
		for _, k := range []string{"allow", "allowed", "decision", "effect", "reason"} {
			switch y := x[k].(type) {
			case bool:
				s[k] = y
			case string:
				s[k] = truncate(y, 200)
			}
		}
		return s
	case []any:
		return map[string]any{"type": "array", "length": len(x)}
	case string:
		return map[string]any{"type": "string"}
	case nil:
		return map[string]any{"type": "null"}
	default:
		return map[string]any{"type": "number"}
	}
}

// RecordDecisions appends one OPA_DECISION_LOGGED per decision.
func RecordDecisions(ctx context.Context, tx pgx.Tx, org uuid.UUID, ds []Decision, actor string, now time.Time) error {
	for _, d := range ds {
		details := map[string]any{"decisionId": d.DecisionID, "path": d.Path, "result": summarize(d.Result)}
		if id := label(d.Labels, "id"); id != "" {
			details["instanceId"] = id
		}
		if d.Timestamp != "" {
			details["timestamp"] = d.Timestamp
		}
		if len(d.Bundles) > 0 {
			revs := map[string]string{}
			for name, raw := range d.Bundles {
				var b struct {
					Revision string `json:"revision"`
				}
				_ = json.Unmarshal(raw, &b)
				revs[name] = b.Revision
			}
			details["bundles"] = revs
		}
		if _, err := ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: "OPA_DECISION_LOGGED", Actor: actor, SubjectType: "opa_decision", SubjectID: d.DecisionID, Details: details}, now); err != nil {
			return err
		}
	}
	return nil
}

// ValidEnvironment reports whether env names an environment.
func ValidEnvironment(env string) bool {
	return slices.Contains(policy.Environments(), policy.Environment(env))
}

// Package calls ingests contract 2: the decision records gateways report
// (the original design's EnforcementCall). Each record is stored once,
// keyed by the id the filter made, and appended to the audit ledger in the
// same transaction as ENFORCEMENT_CALL_ALLOWED or ENFORCEMENT_CALL_DENIED
// (the event types of the manager's own /enforcement/verify), or, for a gap
// the filter reports, ENFORCEMENT_RECORDS_LOST. A retried batch stores and
// records nothing twice. Ingest is built for volume: one statement stores a
// batch and one COPY appends its events.
package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/gateways"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/shared/decision"
)

// IngestResult says what a batch changed.
type IngestResult struct {
	Accepted   int `json:"accepted" doc:"Records stored and recorded in the ledger by this request."`
	Duplicates int `json:"duplicates" doc:"Records already stored by an earlier request (or repeated in this one): retries are safe."`
}

// Validate checks every record of a batch from gw: each must pass
// decision.Record.Validate and name the gateway's organization and
// environment. Field errors are at "records[i].<field>".
func Validate(gw gateways.Authenticated, recs []decision.Record) error {
	inv := &fault.Invalid{}
	if len(recs) > decision.MaxBatch {
		inv.Add("records", fmt.Sprintf("at most %d records per batch", decision.MaxBatch), len(recs))
		return inv
	}
	for i := range recs {
		r := &recs[i]
		at := "records[" + strconv.Itoa(i) + "]"
		if err := r.Validate(); err != nil {
			field := at
			var fe *decision.FieldError
			if errors.As(err, &fe) && fe.Field != "" {
				field += "." + fe.Field
			}
			inv.Add(field, err.Error(), nil)
			continue
		}
		if r.Organization != gw.OrganizationSlug {
			inv.Add(at+".organization", "is not the gateway's organization "+strconv.Quote(gw.OrganizationSlug), r.Organization)
		}
		if r.Environment != string(gw.Environment) {
			inv.Add(at+".environment", "is not the gateway's environment "+strconv.Quote(string(gw.Environment)), r.Environment)
		}
	}
	return inv.Err()
}

// Ingest stores the records of a validated batch that are not stored yet
// and appends one ledger event for each, in tx, in the batch's order.
//
// It stores the records before it takes the organization's ledger head, so
// that concurrent batches store in parallel and queue only for the append.
// They store in the order of the record ids: two batches that share records
// (a retry sent while the first attempt still runs) then wait for each
// other in one order, never in a cycle, and the one holding the head never
// waits for a record.
func Ingest(ctx context.Context, tx pgx.Tx, gw gateways.Authenticated, recs []decision.Record, now time.Time) (IngestResult, error) {
	if len(recs) == 0 {
		return IngestResult{}, nil
	}
	org := gw.OrganizationID
	byID := make([]*decision.Record, len(recs))
	for i := range recs {
		byID[i] = &recs[i]
	}
	slices.SortStableFunc(byID, func(a, b *decision.Record) int { return strings.Compare(a.ID, b.ID) })
	n := len(recs)
	var (
		ids, kinds, agents, tokenIDs, methods, paths, mcpMethods, names = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		reasons, messages, levels, policyIDs, revisions                 = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		times                                                           = make([]time.Time, n)
		lostFrom, lostTo                                                = make([]*time.Time, n), make([]*time.Time, n)
		allows                                                          = make([]bool, n)
		statuses                                                        = make([]int32, n)
		scores                                                          = make([]float64, n)
		versions, latencies, losts                                      = make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i, r := range byID {
		ids[i], kinds[i], times[i], agents[i], tokenIDs[i] = r.ID, r.Kind, r.Time, r.Agent, r.TokenID
		methods[i], paths[i], mcpMethods[i], names[i] = r.HTTPMethod, r.Path, r.MCPMethod, r.Name
		allows[i], reasons[i], messages[i], statuses[i] = r.Allow, string(r.Reason), r.Message, int32(r.Status)
		levels[i], scores[i], policyIDs[i], revisions[i] = r.TrustLevel, r.TrustScore, r.PolicyID, r.BundleRevision
		versions[i], latencies[i], losts[i], lostFrom[i], lostTo[i] = int64(r.SnapshotVersion), r.LatencyMicros, int64(r.Lost), r.LostFrom, r.LostTo
	}
	received := now.UTC().Truncate(time.Microsecond)
	rows, err := tx.Query(ctx, `INSERT INTO enforcement_calls (organization_id, gateway_id, environment, received_at,
		id, kind, decided_at, agent, token_id, http_method, path, mcp_method, name, allow, reason, message, status,
		trust_level, trust_score, policy_id, bundle_revision, snapshot_version, latency_us, lost, lost_from, lost_to)
		SELECT $1::uuid, $2::uuid, $3::text, $4::timestamptz, * FROM unnest($5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
			$13::text[], $14::boolean[], $15::text[], $16::text[], $17::integer[], $18::text[], $19::double precision[], $20::text[], $21::text[],
			$22::bigint[], $23::bigint[], $24::bigint[], $25::timestamptz[], $26::timestamptz[])
		ON CONFLICT (organization_id, id) DO NOTHING RETURNING id`,
		org, gw.ID, gw.Environment, received,
		ids, kinds, times, agents, tokenIDs, methods, paths, mcpMethods, names, allows, reasons, messages, statuses,
		levels, scores, policyIDs, revisions, versions, latencies, losts, lostFrom, lostTo)
	if err != nil {
		return IngestResult{}, fmt.Errorf("store decision records: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return IngestResult{}, fmt.Errorf("store decision records: %w", err)
	}
	res := IngestResult{Accepted: len(inserted), Duplicates: n - len(inserted)}
	if len(inserted) == 0 {
		return res, nil
	}
	fresh := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		fresh[id] = true
	}
	if _, _, err := ledger.LockChain(ctx, tx, org); err != nil {
		return IngestResult{}, err
	}
	agentIDs, err := resolveAgents(ctx, tx, org, recs, fresh)
	if err != nil {
		return IngestResult{}, err
	}
	entries := make([]ledger.Entry, 0, len(inserted))
	for i := range recs {
		r := &recs[i]
		if !fresh[r.ID] {
			continue
		}
		// A record repeated within the batch is recorded once.
		delete(fresh, r.ID)
		e, err := entry(gw, r, agentIDs)
		if err != nil {
			return IngestResult{}, err
		}
		entries = append(entries, e)
	}
	if _, err := ledger.AppendBatch(ctx, tx, org, entries, now); err != nil {
		return IngestResult{}, err
	}
	return res, nil
}

// resolveAgents maps the ANS names of the new records to agent ids, so that
// their events are found under the agent like every other event about it.
func resolveAgents(ctx context.Context, q db.Querier, org uuid.UUID, recs []decision.Record, fresh map[string]bool) (map[string]uuid.UUID, error) {
	var names []string
	seen := map[string]bool{}
	for i := range recs {
		if a := recs[i].Agent; a != "" && fresh[recs[i].ID] && !seen[a] {
			seen[a] = true
			names = append(names, a)
		}
	}
	out := make(map[string]uuid.UUID, len(names))
	if len(names) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT name, agent_id FROM ans_registrations WHERE organization_id = $1 AND name = ANY($2)`, org, names)
	if err != nil {
		return nil, fmt.Errorf("resolve agents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var id uuid.UUID
		if err := rows.Scan(&name, &id); err != nil {
			return nil, fmt.Errorf("resolve agents: %w", err)
		}
		out[name] = id
	}
	return out, rows.Err()
}

// callDetails is the ledger form of a decision: the keys of the manager's
// own enforcement/verify events (decisionId, reason, message, ansName,
// method, target, source), and the rest of the record.
type callDetails struct {
	DecisionID      string    `json:"decisionId"`
	Reason          string    `json:"reason"`
	Message         string    `json:"message"`
	ANSName         string    `json:"ansName"`
	Method          string    `json:"method,omitempty"`
	Target          string    `json:"target,omitempty"`
	Source          string    `json:"source"`
	GatewayID       string    `json:"gatewayId"`
	Environment     string    `json:"environment"`
	DecidedAt       time.Time `json:"decidedAt"`
	MCPMethod       string    `json:"mcpMethod,omitempty"`
	Name            string    `json:"name,omitempty"`
	TokenID         string    `json:"tokenId,omitempty"`
	Status          int       `json:"status,omitempty"`
	TrustLevel      string    `json:"trustLevel,omitempty"`
	TrustScore      float64   `json:"trustScore,omitempty"`
	PolicyID        string    `json:"policyId,omitempty"`
	BundleRevision  string    `json:"bundleRevision,omitempty"`
	SnapshotVersion uint64    `json:"snapshotVersion,omitempty"`
	LatencyMicros   int64     `json:"latencyUs,omitempty"`
}

type lostDetails struct {
	RecordID    string     `json:"recordId"`
	Lost        uint64     `json:"lost"`
	LostFrom    *time.Time `json:"lostFrom,omitempty"`
	LostTo      *time.Time `json:"lostTo,omitempty"`
	Message     string     `json:"message,omitempty"`
	Source      string     `json:"source"`
	GatewayID   string     `json:"gatewayId"`
	Environment string     `json:"environment"`
	ReportedAt  time.Time  `json:"reportedAt"`
}

func entry(gw gateways.Authenticated, r *decision.Record, agentIDs map[string]uuid.UUID) (ledger.Entry, error) {
	e := ledger.Entry{OrganizationID: gw.OrganizationID, Actor: gw.Actor()}
	var details any
	if r.Kind == decision.KindGap {
		e.Type, e.SubjectType, e.SubjectID = "ENFORCEMENT_RECORDS_LOST", "gateway", gw.ID.String()
		details = lostDetails{RecordID: r.ID, Lost: r.Lost, LostFrom: r.LostFrom, LostTo: r.LostTo, Message: r.Message,
			Source: "gateway", GatewayID: gw.ID.String(), Environment: r.Environment, ReportedAt: r.Time.UTC()}
	} else {
		e.Type, e.SubjectType, e.SubjectID = "ENFORCEMENT_CALL_DENIED", "ans_name", r.Agent
		if r.Allow {
			e.Type = "ENFORCEMENT_CALL_ALLOWED"
		}
		if id, ok := agentIDs[r.Agent]; ok {
			e.SubjectType, e.SubjectID = "agent", id.String()
		}
		details = callDetails{DecisionID: r.ID, Reason: string(r.Reason), Message: r.Message, ANSName: r.Agent, Method: r.HTTPMethod, Target: r.Path,
			Source: "gateway", GatewayID: gw.ID.String(), Environment: r.Environment, DecidedAt: r.Time.UTC(), MCPMethod: r.MCPMethod, Name: r.Name,
			TokenID: r.TokenID, Status: r.Status, TrustLevel: r.TrustLevel, TrustScore: r.TrustScore, PolicyID: r.PolicyID,
			BundleRevision: r.BundleRevision, SnapshotVersion: r.SnapshotVersion, LatencyMicros: r.LatencyMicros}
	}
	raw, err := json.Marshal(details)
	if err != nil {
		return e, fmt.Errorf("encode decision %s: %w", r.ID, err)
	}
	e.Details = json.RawMessage(raw)
	return e, nil
}

// Call is a stored decision record.
type Call struct {
	decision.Record
	GatewayID  uuid.UUID `json:"gatewayId"`
	ReceivedAt time.Time `json:"receivedAt"`
}

// Filter selects calls in List. Zero fields do not filter.
type Filter struct {
	Agent  string
	Allow  *bool
	Reason string
	Since  time.Time
	// Before returns only calls decided before it (the pagination cursor:
	// the time of the last call of the previous page).
	Before time.Time
	Limit  int
}

// List returns the organization's stored decision records matching f,
// newest first.
func List(ctx context.Context, q db.Querier, org uuid.UUID, f Filter) ([]Call, error) {
	rows, err := q.Query(ctx, `SELECT c.id, c.kind, c.decided_at, o.slug, c.environment, c.agent, c.token_id, c.http_method, c.path, c.mcp_method, c.name,
		c.allow, c.reason, c.message, c.status, c.trust_level, c.trust_score, c.policy_id, c.bundle_revision, c.snapshot_version, c.latency_us,
		c.lost, c.lost_from, c.lost_to, c.gateway_id, c.received_at
		FROM enforcement_calls c JOIN organizations o ON o.id = c.organization_id
		WHERE c.organization_id = $1
		AND ($2 = '' OR c.agent = $2)
		AND ($3::boolean IS NULL OR (c.kind = 'decision' AND c.allow = $3))
		AND ($4 = '' OR c.reason = $4)
		AND ($5::timestamptz IS NULL OR c.decided_at >= $5)
		AND ($6::timestamptz IS NULL OR c.decided_at < $6)
		ORDER BY c.decided_at DESC, c.id DESC LIMIT $7`,
		org, f.Agent, f.Allow, f.Reason, nullTime(f.Since), nullTime(f.Before), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list enforcement calls: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Call, error) {
		var c Call
		var status int32
		var version, lost int64
		err := row.Scan(&c.ID, &c.Kind, &c.Time, &c.Organization, &c.Environment, &c.Agent, &c.TokenID, &c.HTTPMethod, &c.Path, &c.MCPMethod, &c.Name,
			&c.Allow, &c.Reason, &c.Message, &status, &c.TrustLevel, &c.TrustScore, &c.PolicyID, &c.BundleRevision, &version, &c.LatencyMicros,
			&lost, &c.LostFrom, &c.LostTo, &c.GatewayID, &c.ReceivedAt)
		c.Status, c.SnapshotVersion, c.Lost = int(status), uint64(version), uint64(lost)
		c.Time, c.ReceivedAt = c.Time.UTC(), c.ReceivedAt.UTC()
		for _, t := range []*time.Time{c.LostFrom, c.LostTo} {
			if t != nil {
				*t = t.UTC()
			}
		}
		return c, err
	})
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

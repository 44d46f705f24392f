// Package enforce holds the manager's own enforcement decisions. Its first
// one is POST /api/v1/enforcement/verify: an upstream MCP server that is not
// written in Go (and so cannot import shared/sign) hands the manager a
// signed request, and the manager checks it exactly as the gateway would —
// the ANS identity pinned to its HMAC key, the agent ACTIVE, the timestamp
// window, the signature, and that the signature is used once — and records
// the decision in the ledger as an enforcement call.
package enforce

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/ledger"
	"github.com/knaight/knaight/shared/sign"
)

// Reason codes of a verification decision.
const (
	ReasonOK                   = "ok"
	ReasonSignatureMissing     = "signature_missing"
	ReasonSignatureMalformed   = "signature_malformed"
	ReasonTimestampMalformed   = "timestamp_malformed"
	ReasonTimestampStale       = "timestamp_stale"
	ReasonTimestampFuture      = "timestamp_future"
	ReasonRequestInvalid       = "request_invalid"
	ReasonAgentUnknown         = "agent_unknown"
	ReasonAgentNotActive       = "agent_not_active"
	ReasonOrganizationMismatch = "organization_mismatch"
	ReasonKeyUnknown           = "key_unknown"
	ReasonSignatureInvalid     = "signature_invalid"
	ReasonReplayed             = "replayed"
)

// Call is one signed request to check: the facts the signature covers and
// its signature headers.
type Call struct {
	Method string
	Target string
	Body   [32]byte // sign.BodyDigest of the body
	// Headers returns every value of a header, case-insensitively.
	Headers func(name string) []string
	// Mode says how the call reached the manager, for the record: "direct"
	// (the signed request itself) or "described" (a JSON description).
	Mode string
}

// Decision is the outcome of Verify.
type Decision struct {
	DecisionID string     `json:"decisionId"`
	Valid      bool       `json:"valid"`
	Decision   string     `json:"decision" enum:"allow,deny"`
	Reason     string     `json:"reason" doc:"ok, or why the call is refused: signature_missing, signature_malformed, timestamp_malformed, timestamp_stale, timestamp_future, request_invalid, agent_unknown, agent_not_active, organization_mismatch, key_unknown, signature_invalid, replayed."`
	Message    string     `json:"message"`
	ANSName    string     `json:"ansName,omitempty"`
	AgentID    *uuid.UUID `json:"agentId,omitempty"`
	KeyID      string     `json:"kid,omitempty"`
	Alias      bool       `json:"aliasHeaders,omitempty" doc:"The request used the first milestone's X-SCK-* headers."`
}

// Verifier checks calls for one organization's agents.
type Verifier struct {
	Keys *agents.Keys
	Skew time.Duration // 0 = sign.DefaultSkew
}

func newDecisionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Verify decides on c for the organization (identified by id and slug, so
// an X-SCK-Organization header may name either) and records the decision as
// ENFORCEMENT_CALL_ALLOWED or ENFORCEMENT_CALL_DENIED, in tx. A denial is a
// decision, not an error: the error is for failures to decide.
func (v Verifier) Verify(ctx context.Context, tx pgx.Tx, org uuid.UUID, orgSlug string, c Call, actor string, now time.Time) (Decision, error) {
	d := Decision{DecisionID: newDecisionID(), Decision: "deny"}
	deny := func(reason, message string) (Decision, error) {
		d.Reason, d.Message = reason, message
		return d, v.record(ctx, tx, org, c, d, actor, now)
	}
	h, err := sign.ParseHeaders(c.Headers)
	switch {
	case errors.Is(err, sign.ErrMissingHeader):
		return deny(ReasonSignatureMissing, err.Error())
	case errors.Is(err, sign.ErrMalformedTimestamp):
		return deny(ReasonTimestampMalformed, err.Error())
	case err != nil:
		return deny(ReasonSignatureMalformed, err.Error())
	}
	d.ANSName, d.Alias, d.KeyID = h.Agent, h.Alias, h.KeyID
	if h.Organization != "" && h.Organization != org.String() && h.Organization != orgSlug {
		return deny(ReasonOrganizationMismatch, "the organization header names another organization than the caller's")
	}

	var agentID uuid.UUID
	var status string
	err = tx.QueryRow(ctx, `SELECT agent_id, status FROM ans_registrations WHERE organization_id = $1 AND name = $2`, org, h.Agent).Scan(&agentID, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return deny(ReasonAgentUnknown, fmt.Sprintf("no agent of this organization has the ANS name %q", h.Agent))
	}
	if err != nil {
		return d, fmt.Errorf("resolve agent: %w", err)
	}
	d.AgentID = &agentID
	if status != "ACTIVE" {
		return deny(ReasonAgentNotActive, fmt.Sprintf("the agent's ANS registration is %s, not ACTIVE", status))
	}
	// Identity pinning: only the named agent's own keys can verify.
	active, err := v.Keys.Active(ctx, tx, org, agentID, now)
	if err != nil {
		return d, err
	}
	var keys [][]byte
	var kids []string
	for _, k := range active {
		if h.KeyID == "" || h.KeyID == k.KID {
			keys, kids = append(keys, k.Secret), append(kids, k.KID)
		}
	}
	if len(keys) == 0 {
		return deny(ReasonKeyUnknown, fmt.Sprintf("the agent has no active HMAC key %q", h.KeyID))
	}

	r := sign.Request{Method: c.Method, Target: c.Target, BodySHA256: c.Body, Agent: h.Agent, Timestamp: h.Timestamp}
	verifier := sign.Verifier{Skew: v.Skew, Now: func() time.Time { return now }}
	kid := ""
	for i, key := range keys {
		err = verifier.Verify(key, r, h.Signature)
		if err == nil {
			kid = kids[i]
			break
		}
		if !errors.Is(err, sign.ErrBadSignature) {
			break
		}
	}
	switch {
	case errors.Is(err, sign.ErrStale):
		return deny(ReasonTimestampStale, err.Error())
	case errors.Is(err, sign.ErrFuture):
		return deny(ReasonTimestampFuture, err.Error())
	case errors.Is(err, sign.ErrBadSignature):
		return deny(ReasonSignatureInvalid, "the signature does not match the request under the agent's keys")
	case errors.Is(err, sign.ErrMalformedSignature):
		return deny(ReasonSignatureMalformed, err.Error())
	case errors.Is(err, sign.ErrInvalidRequest), errors.Is(err, sign.ErrMalformedTimestamp):
		return deny(ReasonRequestInvalid, err.Error())
	case err != nil:
		return d, fmt.Errorf("verify: %w", err)
	}
	d.KeyID = kid

	// A signature is accepted once within its window: remember it until its
	// timestamp leaves the window, when it would be refused anyway.
	ts, _ := sign.ParseTimestamp(h.Timestamp)
	skew := v.Skew
	if skew <= 0 {
		skew = sign.DefaultSkew
	}
	mac, _ := sign.ParseSignature(h.Signature)
	digest := sha256.Sum256(append([]byte(h.Agent+"\x00"), mac[:]...))
	tag, err := tx.Exec(ctx, `INSERT INTO verify_replays (signature, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, digest[:], ts.Add(skew))
	if err != nil {
		return d, fmt.Errorf("remember signature: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return deny(ReasonReplayed, "this signature was already accepted once")
	}
	d.Valid, d.Decision, d.Reason, d.Message = true, "allow", ReasonOK, "signature verified for "+h.Agent
	return d, v.record(ctx, tx, org, c, d, actor, now)
}

func (v Verifier) record(ctx context.Context, tx pgx.Tx, org uuid.UUID, c Call, d Decision, actor string, now time.Time) error {
	typ, subjectType, subject := "ENFORCEMENT_CALL_DENIED", "ans_name", d.ANSName
	if d.Valid {
		typ = "ENFORCEMENT_CALL_ALLOWED"
	}
	if d.AgentID != nil {
		subjectType, subject = "agent", d.AgentID.String()
	}
	_, err := ledger.Append(ctx, tx, ledger.Entry{OrganizationID: org, Type: typ, Actor: actor, SubjectType: subjectType, SubjectID: subject,
		Details: map[string]any{
			"decisionId": d.DecisionID, "reason": d.Reason, "message": d.Message, "ansName": d.ANSName, "kid": d.KeyID,
			"method": c.Method, "target": c.Target, "mode": c.Mode, "aliasHeaders": d.Alias, "source": "enforcement/verify",
		}}, now)
	return err
}

// ForgetReplays deletes remembered signatures whose window has closed.
func ForgetReplays(ctx context.Context, q db.Querier, now time.Time) error {
	_, err := q.Exec(ctx, `DELETE FROM verify_replays WHERE expires_at < $1`, now)
	return err
}

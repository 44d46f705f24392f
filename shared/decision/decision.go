// Package decision is contract 2 of the architecture: the record the filter
// makes of every request it judges, and the batches in which its poller
// reports them to the manager (POST /api/v1/gateway/decisions). The manager
// appends each record to the audit ledger exactly once, keyed by the id the
// filter made, so a batch can be retried until it is acknowledged without
// ever duplicating or losing a decision.
package decision

import (
	"fmt"
	"slices"
	"time"

	"github.com/knaight/knaight/shared/policy"
)

// Reason is why a request was allowed or denied: one code from the closed
// list Reasons returns. The policy's own reasons (package policy) are part of
// it; the rest are the filter's checks before the policy.
type Reason string

// The filter's reasons, in the order of its checks. Each names its HTTP
// status in the comment.
const (
	// Allowed: the request was forwarded.
	Allowed = Reason(policy.ReasonAllowed)

	// SnapshotUnavailable (503): the filter has no verified snapshot yet.
	SnapshotUnavailable Reason = "snapshot_unavailable"
	// SnapshotStale (503): the snapshot is older than the staleness limit
	// because the manager has not been reached.
	SnapshotStale Reason = "snapshot_stale"
	// InternalError (500): the filter failed while judging the request.
	InternalError Reason = "internal_error"
	// MethodNotAllowed (405): an HTTP method MCP does not use.
	MethodNotAllowed Reason = "method_not_allowed"

	// TokenMissing (401): no bearer token.
	TokenMissing Reason = "token_missing"
	// TokenInvalid (401): the token failed verification; the record's
	// message says how (signature, type, issuer, audience, expiry...).
	TokenInvalid Reason = "token_invalid"
	// TokenRevoked (401): the token's jti is revoked.
	TokenRevoked Reason = "token_revoked"

	// SignatureMissing (401): a request-signature header is missing.
	SignatureMissing Reason = "signature_missing"
	// SignatureMalformed (401): a signature header does not parse.
	SignatureMalformed Reason = "signature_malformed"
	// TimestampSkew (401): the request timestamp is outside the skew window.
	TimestampSkew Reason = "timestamp_skew"
	// AgentMismatch (401): the token subject and X-Knaight-Agent differ.
	AgentMismatch Reason = "agent_mismatch"
	// AgentUnknown (401): no agent of the organization has that ANS name.
	AgentUnknown Reason = "agent_unknown"
	// AgentInactive (403): the agent's ANS registration is not ACTIVE.
	AgentInactive Reason = "agent_inactive"
	// SignatureUnknownKey (401): the agent has no key with that key id.
	SignatureUnknownKey Reason = "signature_unknown_key"
	// SignatureInvalid (401): the HMAC does not verify.
	SignatureInvalid Reason = "signature_invalid"
	// Replay (401): the signature was seen before.
	Replay Reason = "replay"

	// BodyTooLarge (413): the body is over the gateway's limit.
	BodyTooLarge Reason = "body_too_large"
	// JSONRPCParseError (400): the body is not JSON.
	JSONRPCParseError Reason = "jsonrpc_parse_error"
	// JSONRPCInvalid (400): the body is not one JSON-RPC request or
	// notification.
	JSONRPCInvalid Reason = "jsonrpc_invalid"
	// JSONRPCBatch (400): a JSON-RPC batch.
	JSONRPCBatch Reason = "jsonrpc_batch"
	// MCPHeaderMismatch (400): Mcp-Method or Mcp-Name disagree with the body.
	MCPHeaderMismatch Reason = "mcp_header_mismatch"

	// The policy's denials (403): see package policy and docs/policy.md.
	PolicyMissing       = Reason(policy.ReasonPolicyMissing)
	TrustBelowThreshold = Reason(policy.ReasonTrustBelowThreshold)
	LoABelowRequired    = Reason(policy.ReasonLoABelowRequired)
	ScopeMissing        = Reason(policy.ReasonScopeMissing)
	EndpointNotAllowed  = Reason(policy.ReasonEndpointNotAllowed)
	ConstraintViolated  = Reason(policy.ReasonConstraintViolated)
)

var reasons = []Reason{
	Allowed, SnapshotUnavailable, SnapshotStale, InternalError, MethodNotAllowed,
	TokenMissing, TokenInvalid, TokenRevoked,
	SignatureMissing, SignatureMalformed, TimestampSkew, AgentMismatch, AgentUnknown, AgentInactive,
	SignatureUnknownKey, SignatureInvalid, Replay,
	BodyTooLarge, JSONRPCParseError, JSONRPCInvalid, JSONRPCBatch, MCPHeaderMismatch,
	PolicyMissing, TrustBelowThreshold, LoABelowRequired, ScopeMissing, EndpointNotAllowed, ConstraintViolated,
}

// Reasons returns the closed list of reason codes, a fresh slice.
func Reasons() []Reason { return slices.Clone(reasons) }

// Valid reports whether r is in the closed list.
func (r Reason) Valid() bool { return slices.Contains(reasons, r) }

// Kinds of record.
const (
	// KindDecision is one judged request.
	KindDecision = "decision"
	// KindGap reports records the filter had to drop because its buffer
	// was full while the manager could not be reached: a loss is recorded,
	// never silent.
	KindGap = "gap"
)

// Record is one decision, or one gap.
type Record struct {
	// ID is made by the filter (32 lower-case hex digits, 128 random bits)
	// and is the idempotency key of ingest. For a decision it is the
	// x-knaight-decision-id the client saw.
	ID string `json:"id"`
	// Kind is KindDecision or KindGap.
	Kind string `json:"kind"`
	// Time is when the filter decided (for a gap: when it reported it).
	Time time.Time `json:"time"`
	// Organization and Environment are the gateway's.
	Organization string `json:"organization"`
	Environment  string `json:"environment"`

	// Agent is the ANS name the request claimed (X-Knaight-Agent, else the
	// token's subject), "" when it had neither.
	Agent string `json:"agent,omitempty"`
	// TokenID is the verified token's jti.
	TokenID string `json:"tokenId,omitempty"`
	// HTTPMethod and Path are the request's (path with query, truncated to
	// MaxPathLen bytes).
	HTTPMethod string `json:"httpMethod,omitempty"`
	Path       string `json:"path,omitempty"`
	// MCPMethod and Name are the JSON-RPC method and the tool, resource or
	// prompt name, when the body was read.
	MCPMethod string `json:"mcpMethod,omitempty"`
	Name      string `json:"name,omitempty"`

	// Allow is the outcome; Reason and Message explain it.
	Allow   bool   `json:"allow"`
	Reason  Reason `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Status is the HTTP status of the local response, 0 when forwarded.
	Status int `json:"status,omitempty"`

	// TrustLevel and TrustScore are the agent's, as the snapshot had them.
	TrustLevel string  `json:"trustLevel,omitempty"`
	TrustScore float64 `json:"trustScore,omitempty"`
	// PolicyID and BundleRevision name the policy that decided.
	PolicyID       string `json:"policyId,omitempty"`
	BundleRevision string `json:"bundleRevision,omitempty"`
	// SnapshotVersion is the snapshot the filter decided with, 0 for none.
	SnapshotVersion uint64 `json:"snapshotVersion,omitempty"`
	// LatencyMicros is the time the filter spent on the request.
	LatencyMicros int64 `json:"latencyUs,omitempty"`

	// Lost counts the records a gap stands for, and LostFrom/LostTo bound
	// when they were made.
	Lost     uint64     `json:"lost,omitempty"`
	LostFrom *time.Time `json:"lostFrom,omitempty"`
	LostTo   *time.Time `json:"lostTo,omitempty"`
}

// Limits on records and batches.
const (
	MaxBatch      = 1000
	MaxPathLen    = 1024
	MaxTextLen    = 1024
	MaxRecordJSON = 8 << 10
)

// Batch is the body of POST /api/v1/gateway/decisions.
type Batch struct {
	Records []Record `json:"records"`
}

// FieldError is a failure of Validate. Field is the record's JSON field at
// fault ("" when the record as a whole is), so that the manager can name it
// in its answer.
type FieldError struct {
	Field string
	msg   string
}

func (e *FieldError) Error() string { return e.msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, msg: fmt.Sprintf(format, args...)}
}

// Validate checks a record as the manager must before storing it: the id
// format, the kind, the closed reason list and the lengths. Its errors are
// *FieldError.
func (r *Record) Validate() error {
	if !validID(r.ID) {
		return fieldErr("id", "id %q: want 32 lower-case hex digits", r.ID)
	}
	if r.Time.IsZero() {
		return fieldErr("time", "time is required")
	}
	for _, f := range []struct{ name, v string }{{"agent", r.Agent}, {"tokenId", r.TokenID}, {"httpMethod", r.HTTPMethod},
		{"mcpMethod", r.MCPMethod}, {"name", r.Name}, {"message", r.Message}, {"policyId", r.PolicyID},
		{"bundleRevision", r.BundleRevision}, {"organization", r.Organization}, {"environment", r.Environment}, {"trustLevel", r.TrustLevel}} {
		if len(f.v) > MaxTextLen {
			return fieldErr(f.name, "%s: longer than %d bytes", f.name, MaxTextLen)
		}
	}
	if len(r.Path) > MaxPathLen {
		return fieldErr("path", "path: longer than %d bytes", MaxPathLen)
	}
	switch r.Kind {
	case KindDecision:
		if !r.Reason.Valid() {
			return fieldErr("reason", "reason %q is not a known reason code", r.Reason)
		}
		if r.Allow != (r.Reason == Allowed) {
			return fieldErr("allow", "allow is %v with reason %q", r.Allow, r.Reason)
		}
		if r.Lost != 0 || r.LostFrom != nil || r.LostTo != nil {
			return fieldErr("lost", "lost, lostFrom and lostTo belong to gap records")
		}
	case KindGap:
		if r.Lost == 0 || r.Allow || r.Reason != "" {
			return fieldErr("", "a gap record has lost > 0, no allow and no reason")
		}
	default:
		return fieldErr("kind", "kind %q: want %q or %q", r.Kind, KindDecision, KindGap)
	}
	return nil
}

func validID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

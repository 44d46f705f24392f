package filter

import (
	"encoding/hex"
	"strconv"

	"github.com/knaight/knaight/shared/decision"
)

// Headers the filter adds: to its own responses, and to the requests it
// forwards (with the agent's ANS name and trust level).
const (
	// HeaderReason carries the decision's reason code.
	HeaderReason = "x-knaight-reason"
	// HeaderDecisionID carries the decision id: 32 lower-case hex digits (128
	// random bits), the id of the decision record in the audit ledger.
	HeaderDecisionID = "x-knaight-decision-id"
	// HeaderTrustLevel carries the agent's trust level upstream.
	HeaderTrustLevel = "x-knaight-trust-level"
)

// JSON-RPC error codes of local responses. -32700 and -32600 are JSON-RPC
// 2.0's; -32020 is MCP's header mismatch; the -3200x range is the
// implementation-defined server error range JSON-RPC reserves.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcInternalError  = -32603
	rpcHeaderMismatch = -32020
	rpcUnauthorized   = -32001
	rpcForbidden      = -32003
)

// statusOf is the HTTP status and JSON-RPC code of each denial reason.
func statusOf(r decision.Reason) (status uint32, code int) {
	switch r {
	case decision.SnapshotUnavailable, decision.SnapshotStale:
		return 503, rpcInternalError
	case decision.InternalError:
		return 500, rpcInternalError
	case decision.MethodNotAllowed:
		return 405, rpcInvalidRequest
	case decision.TokenMissing, decision.TokenInvalid, decision.TokenRevoked,
		decision.SignatureMissing, decision.SignatureMalformed, decision.TimestampSkew,
		decision.AgentMismatch, decision.AgentUnknown, decision.SignatureUnknownKey,
		decision.SignatureInvalid, decision.Replay:
		return 401, rpcUnauthorized
	case decision.BodyTooLarge:
		return 413, rpcInvalidRequest
	case decision.JSONRPCParseError:
		return 400, rpcParseError
	case decision.JSONRPCInvalid, decision.JSONRPCBatch:
		return 400, rpcInvalidRequest
	case decision.MCPHeaderMismatch:
		return 400, rpcHeaderMismatch
	}
	return 403, rpcForbidden // the agent and the policy's denials
}

// localResponse is a response the filter sends instead of forwarding.
type localResponse struct {
	status  uint32
	headers [][2]string
	body    []byte
}

// buildDenial builds the local response for a denial: a JSON-RPC error
// with the request's id (null when unknown), the reason and decision id in
// headers and in the error's data, and extra headers (WWW-Authenticate).
func buildDenial(reason decision.Reason, message, decisionID string, id []byte, extra ...[2]string) localResponse {
	status, code := statusOf(reason)
	body := make([]byte, 0, 160+len(message))
	body = append(body, `{"jsonrpc":"2.0","id":`...)
	if len(id) > 0 {
		body = append(body, id...)
	} else {
		body = append(body, "null"...)
	}
	body = append(body, `,"error":{"code":`...)
	body = strconv.AppendInt(body, int64(code), 10)
	body = append(body, `,"message":`...)
	body = appendString(body, message)
	body = append(body, `,"data":{"reason":`...)
	body = appendString(body, string(reason))
	body = append(body, `,"decisionId":`...)
	body = appendString(body, decisionID)
	body = append(body, "}}}"...)
	headers := append([][2]string{
		{"content-type", "application/json"},
		{HeaderReason, string(reason)},
		{HeaderDecisionID, decisionID},
		{"cache-control", "no-store"},
	}, extra...)
	return localResponse{status: status, headers: headers, body: body}
}

// newDecisionID returns 128 random bits from the host's source (readRandom)
// as 32 hex digits.
func newDecisionID() string {
	var b [16]byte
	readRandom(b[:])
	return hex.EncodeToString(b[:])
}

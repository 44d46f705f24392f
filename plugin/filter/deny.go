package filter

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Reason is the machine-readable cause of a decision. It is sent to the
// client in the HeaderReason header and in the JSON-RPC error's data, and
// will be reported with the decision.
type Reason string

// The reasons this version of the filter can give. Both deny.
const (
	// ReasonSnapshotUnavailable: the filter has no policy snapshot, so it
	// cannot decide and fails closed. In this version it never has one.
	ReasonSnapshotUnavailable Reason = "snapshot_unavailable"
	// ReasonInternalError: the filter failed (a callback panicked) while
	// handling the request, and denied it rather than let it through.
	ReasonInternalError Reason = "internal_error"
)

// Headers the filter adds to the responses it sends itself.
const (
	// HeaderReason carries the Reason of a denial.
	HeaderReason = "x-knaight-reason"
	// HeaderDecisionID carries the decision id: 32 lower-case hex digits (128
	// random bits) that identify this decision in logs and, later, the audit
	// ledger.
	HeaderDecisionID = "x-knaight-decision-id"
)

// StatusUnavailable is the HTTP status of every denial this version sends:
// 503, because the gateway cannot decide yet, not because the caller is
// known to lack permission.
const StatusUnavailable = 503

// jsonRPCInternalError is JSON-RPC 2.0's "Internal error" code. MCP speaks
// JSON-RPC, so a denied MCP client gets an error it can parse.
const jsonRPCInternalError = -32603

// messages are the human-readable JSON-RPC error messages per reason.
var messages = map[Reason]string{
	ReasonSnapshotUnavailable: "gateway has no policy snapshot: failing closed",
	ReasonInternalError:       "gateway internal error: failing closed",
}

// denial is a local response the filter sends instead of forwarding the
// request.
type denial struct {
	status  uint32
	headers [][2]string
	body    []byte
}

// newDenial builds the 503 response for reason with a fresh decision id. It
// does not call the host, so it is safe to use anywhere.
func newDenial(reason Reason) denial {
	id := newDecisionID()
	msg, ok := messages[reason]
	if !ok {
		msg = "gateway denied the request"
	}
	type errData struct {
		Reason     Reason `json:"reason"`
		DecisionID string `json:"decisionId"`
	}
	type rpcError struct {
		Code    int     `json:"code"`
		Message string  `json:"message"`
		Data    errData `json:"data"`
	}
	type response struct {
		JSONRPC string    `json:"jsonrpc"`
		ID      *struct{} `json:"id"` // always null: the request body has not been read
		Error   rpcError  `json:"error"`
	}
	body, err := json.Marshal(response{
		JSONRPC: "2.0",
		Error:   rpcError{Code: jsonRPCInternalError, Message: msg, Data: errData{Reason: reason, DecisionID: id}},
	})
	if err != nil {
		// Unreachable (only strings and ints); keep a valid body regardless.
		body = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":` + strconv.Itoa(jsonRPCInternalError) + `,"message":"gateway denied the request"}}`)
	}
	return denial{
		status: StatusUnavailable,
		headers: [][2]string{
			{"content-type", "application/json"},
			{HeaderReason, string(reason)},
			{HeaderDecisionID, id},
		},
		body: body,
	}
}

// newDecisionID returns 128 random bits from crypto/rand as 32 hex digits.
// crypto/rand.Read never fails (since Go 1.24 it crashes the program if the
// system's source is broken), so there is no error to handle.
func newDecisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

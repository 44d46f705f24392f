package mcpdemo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/sign"
)

// Headers the gateway adds to each request it forwards, besides the
// signature headers of shared/sign. They are not signed: they tell the
// upstream which decision let the request through and the agent's trust
// level then, for its logs and answers, and must not decide anything here.
const (
	HeaderDecisionID = "X-Knaight-Decision-Id"
	HeaderTrustLevel = "X-Knaight-Trust-Level"
)

// ReasonDecisionMissing is the refusal reason of a signed request without
// HeaderDecisionID: it did not come through the gateway's decision path.
const ReasonDecisionMissing = "decision_id_missing"

// rpcUnauthorized is the JSON-RPC code of a 401, as the gateway uses it.
const rpcUnauthorized = -32001

// DefaultSkew is the upstream's window for the gateway's signatures. The
// gateway signs as it forwards, on a clock of the same deployment, so the
// window is far shorter than the agents' (sign.DefaultSkew); a short window
// also bounds the replay cache: every signature is remembered for 2×skew.
const DefaultSkew = 30 * time.Second

// replayCacheSize bounds the signatures remembered against replay: with
// DefaultSkew, a sustained 1,600 requests per second. Past it the upstream
// refuses calls (fails closed) until signatures expire.
const replayCacheSize = 100_000

// Caller is who a request came from, as the gateway vouched for it.
type Caller struct {
	// Agent is the calling agent's ANS name (X-Knaight-Agent), covered by
	// the gateway's signature.
	Agent string
	// TrustLevel is the agent's trust level when the gateway decided
	// (HeaderTrustLevel); not signed.
	TrustLevel string
	// DecisionID is the id of the gateway's decision in the audit ledger
	// (HeaderDecisionID); not signed.
	DecisionID string
}

type callerKey struct{}

// CallerFrom returns the caller requireGateway put into the context of a
// request it accepted.
//
// MCP handlers should not rely on it: the SDK runs a session's handlers in
// the context of the HTTP request that opened the session (initialize), not
// of the request that carried the call. They read the caller from the
// call's own headers (mcp.RequestExtra.Header), which the same check
// verified.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// callerFromHeader reads the caller from the headers of a request that
// requireGateway accepted.
func callerFromHeader(h http.Header) (Caller, bool) {
	sh, err := sign.ParseHeaders(h.Values)
	if err != nil {
		return Caller{}, false
	}
	return Caller{Agent: sh.Agent, TrustLevel: h.Get(HeaderTrustLevel), DecisionID: h.Get(HeaderDecisionID)}, true
}

// callerOf is the caller of one MCP call: from the headers of the HTTP
// request that carried it, else from the context.
func callerOf(ctx context.Context, extra *mcp.RequestExtra) Caller {
	if extra != nil {
		if c, ok := callerFromHeader(extra.Header); ok {
			return c
		}
	}
	c, _ := CallerFrom(ctx)
	return c
}

// requireGateway admits only requests the gateway signed with one of the
// upstream keys, each signature once, with a decision id. It reads the body
// (at most MaxBodyBytes) to hash it and hands next a fresh reader over it;
// GET and DELETE have no body and are signed over the empty body's hash.
// A refusal is 401 (413 for a body too large) with a JSON-RPC error whose
// data names the reason in the gateway's vocabulary (shared/decision).
func requireGateway(o Options, logger *slog.Logger, next http.Handler) http.Handler {
	skew := o.Skew
	if skew == 0 {
		skew = DefaultSkew
	}
	v := sign.Verifier{Skew: skew, Replay: sign.NewMemoryReplayCache(replayCacheSize)}
	var all [][]byte
	byID := make(map[string][][]byte, len(o.UpstreamKeys))
	for kid, k := range o.UpstreamKeys {
		k = slices.Clone(k)
		all, byID[kid] = append(all, k), [][]byte{k}
	}
	// The gateway signs with its upstream key on behalf of the agent, so the
	// key depends on the key id only, never on the agent.
	keys := func(_, keyID string) ([][]byte, error) {
		if keyID == "" {
			return all, nil
		}
		return byID[keyID], nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				refuse(w, r, logger, http.StatusRequestEntityTooLarge, string(decision.BodyTooLarge), "the request body is larger than the upstream accepts")
				return
			}
			refuse(w, r, logger, http.StatusBadRequest, "body_unreadable", "cannot read the request body")
			return
		}
		h, err := v.VerifyHTTP(r, body, keys)
		if err != nil {
			status, reason := refusal(err)
			logger.WarnContext(r.Context(), "request not signed by the gateway", "reason", reason, "method", r.Method, "path", r.URL.Path,
				"claimed_agent", r.Header.Get(sign.HeaderAgent), "error", err)
			message := "the request is not signed by the Knaight gateway: " + reason
			if status >= 500 {
				message = "the upstream cannot verify signatures"
			}
			writeRefusal(w, status, reason, message)
			return
		}
		c := Caller{Agent: h.Agent, TrustLevel: r.Header.Get(HeaderTrustLevel), DecisionID: r.Header.Get(HeaderDecisionID)}
		if c.DecisionID == "" {
			refuse(w, r, logger, http.StatusUnauthorized, ReasonDecisionMissing, "the request carries no "+HeaderDecisionID+": it did not pass the gateway's decision")
			return
		}
		logger.DebugContext(r.Context(), "gateway request accepted", "agent", c.Agent, "decision", c.DecisionID, "method", r.Method)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// refusal maps a VerifyHTTP error to a status and a reason code.
func refusal(err error) (status int, reason string) {
	switch {
	case errors.Is(err, sign.ErrMissingHeader):
		return http.StatusUnauthorized, string(decision.SignatureMissing)
	case errors.Is(err, sign.ErrMalformedHeader), errors.Is(err, sign.ErrMalformedSignature),
		errors.Is(err, sign.ErrMalformedTimestamp), errors.Is(err, sign.ErrInvalidRequest):
		return http.StatusUnauthorized, string(decision.SignatureMalformed)
	case errors.Is(err, sign.ErrUnknownKey):
		return http.StatusUnauthorized, string(decision.SignatureUnknownKey)
	case errors.Is(err, sign.ErrBadSignature):
		return http.StatusUnauthorized, string(decision.SignatureInvalid)
	case errors.Is(err, sign.ErrStale), errors.Is(err, sign.ErrFuture):
		return http.StatusUnauthorized, string(decision.TimestampSkew)
	case errors.Is(err, sign.ErrReplay):
		return http.StatusUnauthorized, string(decision.Replay)
	}
	// A weak key (Validate prevents it) or a failed key lookup: the server
	// cannot decide, which is not the client's fault.
	return http.StatusInternalServerError, string(decision.InternalError)
}

func refuse(w http.ResponseWriter, r *http.Request, logger *slog.Logger, status int, reason, message string) {
	logger.WarnContext(r.Context(), "request refused", "reason", reason, "method", r.Method, "path", r.URL.Path)
	writeRefusal(w, status, reason, message)
}

// writeRefusal answers with a JSON-RPC error response. Its id is null: the
// body of a refused request is not trusted enough to parse.
func writeRefusal(w http.ResponseWriter, status int, reason, message string) {
	type rpcError struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Data    map[string]string `json:"data"`
	}
	code := rpcUnauthorized
	switch {
	case status >= 500:
		code = jsonrpc.CodeInternalError
	case status != http.StatusUnauthorized:
		code = jsonrpc.CodeInvalidRequest
	}
	body, _ := json.Marshal(struct {
		JSONRPC string   `json:"jsonrpc"`
		ID      any      `json:"id"`
		Error   rpcError `json:"error"`
	}{"2.0", nil, rpcError{Code: code, Message: message, Data: map[string]string{"reason": reason}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

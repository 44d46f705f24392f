package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/mcp"
	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/sign"
	"github.com/knaight/knaight/shared/snapshot"
	"github.com/knaight/knaight/shared/token"
)

// MCP requests carry no body on GET (the client opens the server's event
// stream) and DELETE (the client ends its session), so those are judged by
// their HTTP method: the policy sees them as these methods, which its
// allowedEndpoints must name like any other (docs/policy.md).
const (
	MethodStream = "transport/stream"
	MethodClose  = "transport/close"
)

// httpContext judges one HTTP stream. Request callbacks run the checks of
// the architecture's request sequence in order; the first that fails
// decides. Once decided, later callbacks only let the allowed request
// through or keep the denied one paused.
type httpContext struct {
	p *pluginContext

	decided, allowed, responded bool
	// spent is the time spent in the filter's callbacks, for the record.
	spent time.Duration

	v      *view
	now    time.Time
	rec    decision.Record
	claims *verifiedToken
	sig    sign.Headers
	ts     time.Time
	agent  *snapshot.Agent
	// hmac are the agent's live keys that may have signed the request.
	hmac []*sign.Key
	// hmacKeys backs hmac for agents with up to two live keys (one, or two
	// during a rotation), which saves an allocation per request.
	hmacKeys [2]*sign.Key
	rpcID    []byte
	// rpcIDBuf backs rpcID for ids of up to 24 bytes, which saves an
	// allocation per request.
	rpcIDBuf [24]byte
	// headers is the request's header map, read from the host once; path
	// its :path.
	headers headerList
	path    string
	// Headers of MCP 2026-07-28, and whether each was present.
	protocol, mcpMethod, mcpName string
	hasMethod, hasName           bool
	bodySize                     int
}

// OnHttpRequestHeaders runs the checks that need no body: metadata, the
// snapshot's freshness, the token, the signature headers and timestamp, and
// the agent's identity.
func (h *httpContext) OnHttpRequestHeaders(_ int, endOfStream bool) (action types.Action) {
	defer h.recoverDeny(cbRequestHeaders, &action)
	callTestHook(cbRequestHeaders)
	start := time.Now()
	defer func() { h.spent += time.Since(start) }()
	return h.onHeaders(start, endOfStream)
}

func (h *httpContext) onHeaders(now time.Time, endOfStream bool) types.Action {
	p := h.p
	h.now = now
	h.rec = decision.Record{
		ID: newDecisionID(), Kind: decision.KindDecision, Time: now.UTC(),
		Organization: p.config.Organization, Environment: string(p.config.Environment),
	}
	hs, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		return h.deny(decision.InternalError, "cannot read the request headers: "+err.Error(), nil)
	}
	h.headers = newHeaderList(hs)
	method, _ := h.headers.get(":method")
	path, _ := h.headers.get(":path")
	h.path = path
	h.rec.HTTPMethod, h.rec.Path = truncate(method, 16), truncate(path, decision.MaxPathLen)

	if (method == "GET" || method == "HEAD") && p.isMetadataPath(path) {
		return h.serveMetadata()
	}

	v, confirmed, err := p.current()
	if v == nil {
		return h.deny(decision.SnapshotUnavailable, "gateway has no policy snapshot: failing closed", nil)
	}
	if err != nil {
		proxywasm.LogWarnf("knaight: keeping snapshot %d: %v", v.version, err)
	}
	h.v = v
	h.rec.SnapshotVersion = v.version
	h.rec.BundleRevision = v.snap.Bundle.Revision
	if age := now.Sub(confirmed); age > v.staleness {
		return h.deny(decision.SnapshotStale, fmt.Sprintf("gateway snapshot %d was last confirmed %s ago, over the %s limit: failing closed",
			v.version, age.Round(time.Second), v.staleness), nil)
	}

	if method != "POST" && method != "GET" && method != "DELETE" {
		return h.deny(decision.MethodNotAllowed, "MCP uses POST, GET and DELETE, not "+method, nil)
	}

	// The gateway token.
	authorization, _ := h.headers.get("authorization")
	raw, ok := token.Bearer(authorization)
	if !ok {
		return h.deny(decision.TokenMissing, "a gateway token is required (Authorization: Bearer)", nil,
			[2]string{"www-authenticate", `Bearer resource_metadata="` + p.config.metadataURL + `"`})
	}
	claims, cached := p.tokens.get(raw, now)
	if !cached {
		c, err := token.Verify(raw, v, token.Expect{Issuer: v.snap.Issuer, Audience: p.config.Resource, Organization: v.snap.OrganizationID, Now: now})
		if err != nil {
			return h.denyToken(decision.TokenInvalid, "gateway token refused: "+token.Reason(err), token.Reason(err))
		}
		claims = newVerifiedToken(c)
		p.tokens.put(raw, claims, now)
	}
	h.claims = claims
	h.rec.TokenID, h.rec.Agent = claims.ID, claims.Subject
	if _, revoked := v.revoked[claims.ID]; revoked {
		return h.denyToken(decision.TokenRevoked, "gateway token "+claims.ID+" is revoked", "token revoked")
	}

	// The request signature's headers and timestamp.
	sh, err := sign.ParseHeaders(h.headers.values)
	if err != nil {
		if errors.Is(err, sign.ErrMissingHeader) {
			return h.deny(decision.SignatureMissing, "request signature missing: "+err.Error(), nil, h.authChallenge())
		}
		return h.deny(decision.SignatureMalformed, "request signature malformed: "+err.Error(), nil, h.authChallenge())
	}
	h.sig = sh
	h.rec.Agent = truncate(sh.Agent, decision.MaxTextLen)
	h.ts, _ = sign.ParseTimestamp(sh.Timestamp) // ParseHeaders checked it
	if d := now.Sub(h.ts); d > v.skew || d < -v.skew {
		return h.deny(decision.TimestampSkew, fmt.Sprintf("request timestamp %s is %s from the gateway's clock, over the %s window",
			sh.Timestamp, d.Abs().Round(time.Second), v.skew), nil, h.authChallenge())
	}

	// Identity pinning: token subject = X-Knaight-Agent = an ACTIVE ANS name.
	if claims.Subject != sh.Agent {
		return h.deny(decision.AgentMismatch, fmt.Sprintf("token subject %q is not the signing agent %q", claims.Subject, sh.Agent), nil, h.authChallenge())
	}
	if sh.Organization != "" && sh.Organization != p.config.Organization {
		return h.deny(decision.AgentMismatch, fmt.Sprintf("organization header %q is not this gateway's organization", sh.Organization), nil, h.authChallenge())
	}
	agent := v.agents[sh.Agent]
	if agent == nil {
		return h.deny(decision.AgentUnknown, fmt.Sprintf("agent %q is not registered with this organization", sh.Agent), nil, h.authChallenge())
	}
	h.agent = agent
	h.rec.TrustLevel, h.rec.TrustScore = agent.TrustLevel.String(), agent.TrustScore
	if agent.Status != snapshot.StatusActive {
		return h.deny(decision.AgentInactive, fmt.Sprintf("agent %q is %s in ANS, not ACTIVE", sh.Agent, agent.Status), nil)
	}
	h.hmac = h.hmacKeys[:0]
	for i := range agent.Keys {
		k := &agent.Keys[i]
		if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
			continue // retired by a rotation, and its overlap is over
		}
		if sh.KeyID == "" || k.ID == sh.KeyID {
			h.hmac = append(h.hmac, v.agentKey(k))
		}
	}
	if len(h.hmac) == 0 {
		return h.deny(decision.SignatureUnknownKey, fmt.Sprintf("agent %q has no live request-signing key %q", sh.Agent, sh.KeyID), nil, h.authChallenge())
	}

	h.protocol, _ = h.headers.get(mcp.HeaderProtocolVersion)
	h.mcpMethod, h.hasMethod = h.headers.get(mcp.HeaderMethod)
	h.mcpName, h.hasName = h.headers.get(mcp.HeaderName)

	if endOfStream {
		return h.finish(nil)
	}
	if cl, ok := h.headers.get("content-length"); ok {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > int64(p.config.MaxBodyBytes) {
			return h.tooLarge(n)
		}
	}
	// Hold the headers until the body is judged. Envoy needs
	// allow_on_headers_stop_iteration to let the filter still change them.
	return types.ActionPause
}

// OnHttpRequestBody buffers the body up to the limit, then runs the checks
// that need it.
func (h *httpContext) OnHttpRequestBody(bodySize int, endOfStream bool) (action types.Action) {
	defer h.recoverDeny(cbRequestBody, &action)
	callTestHook(cbRequestBody)
	if h.decided {
		return h.after()
	}
	start := time.Now()
	defer func() { h.spent += time.Since(start) }()
	h.bodySize = bodySize
	if bodySize > h.p.config.MaxBodyBytes {
		return h.tooLarge(int64(bodySize))
	}
	if !endOfStream {
		return types.ActionPause // Envoy buffers until the end of the stream
	}
	return h.finishBuffered()
}

// OnHttpRequestTrailers ends a body that had trailers.
func (h *httpContext) OnHttpRequestTrailers(_ int) (action types.Action) {
	defer h.recoverDeny(cbRequestTrailers, &action)
	callTestHook(cbRequestTrailers)
	if h.decided {
		return h.after()
	}
	start := time.Now()
	defer func() { h.spent += time.Since(start) }()
	return h.finishBuffered()
}

func (h *httpContext) finishBuffered() types.Action {
	var body []byte
	if h.bodySize > 0 {
		var err error
		if body, err = proxywasm.GetHttpRequestBody(0, h.bodySize); err != nil {
			return h.deny(decision.InternalError, "cannot read the request body: "+err.Error(), nil)
		}
	}
	return h.finish(body)
}

// after is the action of a callback after the decision.
func (h *httpContext) after() types.Action {
	if h.allowed {
		return types.ActionContinue
	}
	return types.ActionPause
}

func (h *httpContext) tooLarge(n int64) types.Action {
	return h.deny(decision.BodyTooLarge, fmt.Sprintf("request body of %d bytes is over the gateway's %d byte limit", n, h.p.config.MaxBodyBytes), nil)
}

// finish runs the body's checks: the HMAC, the replay check, the MCP
// message and the policy. Then it allows or denies.
func (h *httpContext) finish(body []byte) types.Action {
	p, v, sh := h.p, h.v, h.sig
	digest := sign.BodyDigest(body)
	req := sign.Request{Method: h.rec.HTTPMethod, Target: h.path, BodySHA256: digest, Agent: sh.Agent, Timestamp: sh.Timestamp}
	now := h.now
	// The keys are prepared (view.agentKey), and the whole request is
	// judged at the one reading of the clock in h.now, which VerifyKeyAt
	// takes without the allocation of a Now closure.
	verifier := sign.Verifier{Skew: v.skew}
	var err error
	for _, k := range h.hmac {
		if err = verifier.VerifyKeyAt(now, k, req, sh.Signature); err == nil || !errors.Is(err, sign.ErrBadSignature) {
			break
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, sign.ErrWeakKey):
		return h.deny(decision.InternalError, "the agent's signing key is too short", nil)
	case errors.Is(err, sign.ErrBadSignature):
		return h.deny(decision.SignatureInvalid, "request signature does not verify with the agent's key", nil, h.authChallenge())
	default:
		return h.deny(decision.SignatureInvalid, "request signature refused: "+err.Error(), nil, h.authChallenge())
	}
	sig, _ := sign.ParseSignature(sh.Signature)
	seen, err := p.seen(&sig, h.ts.Add(v.skew), now)
	if err != nil {
		return h.deny(decision.InternalError, "replay protection unavailable: "+err.Error(), nil)
	}
	if seen {
		return h.deny(decision.Replay, "request signature was already used: sign each request anew", nil, h.authChallenge())
	}

	var method, name string
	switch h.rec.HTTPMethod {
	case "GET":
		method = MethodStream
	case "DELETE":
		method = MethodClose
	default:
		msg, err := mcp.Classify(body)
		if err != nil {
			return h.denyMessage(err)
		}
		// A copy: msg.ID aliases the body, which must not stay pinned in
		// memory for as long as the stream lasts (an event stream can
		// last hours). Most ids fit in rpcIDBuf.
		if msg.ID != nil {
			h.rpcID = append(h.rpcIDBuf[:0], msg.ID...)
		}
		h.rec.MCPMethod, h.rec.Name = truncate(msg.Method, decision.MaxTextLen), truncate(msg.Name, decision.MaxTextLen)
		if err := mcp.CheckHeaders(h.protocol, h.mcpMethod, h.mcpName, h.hasMethod, h.hasName, msg); err != nil {
			return h.deny(decision.MCPHeaderMismatch, err.Error(), h.rpcID)
		}
		if msg.Kind == mcp.KindResponse {
			// A response answers a request the server made (sampling,
			// elicitation, roots): it invokes nothing, so the policy,
			// which judges methods, has nothing to judge.
			return h.allow(body, policy.Decision{Allow: true, Reason: policy.ReasonAllowed, Message: "JSON-RPC response to a server request"}, digest)
		}
		method, name = msg.Method, msg.Name
	}

	in := policy.Input{
		RoleTemplate: h.agent.RoleTemplate,
		Environment:  p.config.Environment,
		TrustLevel:   h.agent.TrustLevel,
		LoA:          policy.LoA(h.claims.LoA),
		Scopes:       h.claims.scopes,
		Method:       method,
		Name:         name,
		BodyBytes:    int64(len(body)),
		Time:         now,
	}
	d := v.policies.Evaluate(&in)
	h.rec.PolicyID = d.PolicyID
	if !d.Allow {
		var extra [][2]string
		if d.Reason == policy.ReasonScopeMissing {
			need := strings.TrimSpace(h.claims.Scope + " " + d.MissingScopes)
			extra = append(extra, [2]string{"www-authenticate", `Bearer error="insufficient_scope", scope="` + need +
				`", resource_metadata="` + p.config.metadataURL + `"`})
		}
		return h.deny(decision.Reason(d.Reason), d.Message, h.rpcID, extra...)
	}
	return h.allow(body, d, digest)
}

// denyMessage denies a body that is not one JSON-RPC request or
// notification.
func (h *httpContext) denyMessage(err error) types.Action {
	switch {
	case errors.Is(err, mcp.ErrBatch):
		return h.deny(decision.JSONRPCBatch, "JSON-RPC batches are not accepted (removed from MCP in 2025-06-18): send one message per request", nil)
	case errors.Is(err, mcp.ErrParse):
		return h.deny(decision.JSONRPCParseError, "request body is not valid JSON: "+err.Error(), nil)
	default:
		return h.deny(decision.JSONRPCInvalid, "request body is not one JSON-RPC 2.0 request or notification: "+err.Error(), nil)
	}
}

// allow signs the request for the upstream, strips the client's
// credentials and lets it through.
func (h *httpContext) allow(body []byte, d policy.Decision, digest [32]byte) types.Action {
	v := h.v
	// The body's digest is the one the agent's signature was checked
	// against: the canonical string holds the body only by its SHA-256,
	// so the body is hashed once per request.
	//
	// Nanoseconds: two identical requests of one agent within the same
	// second (or millisecond) must not get the same signature, or the
	// upstream's replay check refuses the second.
	ts := upstreamTimestamp(h.now)
	up := sign.Request{Method: h.rec.HTTPMethod, Target: h.path, BodySHA256: digest, Agent: h.agent.ANSName, Timestamp: ts}
	signature, err := v.upstream.Sign(up)
	if err != nil {
		return h.deny(decision.InternalError, "cannot sign the request for the upstream: "+err.Error(), h.rpcID)
	}
	// The headers the upstream gets from the gateway, in lower case as
	// Envoy keeps header names. sign.Headers.Apply says which signature
	// headers those are; it writes at most five.
	var set [7][2]string
	n := 0
	out := sign.Headers{Agent: h.agent.ANSName, Timestamp: ts, Signature: signature, KeyID: v.snap.Upstream.ID, Organization: h.p.config.Organization}
	out.Apply(func(name, value string) {
		set[n] = [2]string{lowerHeaderName(name), value}
		n++
	})
	set[n] = [2]string{HeaderDecisionID, h.rec.ID}
	set[n+1] = [2]string{HeaderTrustLevel, h.rec.TrustLevel}
	gateway := set[:n+2]

	// Strip the client's credentials: every Authorization, X-Knaight-* and
	// X-SCK-* header. Each host call costs, so a header the gateway sets
	// is left to the replacement below when the client sent it once, under
	// the very name the gateway sets (a replacement leaves one entry with
	// the gateway's value), and left alone when it already has the value
	// the gateway sets (the agent's name, the organization). A repeated
	// one is removed first: hosts replace only the first of several
	// entries.
	for _, hv := range h.headers.kv {
		name := strings.ToLower(hv[0])
		if name != "authorization" && !strings.HasPrefix(name, "x-knaight-") && !strings.HasPrefix(name, "x-sck-") {
			continue
		}
		if _, ok := h.headers.sole(name); ok && setsHeader(gateway, name) {
			continue
		}
		if err := proxywasm.RemoveHttpRequestHeader(hv[0]); err != nil {
			return h.deny(decision.InternalError, "cannot remove the client's credentials: "+err.Error(), h.rpcID)
		}
	}
	for _, kv := range gateway {
		if have, ok := h.headers.sole(kv[0]); ok && have == kv[1] {
			continue
		}
		if err := proxywasm.ReplaceHttpRequestHeader(kv[0], kv[1]); err != nil {
			return h.deny(decision.InternalError, "cannot sign the request for the upstream: "+err.Error(), h.rpcID)
		}
	}
	h.decided, h.allowed = true, true
	h.rec.Allow, h.rec.Reason, h.rec.Message = true, decision.Allowed, d.Message
	h.p.metrics.countDecision(decision.Allowed)
	return types.ActionContinue
}

// deny sends the local response for reason, once per stream, and pauses
// the stream so that the request never reaches the upstream. If the host
// refuses the local response the stream stays paused: a hung request is a
// failure, a forwarded one would be a breach.
func (h *httpContext) deny(reason decision.Reason, message string, id []byte, extra ...[2]string) types.Action {
	if h.responded {
		return types.ActionPause
	}
	if h.rec.ID == "" {
		h.rec = decision.Record{ID: newDecisionID(), Kind: decision.KindDecision, Time: time.Now().UTC(),
			Organization: h.p.config.Organization, Environment: string(h.p.config.Environment)}
	}
	h.decided, h.allowed = true, false
	h.rec.Allow, h.rec.Reason, h.rec.Message = false, reason, truncate(message, decision.MaxTextLen)
	r := buildDenial(reason, message, h.rec.ID, id, extra...)
	h.rec.Status = int(r.status)
	h.p.metrics.countDecision(reason)
	if err := proxywasm.SendHttpResponse(r.status, r.headers, r.body, -1); err != nil {
		proxywasm.LogCriticalf("knaight: cannot send the %d (%s) response: %v; keeping the stream paused", r.status, reason, err)
		return types.ActionPause
	}
	h.responded = true
	return types.ActionPause
}

// denyToken denies for a token failure: 401 with error="invalid_token".
func (h *httpContext) denyToken(reason decision.Reason, message, description string) types.Action {
	return h.deny(reason, message, nil, [2]string{"www-authenticate",
		`Bearer error="invalid_token", error_description="` + description + `", resource_metadata="` + h.p.config.metadataURL + `"`})
}

// authChallenge is the WWW-Authenticate header of 401s that are not about
// the token itself.
func (h *httpContext) authChallenge() [2]string {
	return [2]string{"www-authenticate", `Bearer resource_metadata="` + h.p.config.metadataURL + `"`}
}

// serveMetadata answers the RFC 9728 protected resource metadata request.
// It needs the snapshot for the authorization servers but not a fresh one:
// the metadata tells clients where to get tokens, it grants nothing.
func (h *httpContext) serveMetadata() types.Action {
	v, _, _ := h.p.current()
	if v == nil {
		return h.deny(decision.SnapshotUnavailable, "gateway has no policy snapshot: failing closed", nil)
	}
	h.decided, h.responded = true, true
	h.rec = decision.Record{} // not an MCP request: nothing to record
	if err := proxywasm.SendHttpResponse(200, [][2]string{
		{"content-type", "application/json"},
		{"cache-control", "max-age=60"},
	}, v.metadata, -1); err != nil {
		proxywasm.LogErrorf("knaight: cannot send the protected resource metadata: %v", err)
	}
	return types.ActionPause
}

// OnHttpResponseHeaders adds the decision id to an allowed request's
// response.
func (h *httpContext) OnHttpResponseHeaders(_ int, _ bool) (action types.Action) {
	defer h.recoverDeny(cbResponseHeaders, &action)
	callTestHook(cbResponseHeaders)
	if h.allowed {
		_ = proxywasm.ReplaceHttpResponseHeader(HeaderDecisionID, h.rec.ID)
	}
	return types.ActionContinue
}

// OnHttpResponseBody lets the response body through unbuffered, so that
// event streams flow.
func (h *httpContext) OnHttpResponseBody(_ int, _ bool) (action types.Action) {
	defer h.recoverDeny(cbResponseBody, &action)
	callTestHook(cbResponseBody)
	return types.ActionContinue
}

// OnHttpResponseTrailers lets the response trailers through.
func (h *httpContext) OnHttpResponseTrailers(_ int) (action types.Action) {
	defer h.recoverDeny(cbResponseTrailers, &action)
	callTestHook(cbResponseTrailers)
	return types.ActionContinue
}

// OnHttpStreamDone reports the decision: it enqueues the record for the
// poller and counts it. A stream that never got to a decision (the client
// went away mid-body) is recorded too, as undecided, so nothing is silent.
func (h *httpContext) OnHttpStreamDone() {
	defer func() {
		if r := recover(); r != nil {
			proxywasm.LogCriticalf("knaight: panic in %s: %v", cbStreamDone, r)
		}
	}()
	callTestHook(cbStreamDone)
	if h.rec.ID == "" || h.rec.Kind == "" {
		return
	}
	if !h.decided {
		h.rec.Allow, h.rec.Reason, h.rec.Message = false, decision.InternalError, "stream ended before the filter decided"
	}
	h.rec.LatencyMicros = h.spent.Microseconds()
	h.p.enqueue(&h.rec)
}

// recoverDeny is deferred by every HTTP callback that can still change the
// stream. It turns a panic into a denial with reason internal_error: a local
// 500 unless one was already sent, and ActionPause. It must be deferred
// directly (recover only works in the deferred call itself).
func (h *httpContext) recoverDeny(callback string, action *types.Action) {
	r := recover()
	if r == nil {
		return
	}
	*action = types.ActionPause // whatever happens below, never continue
	defer func() {
		// A second panic while denying must not escape into the SDK either.
		if r2 := recover(); r2 != nil {
			*action = types.ActionPause
		}
	}()
	proxywasm.LogCriticalf("knaight: panic in %s: %v; denying the request", callback, r)
	// Even after an allow: a panic while the upstream's response passes
	// replaces that response with the 500.
	h.allowed = false
	h.decided = false
	*action = h.deny(decision.InternalError, "gateway internal error: failing closed", h.rpcID)
}

// headerList is a request's header map as the host gives it: lower-case
// names, a repeated header as several entries.
type headerList struct {
	kv [][2]string
	// folds is true when a name has a byte outside ASCII, which
	// strings.EqualFold may match with an ASCII name of another length
	// (the Kelvin sign folds to k). Otherwise names of different lengths
	// never match, and lookups compare lengths first: a request looks up
	// about twenty names in its headers, and the length rules out nearly
	// every header without a call to strings.EqualFold.
	folds bool
}

func newHeaderList(kv [][2]string) headerList {
	l := headerList{kv: kv}
	for _, h := range kv {
		for i := 0; i < len(h[0]); i++ {
			if h[0][i] >= utf8.RuneSelf {
				l.folds = true
				return l
			}
		}
	}
	return l
}

// is reports whether the header name have is name, an ASCII name, matched
// without regard to case (strings.EqualFold).
func (l *headerList) is(have, name string) bool {
	return (len(have) == len(name) || l.folds) && strings.EqualFold(have, name)
}

// get returns the value of the header name (an ASCII name, matched without
// regard to case) and whether it is present; the values of a repeated
// header are joined with commas (RFC 9110, 5.3), which makes a repeated
// Authorization or MCP header fail to parse: the refusal it deserves.
func (l *headerList) get(name string) (string, bool) {
	var v string
	found := false
	for _, kv := range l.kv {
		if l.is(kv[0], name) {
			if found {
				v += "," + kv[1]
			} else {
				v, found = kv[1], true
			}
		}
	}
	return v, found
}

// values returns every value of the header name, for sign.ParseHeaders,
// which refuses a signature header that is repeated. The slice of a header
// sent once is a view of the list, not a copy: callers only read it.
func (l *headerList) values(name string) []string {
	first := -1
	var out []string
	for i := range l.kv {
		if !l.is(l.kv[i][0], name) {
			continue
		}
		switch {
		case first < 0:
			first = i
		case out == nil:
			out = []string{l.kv[first][1], l.kv[i][1]}
		default:
			out = append(out, l.kv[i][1])
		}
	}
	if out == nil && first >= 0 {
		return l.kv[first][1:]
	}
	return out
}

// sole returns the value of the header name when the list has exactly one
// entry for it, in any letter case, and that entry is spelled name.
func (l *headerList) sole(name string) (string, bool) {
	v, n := "", 0
	for _, kv := range l.kv {
		if l.is(kv[0], name) {
			if kv[0] != name {
				return "", false
			}
			v, n = kv[1], n+1
		}
	}
	return v, n == 1
}

// lowerHeaderName returns strings.ToLower(name), without allocating for the
// names sign.Headers.Apply writes on every allowed request.
func lowerHeaderName(name string) string {
	switch name {
	case sign.HeaderAgent:
		return "x-knaight-agent"
	case sign.HeaderTimestamp:
		return "x-knaight-timestamp"
	case sign.HeaderSignature:
		return "x-knaight-signature"
	case sign.HeaderKeyID:
		return "x-knaight-key-id"
	case sign.HeaderOrganization:
		return "x-knaight-organization"
	}
	return strings.ToLower(name)
}

// setsHeader reports whether headers has an entry named name.
func setsHeader(headers [][2]string, name string) bool {
	for _, kv := range headers {
		if kv[0] == name {
			return true
		}
	}
	return false
}

// timestampLayout is the upstream signature's timestamp: UTC, nanoseconds.
const timestampLayout = "2006-01-02T15:04:05.000000000Z"

// upstreamTimestamp returns t.UTC().Format(timestampLayout). It writes the
// digits itself for years 0 to 9999, so that the allow path does not
// interpret the layout on every request.
func upstreamTimestamp(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(timestampLayout)
	}
	hour, minute, sec := t.Clock()
	var b [len(timestampLayout)]byte
	putDigits(b[0:4], year)
	b[4] = '-'
	putDigits(b[5:7], int(month))
	b[7] = '-'
	putDigits(b[8:10], day)
	b[10] = 'T'
	putDigits(b[11:13], hour)
	b[13] = ':'
	putDigits(b[14:16], minute)
	b[16] = ':'
	putDigits(b[17:19], sec)
	b[19] = '.'
	putDigits(b[20:29], t.Nanosecond())
	b[29] = 'Z'
	return string(b[:])
}

// putDigits writes the len(b) lowest decimal digits of the non-negative n
// into b, padded with zeros.
func putDigits(b []byte, n int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}

// truncate cuts s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

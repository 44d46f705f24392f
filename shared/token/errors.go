package token

import "errors"

// Verify returns every error wrapped around one of the sentinels below, with
// details for logs (never the token itself): match them with errors.Is, or
// turn them into a reason code with Reason. Each means "this request is not
// authenticated": answer 401 with WWW-Authenticate and do not run the
// request. None is worth retrying with the same token.
var (
	// ErrMalformed: the token is not a JWS in compact form this package can
	// read: too long, not three canonical base64url segments, JSON that is
	// not an object or repeats a name, a crit header, or a claim of the
	// wrong type. The client sent something that is not a gateway token;
	// it should get a new one from the manager.
	ErrMalformed = errors.New("token: malformed")

	// ErrUnsupportedAlgorithm: "alg" is missing, "none", or anything but
	// the algorithm of the key that "kid" names. Treat it as a forgery
	// attempt: log it with the kid, answer 401.
	ErrUnsupportedAlgorithm = errors.New("token: algorithm not allowed for its key")

	// ErrUnknownKey: "kid" is missing or names no key of the key set, or
	// the key has no usable material. Answer 401. If it happens for tokens
	// the manager just issued, the snapshot's keys are stale or incomplete:
	// refresh the snapshot, and check the manager's key export.
	ErrUnknownKey = errors.New("token: unknown signing key")

	// ErrBadSignature: the signature does not verify under the key: the
	// token was altered or forged. Answer 401.
	ErrBadSignature = errors.New("token: signature mismatch")

	// ErrType: "typ" is missing or is not at+jwt (RFC 9068): some other
	// JWT, such as an ID token or a client assertion, was presented as an
	// access token. Answer 401.
	ErrType = errors.New("token: not an at+jwt access token")

	// ErrIssuer: "iss" is missing or is not the expected issuer (also when
	// Expect.Issuer is empty). Answer 401; if every token fails so, the
	// gateway's configured issuer is wrong.
	ErrIssuer = errors.New("token: wrong issuer")

	// ErrAudience: "aud" does not name the protected resource (also when
	// Expect.Audience is empty): the token was issued for another MCP
	// server. Answer 401; the client should ask for a token for this
	// resource.
	ErrAudience = errors.New("token: wrong audience")

	// ErrExpired: "exp" is missing or not after the verification time. Answer
	// 401; the client should get a new token.
	ErrExpired = errors.New("token: expired")

	// ErrNotYetValid: "nbf" or "iat" is after the verification time (plus
	// leeway). Answer 401; if it repeats, the manager's and the gateway's
	// clocks disagree.
	ErrNotYetValid = errors.New("token: not yet valid")

	// ErrMissingClaim: a claim the gateway needs is missing or inconsistent:
	// sub, jti, org or ans is absent, jti is not a canonical UUID, sub is not
	// ans, or org is not Expect.Organization. Answer 401; the manager never
	// issues such a token.
	ErrMissingClaim = errors.New("token: missing or inconsistent claim")
)

// reasons pairs each sentinel with its reason code, in the order Reason
// tries them.
var reasons = [...]struct {
	err  error
	code string
}{
	{ErrMalformed, "token_malformed"},
	{ErrUnsupportedAlgorithm, "token_algorithm"},
	{ErrUnknownKey, "token_unknown_key"},
	{ErrBadSignature, "token_signature"},
	{ErrType, "token_type"},
	{ErrIssuer, "token_issuer"},
	{ErrAudience, "token_audience"},
	{ErrExpired, "token_expired"},
	{ErrNotYetValid, "token_not_yet_valid"},
	{ErrMissingClaim, "token_claims"},
}

// Reason returns the stable reason code of an error from Verify, for the
// decision record and the x-knaight-reason header: one of Reasons(). It
// returns "" for nil and for an error that wraps none of this package's
// sentinels.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return ""
}

// Reasons returns every code Reason can return, for the decision record's
// closed list of reasons.
func Reasons() []string {
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = r.code
	}
	return out
}

package sign

import "errors"

// The errors below are returned wrapped, with details for logs: match them
// with errors.Is. Every error from ParseHeaders, Verify and VerifyHTTP except
// ErrWeakKey and an error from the caller's key lookup means "this request is
// not authenticated": answer 401 and do not run the request. None of them
// should be retried with the same headers; a client has to sign again.
var (
	// ErrMissingHeader: a required header (agent, timestamp or signature, in
	// either form) is absent. The request is not signed; answer 401.
	ErrMissingHeader = errors.New("sign: missing header")

	// ErrMalformedHeader: a header is present but unusable: empty, with
	// control characters or surrounding white space, repeated with different
	// values, or sent in both the X-Knaight-* and the X-SCK-* form with
	// different values. Answer 401 and do not guess which value was meant.
	ErrMalformedHeader = errors.New("sign: malformed header")

	// ErrMalformedSignature: the signature is not "hmac-sha256=" followed by
	// 64 hexadecimal digits. Answer 401.
	ErrMalformedSignature = errors.New("sign: malformed signature")

	// ErrMalformedTimestamp: the timestamp is not RFC 3339 as this package
	// accepts it (see the package documentation). Answer 401.
	ErrMalformedTimestamp = errors.New("sign: malformed timestamp")

	// ErrInvalidRequest: a signed fact cannot be put into the canonical
	// string: an empty or non-token method, a request target that does not
	// start with "/", a control character or invalid UTF-8 in a line, an
	// agent with surrounding white space, or an unset BodySHA256. From Sign
	// and SignHTTP it is a bug in the caller; from Verify, answer 401.
	ErrInvalidRequest = errors.New("sign: request cannot be canonicalized")

	// ErrWeakKey: the HMAC key is shorter than MinKeySize bytes. This is a
	// configuration error on the side that got it, not the client's fault:
	// a verifier should answer 500 and alert, a signer should not send.
	ErrWeakKey = errors.New("sign: HMAC key too short")

	// ErrUnknownKey: VerifyHTTP's key lookup returned no key for the agent
	// and key id. Answer 401; the agent is unknown or its keys expired.
	ErrUnknownKey = errors.New("sign: no key for agent")

	// ErrBadSignature: the signature does not match: wrong key, or the
	// method, target, body, agent or timestamp differ from what was signed.
	// Answer 401.
	ErrBadSignature = errors.New("sign: signature mismatch")

	// ErrStale: the timestamp is more than the skew window in the past.
	// Answer 401; the client should sign again, and check its clock if this
	// repeats.
	ErrStale = errors.New("sign: timestamp too old")

	// ErrFuture: the timestamp is more than the skew window in the future.
	// Answer 401; the client's clock is ahead (or the verifier's behind).
	ErrFuture = errors.New("sign: timestamp in the future")

	// ErrReplay: the signature verified but was already accepted once within
	// its window, or the replay cache is full of unexpired entries and cannot
	// record it (fail closed). Answer 401. A client that retries must sign
	// again with a new timestamp; an operator who sees it under legitimate
	// load should enlarge the cache (see NewMemoryReplayCache).
	ErrReplay = errors.New("sign: replayed signature")
)

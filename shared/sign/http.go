package sign

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// VerifyHTTP verifies a request received by a net/http server: it parses the
// signature headers of req, builds the Request from req.Method, the request
// target (see below), BodyDigest(body) and the agent and timestamp headers,
// asks keys for the keys of the agent and key id (KeyID is "" when the
// header is absent) and accepts the signature if it verifies under any of
// them, which covers a key rotation's overlap. It returns the parsed headers
// on success.
//
// body must be the complete request body; VerifyHTTP does not read
// req.Body. Read it with a size limit first and give the handler a new
// reader over it.
//
// The request target is req.RequestURI, the target exactly as it came on
// the request line, when it is in origin form (starts with "/"). That is
// what the client signed; req.URL.RequestURI() is re-encoded by net/url and
// can differ from it (for example "/{id}" becomes "/%7Bid%7D"). Otherwise,
// for an absolute-form target through a forward proxy or a request built
// in-process with RequestURI unset, it is req.URL.RequestURI().
//
// An error from keys is returned wrapped and means the verifier could not
// decide: answer 503 or 500, not 401. No keys gives ErrUnknownKey. Other
// errors are those of ParseHeaders and Verify.
func (v Verifier) VerifyHTTP(req *http.Request, body []byte, keys func(agent, keyID string) ([][]byte, error)) (Headers, error) {
	h, err := ParseHeaders(req.Header.Values)
	if err != nil {
		return Headers{}, err
	}
	ks, err := keys(h.Agent, h.KeyID)
	if err != nil {
		return Headers{}, fmt.Errorf("sign: key lookup for %q: %w", h.Agent, err)
	}
	if len(ks) == 0 {
		return Headers{}, fmt.Errorf("%w: %q (key id %q)", ErrUnknownKey, h.Agent, h.KeyID)
	}
	r := Request{
		Method:     req.Method,
		Target:     requestTarget(req),
		BodySHA256: BodyDigest(body),
		Agent:      h.Agent,
		Timestamp:  h.Timestamp,
	}
	if err := v.verify(nil, ks, r, h.Signature); err != nil {
		return Headers{}, err
	}
	return h, nil
}

func requestTarget(req *http.Request) string {
	if strings.HasPrefix(req.RequestURI, "/") {
		return req.RequestURI
	}
	return req.URL.RequestURI()
}

// SignHTTP signs an outgoing request for agent with key (whose id, if not
// "", goes in HeaderKeyID) at time now: it removes every signature header of
// either form already on req (such as an agent's, on a request the gateway
// forwards), then sets HeaderAgent, HeaderTimestamp, HeaderSignature and
// HeaderKeyID. Set HeaderOrganization afterwards if wanted.
//
// body must be exactly the body that will be sent; SignHTTP does not read
// req.Body. The target signed is req.URL.RequestURI(), what net/http's
// client sends on the request line; the request must not be rewritten
// between here and the verifier. The timestamp is now in UTC with
// millisecond precision ("2025-01-25T10:00:00.123Z"), so that identical
// requests sent within one second still get different signatures and are
// not taken for replays.
//
// The error wraps ErrWeakKey or ErrInvalidRequest; on error req is not
// changed.
func SignHTTP(req *http.Request, body []byte, key []byte, agent, keyID string, now time.Time) error {
	h := Headers{
		Agent:     agent,
		Timestamp: now.UTC().Format("2006-01-02T15:04:05.000Z"),
		KeyID:     keyID,
	}
	if keyID != "" && (!cleanLine(keyID) || isSpace(keyID[0]) || isSpace(keyID[len(keyID)-1])) {
		return fmt.Errorf("%w: key id %q has control characters, invalid UTF-8 or surrounding spaces", ErrInvalidRequest, keyID)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet // as net/http's client sends it
	}
	sig, err := Sign(key, Request{
		Method:     method,
		Target:     req.URL.RequestURI(),
		BodySHA256: BodyDigest(body),
		Agent:      agent,
		Timestamp:  h.Timestamp,
	})
	if err != nil {
		return err
	}
	h.Signature = sig
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	for _, name := range [...]string{
		HeaderAgent, HeaderTimestamp, HeaderSignature, HeaderKeyID, HeaderOrganization,
		AliasHeaderAgent, AliasHeaderTimestamp, AliasHeaderSignature, AliasHeaderOrganization,
	} {
		req.Header.Del(name)
	}
	h.Apply(req.Header.Set)
	return nil
}

package sign

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// SchemeTag is the first line of the canonical string. A future incompatible
// scheme gets a new tag, so a signature can never be valid under two schemes.
const SchemeTag = "KNAIGHT-HMAC-SHA256-V1"

// SignaturePrefix starts every signature header value; 64 hexadecimal digits
// of the HMAC-SHA256 follow it.
const SignaturePrefix = "hmac-sha256="

// The header names. Receivers match them case-insensitively, as HTTP does.
const (
	// HeaderAgent carries the agent identity, its ANS name such as
	// ans://v1.0.0.deploy-bot.agents.example.com. Signed.
	HeaderAgent = "X-Knaight-Agent"
	// HeaderTimestamp carries the signing time in RFC 3339. Signed.
	HeaderTimestamp = "X-Knaight-Timestamp"
	// HeaderSignature carries "hmac-sha256=<64 lowercase hex>".
	HeaderSignature = "X-Knaight-Signature"
	// HeaderKeyID optionally carries the id (kid) of the HMAC key used, such
	// as hk_abcd..., so the verifier can pick it. Not signed: a wrong key id
	// only makes the verifier try a key that does not match.
	HeaderKeyID = "X-Knaight-Key-Id"
	// HeaderOrganization optionally carries the organization. Not signed:
	// informational only, never use it for an authorization decision.
	HeaderOrganization = "X-Knaight-Organization"

	// AliasHeaderAgent is the first milestone's name for HeaderAgent.
	AliasHeaderAgent = "X-SCK-ANS-ID"
	// AliasHeaderTimestamp is the first milestone's name for HeaderTimestamp.
	AliasHeaderTimestamp = "X-SCK-Timestamp"
	// AliasHeaderSignature is the first milestone's name for HeaderSignature.
	AliasHeaderSignature = "X-SCK-Signature"
	// AliasHeaderOrganization is the first milestone's name for
	// HeaderOrganization.
	AliasHeaderOrganization = "X-SCK-Organization"
)

// DefaultSkew is the skew window of a zero Verifier: a timestamp up to this
// far in the past or in the future is accepted.
const DefaultSkew = 5 * time.Minute

// MinKeySize is the shortest HMAC key, in bytes, that Sign and Verify accept.
// The manager issues 32-byte keys.
const MinKeySize = 16

// Request holds the signed facts of one HTTP request.
type Request struct {
	// Method is the HTTP method; the canonical string has it in upper case.
	Method string
	// Target is the request target in origin form, path and query exactly
	// as sent on the wire ("/mcp", "/tools?name=a%20b"). A trailing "?" with
	// an empty query is dropped; nothing else is normalized.
	Target string
	// BodySHA256 is BodyDigest of the body. The zero value is rejected so
	// that a forgotten digest fails instead of leaving the body unsigned; use
	// BodyDigest(nil) for a request without a body.
	BodySHA256 [32]byte
	// Agent is the agent identity exactly as in the agent header.
	Agent string
	// Timestamp is the timestamp exactly as in the timestamp header.
	Timestamp string
}

// BodyDigest returns the SHA-256 of body, for Request.BodySHA256. Hash the
// body once and keep the digest; Verify and Sign never touch the body.
func BodyDigest(body []byte) [32]byte {
	return sha256.Sum256(body)
}

// Canonical returns the canonical string of r, the bytes that are MACed. It
// is for debugging and for comparing other implementations; the signing and
// verification paths use AppendCanonical. The error wraps ErrInvalidRequest
// or ErrMalformedTimestamp.
func Canonical(r Request) (string, error) {
	b, err := AppendCanonical(nil, r)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// AppendCanonical appends the canonical string of r to dst and returns the
// extended slice. It does not allocate when dst has room. On error dst is
// returned unchanged; the error wraps ErrInvalidRequest or
// ErrMalformedTimestamp.
func AppendCanonical(dst []byte, r Request) ([]byte, error) {
	if _, err := checkRequest(r); err != nil {
		return dst, err
	}
	return appendCanonical(dst, r), nil
}

// checkRequest validates every line of the canonical string and returns the
// parsed timestamp.
func checkRequest(r Request) (time.Time, error) {
	if r.Method == "" {
		return time.Time{}, fmt.Errorf("%w: empty method", ErrInvalidRequest)
	}
	for i := 0; i < len(r.Method); i++ {
		if !isTokenChar(r.Method[i]) {
			return time.Time{}, fmt.Errorf("%w: method %q is not an HTTP token", ErrInvalidRequest, r.Method)
		}
	}
	if r.Target == "" || r.Target[0] != '/' {
		return time.Time{}, fmt.Errorf("%w: request target %q does not start with \"/\"", ErrInvalidRequest, r.Target)
	}
	if !cleanLine(r.Target) {
		return time.Time{}, fmt.Errorf("%w: request target %q has control characters or invalid UTF-8", ErrInvalidRequest, r.Target)
	}
	if r.BodySHA256 == ([32]byte{}) {
		return time.Time{}, fmt.Errorf("%w: BodySHA256 is not set (BodyDigest(nil) for no body)", ErrInvalidRequest)
	}
	if r.Agent == "" {
		return time.Time{}, fmt.Errorf("%w: empty agent", ErrInvalidRequest)
	}
	if !cleanLine(r.Agent) || isSpace(r.Agent[0]) || isSpace(r.Agent[len(r.Agent)-1]) {
		return time.Time{}, fmt.Errorf("%w: agent %q has control characters, invalid UTF-8 or surrounding spaces", ErrInvalidRequest, r.Agent)
	}
	return ParseTimestamp(r.Timestamp)
}

// appendCanonical appends the canonical string of a checked request.
func appendCanonical(dst []byte, r Request) []byte {
	dst = append(dst, SchemeTag...)
	dst = append(dst, '\n')
	dst = append(dst, r.Timestamp...)
	dst = append(dst, '\n')
	for i := 0; i < len(r.Method); i++ {
		c := r.Method[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	dst = append(dst, '\n')
	t := r.Target
	if len(t) > 0 && t[len(t)-1] == '?' && strings.IndexByte(t, '?') == len(t)-1 {
		t = t[:len(t)-1]
	}
	dst = append(dst, t...)
	dst = append(dst, '\n')
	dst = hex.AppendEncode(dst, r.BodySHA256[:])
	dst = append(dst, '\n')
	dst = append(dst, r.Agent...)
	return dst
}

// Sign returns the signature header value "hmac-sha256=<64 lowercase hex>"
// of r under key. The error wraps ErrWeakKey, ErrInvalidRequest or
// ErrMalformedTimestamp; Sign never produces a signature Verify would reject
// for its form.
func Sign(key []byte, r Request) (string, error) {
	if len(key) < MinKeySize {
		return "", ErrWeakKey
	}
	if _, err := checkRequest(r); err != nil {
		return "", err
	}
	var buf canonBuf
	msg := buf.build(r)
	return formatSignature(macPrefixed(key, msg)), nil
}

// formatSignature returns the signature header value of an HMAC.
func formatSignature(sum [sha256.Size]byte) string {
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum[:])
	var out strings.Builder
	out.Grow(len(SignaturePrefix) + len(hx))
	out.WriteString(SignaturePrefix)
	out.Write(hx[:])
	return out.String()
}

// blockSize is the SHA-256 block size, the HMAC key block.
const blockSize = 64

// canonBuf holds blockSize bytes for the HMAC inner pad followed by the
// canonical string, so the inner hash is one sha256.Sum256 call without a
// copy. Typical canonical strings fit in the array; longer ones spill to the
// heap.
type canonBuf struct {
	arr [blockSize + 512]byte
}

// build returns the inner pad space followed by the canonical string of a
// checked request.
func (b *canonBuf) build(r Request) []byte {
	return appendCanonical(b.arr[:blockSize], r)
}

// macPrefixed computes HMAC-SHA256 (RFC 2104) of msg[blockSize:] under key,
// overwriting msg[:blockSize] with the inner pad. It is crypto/hmac with
// crypto/sha256 without the allocations of hmac.New; the tests check it
// against crypto/hmac.
func macPrefixed(key, msg []byte) [32]byte {
	var k [blockSize]byte
	if len(key) > blockSize {
		s := sha256.Sum256(key)
		copy(k[:], s[:])
	} else {
		copy(k[:], key)
	}
	for i := range blockSize {
		msg[i] = k[i] ^ 0x36
	}
	inner := sha256.Sum256(msg)
	var outer [blockSize + sha256.Size]byte
	for i := range blockSize {
		outer[i] = k[i] ^ 0x5c
	}
	copy(outer[blockSize:], inner[:])
	return sha256.Sum256(outer[:])
}

// cleanLine reports whether s is valid UTF-8 without control characters
// (below 0x20, or 0x7f).
func cleanLine(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// isTokenChar reports whether c is a tchar of RFC 9110.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

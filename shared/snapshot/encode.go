package snapshot

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/knaight/knaight/shared/policy"
)

// This file writes a Snapshot's JSON without reflection. The bytes are the
// contract: the manager signs them and deployed filters verify and decode
// them, so AppendJSON must write exactly what json.Marshal writes for a
// *Snapshot, byte for byte. encode_test.go proves it against json.Marshal
// (a table, every field set by reflection, and a fuzz test); a change to a
// type of this package or of shared/policy that a test reports as a
// difference must be made here too.
//
// It exists for speed: for an organization of 10,000 agents and 100,000
// revocations, json.Marshal spent most of a snapshot build in reflection,
// in one time.Time MarshalJSON call (and allocation) per revocation, and in
// regrowing its buffer.

// Encode returns the snapshot's JSON, the bytes the manager signs: what
// json.Marshal(s) returns.
func Encode(s *Snapshot) ([]byte, error) {
	return s.AppendJSON(make([]byte, 0, s.sizeHint()))
}

// EncodeSigned returns the snapshot's JSON and the manager's signature of
// it, the Ed25519 signature of SignedMessage(payload). It is Encode then
// ed25519.Sign(signer, SignedMessage(payload)), but writes the payload
// behind the signature context in one buffer, so that a large snapshot is
// not copied (and its copy allocated) only to be signed.
func EncodeSigned(s *Snapshot, signer ed25519.PrivateKey) (payload, signature []byte, err error) {
	msg := make([]byte, 0, len(signatureContext)+s.sizeHint())
	msg = append(msg, signatureContext...)
	msg, err = s.AppendJSON(msg)
	if err != nil {
		return nil, nil, err
	}
	return msg[len(signatureContext):], ed25519.Sign(signer, msg), nil
}

// AppendJSON appends the snapshot's JSON, exactly the bytes json.Marshal(s)
// writes, to dst and returns the extended buffer. Size dst's capacity with
// the expected length to avoid regrowing it; Encode does.
//
// It fails where json.Marshal fails: on a trust score that is NaN or
// infinite, on a time that RFC 3339 cannot express (a year outside
// 0..9999, a zone offset of 24 hours or more), or on a policy that does not
// encode. On failure it returns dst unchanged in length.
func (s *Snapshot) AppendJSON(dst []byte) ([]byte, error) {
	e := encoder{buf: dst}
	e.snapshot(s)
	if e.err != nil {
		return dst, e.err
	}
	return e.buf, nil
}

// encoder appends JSON to buf. After the first error it keeps going (the
// output is thrown away) but keeps that error, so that the field writers
// need not check after every value.
type encoder struct {
	buf []byte
	err error
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// raw appends s as it is: punctuation and the quoted field names, which
// need no escaping.
func (e *encoder) raw(s string) { e.buf = append(e.buf, s...) }

// The writers below follow the field order of the types of snapshot.go,
// which is the order encoding/json writes.

func (e *encoder) snapshot(s *Snapshot) {
	e.raw(`{"schema":`)
	e.string(s.Schema)
	e.raw(`,"version":`)
	e.buf = strconv.AppendUint(e.buf, s.Version, 10)
	e.raw(`,"organization":`)
	e.string(s.Organization)
	e.raw(`,"organizationId":`)
	e.string(s.OrganizationID)
	e.raw(`,"environment":`)
	e.string(string(s.Environment))
	e.raw(`,"issuedAt":`)
	e.time(s.IssuedAt)
	e.raw(`,"issuer":`)
	e.string(s.Issuer)
	e.raw(`,"tokenKeys":`)
	list(e, s.TokenKeys, (*encoder).tokenKey)
	e.raw(`,"revocations":`)
	list(e, s.Revocations, (*encoder).revocation)
	e.raw(`,"agents":`)
	list(e, s.Agents, (*encoder).agent)
	e.raw(`,"bundle":`)
	e.bundle(&s.Bundle)
	e.raw(`,"upstream":{"kid":`)
	e.string(s.Upstream.ID)
	e.raw(`,"secret":`)
	e.bytes(s.Upstream.Secret)
	e.raw(`},"protectedResource":`)
	e.protectedResource(&s.ProtectedResource)
	e.raw(`,"settings":{"clockSkewSeconds":`)
	e.buf = strconv.AppendInt(e.buf, int64(s.Settings.ClockSkewSeconds), 10)
	e.raw(`,"maxStalenessSeconds":`)
	e.buf = strconv.AppendInt(e.buf, int64(s.Settings.MaxStalenessSeconds), 10)
	e.raw(`}}`)
}

// list writes a slice as encoding/json does: null when nil, else an array
// of elem's writing of each element.
func list[T any](e *encoder, xs []T, elem func(*encoder, *T)) {
	if xs == nil {
		e.raw("null")
		return
	}
	e.buf = append(e.buf, '[')
	for i := range xs {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		elem(e, &xs[i])
	}
	e.buf = append(e.buf, ']')
}

func (e *encoder) tokenKey(k *TokenKey) {
	e.raw(`{"kid":`)
	e.string(k.ID)
	e.raw(`,"alg":`)
	e.string(k.Algorithm)
	e.raw(`,"key":`)
	e.bytes(k.Key)
	e.buf = append(e.buf, '}')
}

func (e *encoder) revocation(r *Revocation) {
	e.raw(`{"jti":`)
	e.string(r.TokenID)
	e.raw(`,"exp":`)
	e.time(r.ExpiresAt)
	e.buf = append(e.buf, '}')
}

func (e *encoder) agent(a *Agent) {
	e.raw(`{"ansName":`)
	e.string(a.ANSName)
	e.raw(`,"id":`)
	e.string(a.ID)
	e.raw(`,"status":`)
	e.string(a.Status)
	e.raw(`,"roleTemplate":`)
	e.string(a.RoleTemplate)
	if a.TrustLevel != policy.LevelNone { // omitzero
		e.raw(`,"trustLevel":`)
		e.trustLevel(a.TrustLevel)
	}
	e.raw(`,"trustScore":`)
	e.float(a.TrustScore)
	if len(a.Keys) > 0 { // omitempty
		e.raw(`,"keys":`)
		list(e, a.Keys, (*encoder).hmacKey)
	}
	e.buf = append(e.buf, '}')
}

func (e *encoder) hmacKey(k *HMACKey) {
	e.raw(`{"kid":`)
	e.string(k.ID)
	e.raw(`,"secret":`)
	e.bytes(k.Secret)
	if k.ExpiresAt != nil { // omitempty
		e.raw(`,"expiresAt":`)
		e.time(*k.ExpiresAt)
	}
	e.buf = append(e.buf, '}')
}

// bundle writes the policies with encoding/json: policy.Policy has its own
// MarshalJSON and nested types, and a bundle is small next to the agents
// and revocations.
func (e *encoder) bundle(b *Bundle) {
	e.raw(`{"id":`)
	e.string(b.ID)
	e.raw(`,"revision":`)
	e.string(b.Revision)
	e.raw(`,"policies":`)
	policies, err := json.Marshal(b.Policies)
	if err != nil {
		e.fail(err)
	}
	e.buf = append(e.buf, policies...)
	e.buf = append(e.buf, '}')
}

func (e *encoder) protectedResource(p *ProtectedResource) {
	e.raw(`{"authorization_servers":`)
	list(e, p.AuthorizationServers, (*encoder).stringElem)
	if len(p.ScopesSupported) > 0 { // omitempty
		e.raw(`,"scopes_supported":`)
		list(e, p.ScopesSupported, (*encoder).stringElem)
	}
	if p.ResourceDocumentation != "" { // omitempty
		e.raw(`,"resource_documentation":`)
		e.string(p.ResourceDocumentation)
	}
	e.buf = append(e.buf, '}')
}

func (e *encoder) stringElem(s *string) { e.string(*s) }

// trustLevel writes what policy.TrustLevel's MarshalJSON writes: its
// String form ("L3", or "none" outside L1..L5) as a JSON string, without
// MarshalJSON's allocations.
func (e *encoder) trustLevel(l policy.TrustLevel) {
	e.string(l.String())
}

// bytes writes a []byte as encoding/json does: null when nil, else
// standard, padded base64 in a string.
func (e *encoder) bytes(b []byte) {
	if b == nil {
		e.raw("null")
		return
	}
	e.buf = append(e.buf, '"')
	e.buf = base64.StdEncoding.AppendEncode(e.buf, b)
	e.buf = append(e.buf, '"')
}

// time writes what time.Time's MarshalJSON writes: RFC 3339 with as many
// fractional digits as needed, and fails where it fails.
func (e *encoder) time(t time.Time) {
	e.buf = append(e.buf, '"')
	start := len(e.buf)
	e.buf = t.AppendFormat(e.buf, time.RFC3339Nano)
	if err := strictRFC3339(e.buf[start:]); err != nil {
		e.fail(fmt.Errorf("json: error calling MarshalJSON for type time.Time: Time.MarshalJSON: %w", err))
	}
	e.buf = append(e.buf, '"')
}

// strictRFC3339 refuses what time.Time's MarshalJSON refuses of the
// RFC3339Nano form b: a year that is not 4 digits wide, and a zone offset
// of 24 hours or more (the checks of time.Time.appendStrictRFC3339).
func strictRFC3339(b []byte) error {
	num2 := func(b []byte) byte { return 10*(b[0]-'0') + (b[1] - '0') }
	switch {
	case b[len("9999")] != '-':
		return errors.New("year outside of range [0,9999]")
	case b[len(b)-1] != 'Z':
		c := b[len(b)-len("Z07:00")]
		if ('0' <= c && c <= '9') || num2(b[len(b)-len("07:00"):]) >= 24 {
			return errors.New("timezone hour outside of range [0,23]")
		}
	}
	return nil
}

// float writes a float64 as encoding/json does: like strconv's 'f' format
// with the shortest exact digits, switching to 'e' below 1e-6 and from
// 1e21 on, without a leading zero in a negative exponent. NaN and the
// infinities have no JSON form.
func (e *encoder) float(f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		e.fail(fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64)))
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9.
		n := len(e.buf)
		if n >= 4 && e.buf[n-4] == 'e' && e.buf[n-3] == '-' && e.buf[n-2] == '0' {
			e.buf[n-2] = e.buf[n-1]
			e.buf = e.buf[:n-1]
		}
	}
}

const hexDigits = "0123456789abcdef"

// htmlSafe marks the ASCII bytes encoding/json writes as they are, with
// its HTML escaping on (json.Marshal's default): everything from space up,
// except the quote, the backslash, <, > and &.
var htmlSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// string writes s quoted as encoding/json does with HTML escaping: \" \\
// \b \f \n \r \t, \u00XX for the other control bytes and for < > &,
// \u2028 and \u2029, and \ufffd for each byte that is not valid UTF-8.
// Runs of bytes that need nothing are copied at once.
func (e *encoder) string(s string) {
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			e.buf = append(e.buf, s[start:i]...)
			switch c {
			case '\\', '"':
				e.buf = append(e.buf, '\\', c)
			case '\b':
				e.buf = append(e.buf, '\\', 'b')
			case '\f':
				e.buf = append(e.buf, '\\', 'f')
			case '\n':
				e.buf = append(e.buf, '\\', 'n')
			case '\r':
				e.buf = append(e.buf, '\\', 'r')
			case '\t':
				e.buf = append(e.buf, '\\', 't')
			default:
				e.buf = append(e.buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			e.buf = append(e.buf, s[start:i]...)
			e.raw(`\ufffd`)
		case r == '\u2028' || r == '\u2029':
			e.buf = append(e.buf, s[start:i]...)
			e.buf = append(e.buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
}

// sizeHint estimates the length of s's JSON, so that Encode allocates its
// buffer once instead of regrowing (and copying) a payload of megabytes.
// It adds up the strings and the base64 of the keys as they are (exact
// unless a string needs escaping), each time as a UTC time with its
// fractional digits, the field names and punctuation, a typical width for
// each trust score and a generous one for each policy, then 1/64 more for
// what it cannot know. An estimate that comes out short costs one copy.
func (s *Snapshot) sizeHint() int {
	n := 512 + len(s.Schema) + len(s.Organization) + len(s.OrganizationID) + len(s.Environment) + timeSize(s.IssuedAt) + len(s.Issuer) +
		len(s.Bundle.ID) + len(s.Bundle.Revision) + 512*len(s.Bundle.Policies) +
		len(s.Upstream.ID) + base64.StdEncoding.EncodedLen(len(s.Upstream.Secret)) +
		len(s.ProtectedResource.ResourceDocumentation)
	for _, v := range s.ProtectedResource.AuthorizationServers {
		n += len(`"",`) + len(v)
	}
	for _, v := range s.ProtectedResource.ScopesSupported {
		n += len(`"",`) + len(v)
	}
	for i := range s.TokenKeys {
		k := &s.TokenKeys[i]
		n += len(`{"kid":"","alg":"","key":""},`) + len(k.ID) + len(k.Algorithm) + base64.StdEncoding.EncodedLen(len(k.Key))
	}
	for i := range s.Revocations {
		r := &s.Revocations[i]
		n += len(`{"jti":"","exp":},`) + len(r.TokenID) + timeSize(r.ExpiresAt)
	}
	for i := range s.Agents {
		a := &s.Agents[i]
		n += len(`{"ansName":"","id":"","status":"","roleTemplate":"","trustLevel":"none","trustScore":12.25,"keys":[]},`) +
			len(a.ANSName) + len(a.ID) + len(a.Status) + len(a.RoleTemplate)
		for j := range a.Keys {
			k := &a.Keys[j]
			n += len(`{"kid":"","secret":""},`) + len(k.ID) + base64.StdEncoding.EncodedLen(len(k.Secret))
			if k.ExpiresAt != nil {
				n += len(`,"expiresAt":`) + timeSize(*k.ExpiresAt)
			}
		}
	}
	return n + n/64
}

// timeSize is the length of t's JSON if t is in UTC, quotes included:
// "2006-01-02T15:04:05Z" and the fractional digits RFC3339Nano keeps.
// Any other zone is counted as a numeric offset.
func timeSize(t time.Time) int {
	n := len(`"2006-01-02T15:04:05Z"`)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ; ns%10 == 0; ns /= 10 {
			digits--
		}
		n += 1 + digits
	}
	if t.Location() != time.UTC {
		n += len("+00:00") - len("Z")
	}
	return n
}

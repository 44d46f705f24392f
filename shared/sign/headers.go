package sign

import (
	"encoding/hex"
	"fmt"
	"time"
)

// Headers are the signature headers of one request.
type Headers struct {
	// Agent is the agent identity (HeaderAgent or AliasHeaderAgent).
	Agent string
	// Timestamp is the timestamp exactly as sent (HeaderTimestamp or
	// AliasHeaderTimestamp); ParseHeaders checked that ParseTimestamp takes it.
	Timestamp string
	// Signature is the signature exactly as sent (HeaderSignature or
	// AliasHeaderSignature); ParseHeaders checked that ParseSignature takes it.
	Signature string
	// KeyID is the optional key id (HeaderKeyID), "" when absent.
	KeyID string
	// Organization is the optional, unsigned organization
	// (HeaderOrganization or AliasHeaderOrganization), "" when absent.
	Organization string
	// Alias is true when at least one of the headers came in the first
	// milestone's X-SCK-* form. Apply then writes the X-SCK-* form.
	Alias bool
}

// Lookup names in the spelling net/http's CanonicalMIMEHeaderKey produces,
// so that http.Header.Values finds them without allocating. Getters must
// match case-insensitively anyway.
const (
	lookupAliasAgent        = "X-Sck-Ans-Id"
	lookupAliasTimestamp    = "X-Sck-Timestamp"
	lookupAliasSignature    = "X-Sck-Signature"
	lookupAliasOrganization = "X-Sck-Organization"
)

// ParseHeaders reads the signature headers through get, which returns every
// value of the header with the given name, matched case-insensitively (pass
// an http.Header's Values method; with a proxy-wasm header map, return the
// value in a one-element slice or nil). The names get receives may be in any
// letter case.
//
// The agent, timestamp and signature are required, in either the
// X-Knaight-* or the X-SCK-* form; the key id and organization are optional.
// A header whose values differ (repeated, or in both forms) is ambiguous and
// rejected, as is an empty value, one with control characters or surrounding
// white space, a timestamp ParseTimestamp rejects and a signature
// ParseSignature rejects. The error wraps ErrMissingHeader,
// ErrMalformedHeader, ErrMalformedTimestamp or ErrMalformedSignature.
func ParseHeaders(get func(name string) []string) (Headers, error) {
	var h Headers
	var alias, ok bool
	var err error
	if h.Agent, alias, ok, err = lookup(get, HeaderAgent, lookupAliasAgent); err != nil {
		return Headers{}, err
	} else if !ok {
		return Headers{}, fmt.Errorf("%w: %s", ErrMissingHeader, HeaderAgent)
	}
	h.Alias = h.Alias || alias
	if h.Timestamp, alias, ok, err = lookup(get, HeaderTimestamp, lookupAliasTimestamp); err != nil {
		return Headers{}, err
	} else if !ok {
		return Headers{}, fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	}
	h.Alias = h.Alias || alias
	if _, err := ParseTimestamp(h.Timestamp); err != nil {
		return Headers{}, err
	}
	if h.Signature, alias, ok, err = lookup(get, HeaderSignature, lookupAliasSignature); err != nil {
		return Headers{}, err
	} else if !ok {
		return Headers{}, fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}
	h.Alias = h.Alias || alias
	if _, err := ParseSignature(h.Signature); err != nil {
		return Headers{}, err
	}
	if h.KeyID, _, _, err = lookup(get, HeaderKeyID, ""); err != nil {
		return Headers{}, err
	}
	if h.Organization, alias, _, err = lookup(get, HeaderOrganization, lookupAliasOrganization); err != nil {
		return Headers{}, err
	}
	h.Alias = h.Alias || alias
	return h, nil
}

// lookup returns the one value of a header given under name or under
// aliasName (if not ""), whether it came from the alias, and whether it was
// present at all.
func lookup(get func(string) []string, name, aliasName string) (v string, alias, ok bool, err error) {
	v, ok, err = single(get(name), name)
	if err != nil || aliasName == "" {
		return v, false, ok, err
	}
	av, aok, err := single(get(aliasName), aliasName)
	switch {
	case err != nil:
		return "", false, false, err
	case !aok:
		return v, false, ok, nil
	case ok && av != v:
		return "", false, false, fmt.Errorf("%w: %s and %s differ", ErrMalformedHeader, name, aliasName)
	}
	return av, true, true, nil
}

// single returns the value of a header that may be repeated only with the
// same value.
func single(vals []string, name string) (string, bool, error) {
	if len(vals) == 0 {
		return "", false, nil
	}
	v := vals[0]
	for _, o := range vals[1:] {
		if o != v {
			return "", false, fmt.Errorf("%w: %s repeated with different values", ErrMalformedHeader, name)
		}
	}
	if v == "" || !cleanLine(v) || isSpace(v[0]) || isSpace(v[len(v)-1]) {
		return "", false, fmt.Errorf("%w: %s is empty or has control characters, invalid UTF-8 or surrounding white space", ErrMalformedHeader, name)
	}
	return v, true, nil
}

// Apply writes the non-empty fields of h through set, in the X-SCK-* form
// when h.Alias is set (the key id has no alias) and the X-Knaight-* form
// otherwise. Pass an http.Header's Set method. Apply does not remove headers
// of the other form; SignHTTP does.
func (h Headers) Apply(set func(name, value string)) {
	agent, ts, sig, org := HeaderAgent, HeaderTimestamp, HeaderSignature, HeaderOrganization
	if h.Alias {
		agent, ts, sig, org = AliasHeaderAgent, AliasHeaderTimestamp, AliasHeaderSignature, AliasHeaderOrganization
	}
	for _, f := range [...]struct{ name, value string }{
		{agent, h.Agent}, {ts, h.Timestamp}, {sig, h.Signature}, {HeaderKeyID, h.KeyID}, {org, h.Organization},
	} {
		if f.value != "" {
			set(f.name, f.value)
		}
	}
}

// ParseSignature decodes a signature header value: SignaturePrefix (exactly,
// in lower case) followed by 64 hexadecimal digits, either case. The error
// wraps ErrMalformedSignature.
func ParseSignature(v string) ([32]byte, error) {
	var sum [32]byte
	if len(v) != len(SignaturePrefix)+hex.EncodedLen(len(sum)) || v[:len(SignaturePrefix)] != SignaturePrefix {
		return sum, fmt.Errorf("%w: want %s followed by %d hexadecimal digits", ErrMalformedSignature, SignaturePrefix, hex.EncodedLen(len(sum)))
	}
	h := v[len(SignaturePrefix):]
	for i := range sum {
		hi, ok1 := unhex(h[2*i])
		lo, ok2 := unhex(h[2*i+1])
		if !ok1 || !ok2 {
			return [32]byte{}, fmt.Errorf("%w: not hexadecimal", ErrMalformedSignature)
		}
		sum[i] = hi<<4 | lo
	}
	return sum, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// ParseTimestamp parses a timestamp header value and returns it in UTC. It
// accepts exactly YYYY-MM-DDTHH:MM:SS, then optionally "." and 1 to 9 digits
// of fractional seconds, then "Z" or a numeric offset +HH:MM or -HH:MM, with
// an upper-case "T" and "Z", valid calendar dates and times, and no leap
// second 60. The error wraps ErrMalformedTimestamp.
func ParseTimestamp(v string) (time.Time, error) {
	t, ok := parseRFC3339(v)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: %q is not YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)", ErrMalformedTimestamp, v)
	}
	return t, nil
}

func parseRFC3339(s string) (time.Time, bool) {
	const base = len("2006-01-02T15:04:05")
	if len(s) < base+1 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[base:]
	nsec := 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		frac := n - 1
		if frac < 1 || frac > 9 {
			return time.Time{}, false
		}
		nsec, _ = digits(rest[1:n])
		for range 9 - frac {
			nsec *= 10
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case rest == "Z":
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// digits parses a non-empty run of ASCII digits.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

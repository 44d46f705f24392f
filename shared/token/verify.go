package token

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knaight/knaight/shared/internal/jsonscan"
)

// Verify checks raw, a gateway token in JWS compact form, against keys and
// want, following the acceptance rules of the package documentation, and
// returns its claims. On error the claims are zero and the error wraps one
// of this package's sentinels (see Reason). Verify is safe for concurrent
// use when keys is.
func Verify(raw string, keys Keys, want Expect) (Claims, error) {
	if len(raw) > MaxSize {
		return Claims{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(raw), MaxSize)
	}
	h64, rest, ok1 := strings.Cut(raw, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return Claims{}, fmt.Errorf("%w: not three dot-separated segments", ErrMalformed)
	}
	header, err := decodeSegment("header", h64)
	if err != nil {
		return Claims{}, err
	}
	payload, err := decodeSegment("payload", p64)
	if err != nil {
		return Claims{}, err
	}
	sig, err := decodeSegment("signature", s64)
	if err != nil {
		return Claims{}, err
	}
	h, err := parseHeader(header)
	if err != nil {
		return Claims{}, err
	}
	key, err := h.key(keys)
	if err != nil {
		return Claims{}, err
	}
	if err := verifySignature(key, raw[:len(h64)+1+len(p64)], sig); err != nil {
		return Claims{}, err
	}
	c, err := parseClaims(payload)
	if err != nil {
		return Claims{}, err
	}
	if err := check(c, want); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// segmentEncoding is RFC 7515's base64url without padding. Strict refuses
// non-zero trailing bits; line breaks, which even a strict decoder skips,
// are refused in decodeSegment.
var segmentEncoding = base64.RawURLEncoding.Strict()

// decodeSegment decodes one segment, accepting only the one canonical
// encoding of its bytes.
func decodeSegment(what, s string) ([]byte, error) {
	if strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0 {
		return nil, fmt.Errorf("%w: line break in the %s", ErrMalformed, what)
	}
	b, err := segmentEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not unpadded base64url: %v", ErrMalformed, what, err)
	}
	return b, nil
}

// header is what Verify reads of the JOSE header.
type header struct {
	alg, typ, kid string
}

// headerNames are the header parameters Verify reads, or refuses.
var headerNames = []string{"alg", "typ", "kid", "crit"}

func parseHeader(data []byte) (header, error) {
	var h header
	err := decodeObject(data, func(s *jsonscan.Scanner, name []byte) error {
		k, text, err := s.Value()
		if err != nil {
			return err
		}
		// As the manager's golang-jwt does, a value of the wrong type is
		// an absent value, refused by the check that needs it.
		str := ""
		if k == jsonscan.String {
			str = string(text)
		}
		switch string(name) {
		case "alg":
			h.alg = str
		case "typ":
			h.typ = str
		case "kid":
			h.kid = str
		case "crit":
			return fmt.Errorf("crit header: no extension is understood")
		default:
			if n, ok := jsonscan.FoldMatch(name, headerNames); ok {
				return fmt.Errorf("header %.64q differs from %q only in case", name, n)
			}
		}
		return nil
	})
	if err != nil {
		return header{}, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	return h, nil
}

// key checks the header and returns the key it names. The order follows the
// manager's: the algorithm must be one of ours, then typ, kid, and that the
// algorithm is the key's.
func (h header) key(keys Keys) (Key, error) {
	if alg := Algorithm(h.alg); alg != EdDSA && alg != HS256 {
		return Key{}, fmt.Errorf("%w: alg %.32q", ErrUnsupportedAlgorithm, h.alg)
	}
	if !strings.EqualFold(h.typ, TokenType) && !strings.EqualFold(h.typ, "application/"+TokenType) {
		return Key{}, fmt.Errorf("%w: typ %.32q", ErrType, h.typ)
	}
	if h.kid == "" {
		return Key{}, fmt.Errorf("%w: no kid", ErrUnknownKey)
	}
	var k Key
	ok := false
	if keys != nil {
		k, ok = keys.Key(h.kid)
	}
	if !ok {
		return Key{}, fmt.Errorf("%w: kid %.64q", ErrUnknownKey, h.kid)
	}
	if k.ID != h.kid {
		return Key{}, fmt.Errorf("%w: looking up kid %.64q returned key %.64q", ErrUnknownKey, h.kid, k.ID)
	}
	// The key decides the algorithm, never the token: this is what defeats
	// alg none and HS256 signed with an Ed25519 public key as the secret.
	if Algorithm(h.alg) != k.Algorithm {
		return Key{}, fmt.Errorf("%w: alg %s does not match key %s (%s)", ErrUnsupportedAlgorithm, h.alg, k.ID, k.Algorithm)
	}
	return k, nil
}

// verifySignature checks sig over input with k.
func verifySignature(k Key, input string, sig []byte) error {
	switch k.Algorithm {
	case EdDSA:
		if len(k.Public) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: key %s has %d public key bytes, not %d", ErrUnknownKey, k.ID, len(k.Public), ed25519.PublicKeySize)
		}
		if !ed25519.Verify(k.Public, []byte(input), sig) {
			return fmt.Errorf("%w: Ed25519, key %s", ErrBadSignature, k.ID)
		}
	case HS256:
		if len(k.Secret) < MinSecretSize {
			return fmt.Errorf("%w: key %s has a %d-byte secret, less than %d", ErrUnknownKey, k.ID, len(k.Secret), MinSecretSize)
		}
		mac := hmac.New(sha256.New, k.Secret)
		mac.Write([]byte(input))
		if !hmac.Equal(mac.Sum(nil), sig) {
			return fmt.Errorf("%w: HMAC-SHA256, key %s", ErrBadSignature, k.ID)
		}
	default: // unreachable: header.key matched the algorithm
		return fmt.Errorf("%w: key %s has algorithm %.32q", ErrUnsupportedAlgorithm, k.ID, k.Algorithm)
	}
	return nil
}

// claimNames are the claims Verify reads.
var claimNames = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "org", "agent_id", "ans", "loa", "scope", "client_id", "artifact"}

func parseClaims(data []byte) (Claims, error) {
	var c Claims
	err := decodeObject(data, func(s *jsonscan.Scanner, name []byte) error {
		var err error
		switch string(name) {
		case "iss":
			c.Issuer, err = readString(s)
		case "sub":
			c.Subject, err = readString(s)
		case "aud":
			c.Audience, err = readAudience(s)
		case "exp":
			c.ExpiresAt, err = readDate(s)
		case "nbf":
			c.NotBefore, err = readDate(s)
		case "iat":
			c.IssuedAt, err = readDate(s)
		case "jti":
			c.ID, err = readString(s)
		case "org":
			c.Organization, err = readString(s)
		case "agent_id":
			c.AgentID, err = readString(s)
		case "ans":
			c.ANSName, err = readString(s)
		case "loa":
			c.LoA, err = readInt(s)
		case "scope":
			c.Scope, err = readString(s)
		case "client_id":
			c.ClientID, err = readString(s)
		case "artifact":
			c.Artifact, err = readArtifact(s)
		default:
			if n, ok := jsonscan.FoldMatch(name, claimNames); ok {
				return fmt.Errorf("claim %.64q differs from %q only in case", name, n)
			}
			_, err = s.Skip()
		}
		if err != nil {
			return fmt.Errorf("claim %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	return c, nil
}

// readString reads a string, or null ("").
func readString(s *jsonscan.Scanner) (string, error) {
	k, text, err := s.Value()
	switch {
	case err != nil:
		return "", err
	case k == jsonscan.String:
		return string(text), nil
	case k == jsonscan.Null:
		return "", nil
	}
	return "", fmt.Errorf("%s, not a string", k)
}

// readAudience reads "aud": a string, an array of strings, or null (RFC
// 7519 §4.1.3).
func readAudience(s *jsonscan.Scanner) ([]string, error) {
	if s.Peek() != jsonscan.Array {
		k, text, err := s.Value()
		switch {
		case err != nil:
			return nil, err
		case k == jsonscan.String:
			return []string{string(text)}, nil
		case k == jsonscan.Null:
			return nil, nil
		}
		return nil, fmt.Errorf("%s, not a string or an array of strings", k)
	}
	aud := []string{}
	err := s.Array(func() error {
		k, text, err := s.Value()
		if err == nil && k != jsonscan.String {
			err = fmt.Errorf("%s in the array, not a string", k)
		}
		aud = append(aud, string(text))
		return err
	})
	return aud, err
}

// maxDate bounds NumericDates to what a float64 holds exactly.
const maxDate = 1 << 53

// readDate reads a NumericDate (RFC 7519 §2): seconds since the epoch,
// whose fraction golang-jwt drops (rounding down). null is the zero time,
// which no number gives.
func readDate(s *jsonscan.Scanner) (time.Time, error) {
	k, text, err := s.Value()
	switch {
	case err != nil:
		return time.Time{}, err
	case k == jsonscan.Null:
		return time.Time{}, nil
	case k != jsonscan.Number:
		return time.Time{}, fmt.Errorf("%s, not a number", k)
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil || math.Abs(f) > maxDate {
		return time.Time{}, fmt.Errorf("%.32s is not a date", text)
	}
	t := time.Unix(int64(math.Floor(f)), 0).UTC()
	if t.IsZero() { // year 1: ours to mean absent, and never a real date
		return time.Time{}, fmt.Errorf("%.32s is not a date", text)
	}
	return t, nil
}

// readInt reads an integer, or null (0), as encoding/json reads an int.
func readInt(s *jsonscan.Scanner) (int, error) {
	k, text, err := s.Value()
	switch {
	case err != nil:
		return 0, err
	case k == jsonscan.Null:
		return 0, nil
	case k != jsonscan.Number:
		return 0, fmt.Errorf("%s, not a number", k)
	}
	n, err := strconv.ParseInt(string(text), 10, 0)
	if err != nil {
		return 0, fmt.Errorf("%.32s is not an integer", text)
	}
	return int(n), nil
}

// artifactNames are the members of "artifact".
var artifactNames = []string{"id", "type"}

// readArtifact reads "artifact": an object with string id and type, or
// null.
func readArtifact(s *jsonscan.Scanner) (*Artifact, error) {
	if s.Peek() != jsonscan.Object {
		k, _, err := s.Value()
		switch {
		case err != nil:
			return nil, err
		case k == jsonscan.Null:
			return nil, nil
		}
		return nil, fmt.Errorf("%s, not an object", k)
	}
	a := &Artifact{}
	err := s.Object(func(name []byte, _ int) error {
		var err error
		switch string(name) {
		case "id":
			a.ID, err = readString(s)
		case "type":
			a.Type, err = readString(s)
		default:
			if n, ok := jsonscan.FoldMatch(name, artifactNames); ok {
				return fmt.Errorf("%.64q differs from %q only in case", name, n)
			}
			_, err = s.Skip()
		}
		return err
	})
	return a, err
}

// isCanonicalUUID reports whether s has the form uuid.UUID.String gives,
// and so the form of the snapshot's revoked token ids: 8-4-4-4-12 lower-case
// hex digits.
func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// check applies the claim rules, in the manager's order: golang-jwt's
// (exp, nbf, iat, iss), then its own (jti, org, audience).
func check(c Claims, want Expect) error {
	now := want.Now
	if now.IsZero() {
		now = time.Now()
	}
	leeway := max(want.Leeway, 0)
	switch {
	case c.ExpiresAt.IsZero():
		return fmt.Errorf("%w: no exp", ErrExpired)
	case !now.Before(c.ExpiresAt.Add(leeway)):
		return fmt.Errorf("%w: at %s", ErrExpired, c.ExpiresAt.Format(time.RFC3339))
	case !c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-leeway)):
		return fmt.Errorf("%w: not before %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
	case !c.IssuedAt.IsZero() && now.Before(c.IssuedAt.Add(-leeway)):
		return fmt.Errorf("%w: issued at %s", ErrNotYetValid, c.IssuedAt.Format(time.RFC3339))
	case want.Issuer == "" || c.Issuer != want.Issuer:
		return fmt.Errorf("%w: %.128q", ErrIssuer, c.Issuer)
	case c.Subject == "" || c.ID == "" || c.Organization == "" || c.ANSName == "":
		return fmt.Errorf("%w: sub, jti, org and ans are required", ErrMissingClaim)
	case !isCanonicalUUID(c.ID):
		return fmt.Errorf("%w: jti %.64q is not a canonical UUID", ErrMissingClaim, c.ID)
	case c.Subject != c.ANSName:
		return fmt.Errorf("%w: sub is not ans", ErrMissingClaim)
	case want.Organization != "" && c.Organization != want.Organization:
		return fmt.Errorf("%w: org %.64q is not the expected organization", ErrMissingClaim, c.Organization)
	case want.Audience == "" || !slices.Contains(c.Audience, want.Audience):
		return fmt.Errorf("%w: %.128q", ErrAudience, c.Audience)
	}
	return nil
}

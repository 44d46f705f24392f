package ans

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName means a string is not a valid ANS name. ParseName and
// NewV2 wrap it with the part that is wrong (scheme, version, host, host
// label n, agent ID, ...); callers answer 422 or 400.
var ErrInvalidName = errors.New("ans: invalid name")

// MaxNameLength is the longest ANS name ParseName accepts, in bytes.
const MaxNameLength = 512

// Form says which grammar a Name follows. A name keeps its form: String
// writes it back in the form it was parsed from.
type Form string

const (
	// FormV2 is the ANS v2 form, ans://v<version>.<host>, for example
	// ans://v1.0.0.agent.example.com.
	FormV2 Form = "v2"
	// FormDraft00 is the older draft-00 form,
	// <protocol>://<agentID>.<capability>.<provider>.v<version>, for example
	// a2a://textProcessor.DocumentTranslation.AcmeCorp.v2.1.
	FormDraft00 Form = "draft-00"
)

// Name is a parsed ANS name. Build one with ParseName or NewV2; the fields of
// a parsed Name are canonical, so two Names are the same name exactly when
// they are equal (==).
//
// The v2 grammar, chosen so that the '.' between the version and the host is
// never ambiguous:
//
//	ans://v MAJOR.MINOR.PATCH [-PRERELEASE] . HOST
//
// MAJOR, MINOR and PATCH are decimal numbers without leading zeros (semver
// 2.0.0). PRERELEASE is one semver identifier, [0-9A-Za-z-]+, with no dots
// (so "v1.0.0-rc.1.example.com" is version 1.0.0-rc on host 1.example.com)
// and, if all digits, no leading zero. No +build metadata. HOST is an ASCII
// LDH host name: at least two labels of 1-63 letters, digits and hyphens,
// not starting or ending with a hyphen, 253 bytes at most, no trailing dot,
// and a top-level label that is not all digits; IDNs must be given in their
// xn-- form. Everything after "ans://" is a URI host, which is
// case-insensitive, so it is canonicalized to lower case, prerelease
// included.
//
// The draft-00 grammar:
//
//	PROTOCOL :// AGENTID . CAPABILITY . PROVIDER . v MAJOR.MINOR [.PATCH]
//
// PROTOCOL is a URI scheme such as a2a, mcp or acp: [a-z][a-z0-9-]*,
// canonicalized to lower case; "ans" is reserved for the v2 form. AGENTID,
// CAPABILITY and PROVIDER are [A-Za-z0-9_-]+ and keep their case. The version
// has two or three numeric components without leading zeros and keeps the
// number of components it was given.
//
// In both forms the scheme and the 'v' before the version may be given in
// either case; they are written back in lower case. Names longer than
// MaxNameLength bytes are rejected.
type Name struct {
	// Form is FormV2 or FormDraft00.
	Form Form
	// Version is the version without its 'v': "1.0.0", "1.0.0-rc1", or for
	// draft-00 "2.1" or "2.1.0".
	Version string
	// Host is the agent's DNS host name (FormV2 only).
	Host string
	// Protocol is the URI scheme, such as "a2a" (FormDraft00 only).
	Protocol string
	// AgentID is the agent's identifier within its provider (FormDraft00
	// only).
	AgentID string
	// Capability is the capability the agent offers (FormDraft00 only).
	Capability string
	// Provider is the organization that provides the agent (FormDraft00
	// only).
	Provider string
}

const schemeV2 = "ans"

// ParseName parses s as an ANS name in either form (see Name) and returns it
// canonicalized. Errors wrap ErrInvalidName.
func ParseName(s string) (Name, error) {
	if s == "" {
		return Name{}, invalid("empty name")
	}
	if len(s) > MaxNameLength {
		return Name{}, invalid("name is %d bytes, more than %d", len(s), MaxNameLength)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Name{}, invalid("missing scheme (want ans:// or a protocol such as a2a://)")
	}
	scheme = asciiLower(scheme)
	if scheme == schemeV2 {
		return parseV2(rest)
	}
	if err := checkProtocol(scheme); err != nil {
		return Name{}, err
	}
	return parseDraft00(scheme, rest)
}

// NewV2 builds the v2 name of the agent at host with the given version. The
// version may be given with or without its leading 'v' ("1.0.0" or
// "v1.0.0"). Both are checked and canonicalized as ParseName does; errors
// wrap ErrInvalidName.
func NewV2(version, host string) (Name, error) {
	if len(version) > 0 && (version[0] == 'v' || version[0] == 'V') {
		version = version[1:]
	}
	version, err := parseV2Version(asciiLower(version))
	if err != nil {
		return Name{}, err
	}
	host = asciiLower(host)
	if err := checkHost(host); err != nil {
		return Name{}, err
	}
	n := Name{Form: FormV2, Version: version, Host: host}
	if l := len(n.String()); l > MaxNameLength {
		return Name{}, invalid("name is %d bytes, more than %d", l, MaxNameLength)
	}
	return n, nil
}

// String returns n in its canonical text form, which ParseName reads back as
// n. It returns "" for a Name whose Form is neither FormV2 nor FormDraft00.
func (n Name) String() string {
	switch n.Form {
	case FormV2:
		return schemeV2 + "://v" + n.Version + "." + n.Host
	case FormDraft00:
		return n.Protocol + "://" + n.AgentID + "." + n.Capability + "." + n.Provider + ".v" + n.Version
	default:
		return ""
	}
}

// Validate reports whether n is a valid, canonical name, as ParseName would
// return it. Use it on Names that were not built by ParseName or NewV2, such
// as one assembled field by field. Errors wrap ErrInvalidName.
func (n Name) Validate() error {
	switch n.Form {
	case FormV2, FormDraft00:
	default:
		return invalid("unknown form %q", string(n.Form))
	}
	p, err := ParseName(n.String())
	if err != nil {
		return err
	}
	if p != n {
		return invalid("%q is not in canonical form (want %q)", n.String(), p.String())
	}
	return nil
}

// HostLabel turns a free-form agent name into a DNS label usable in a v2
// host: ASCII letters are lowercased, every run of other characters than
// [a-z0-9] becomes one '-', hyphens are trimmed from both ends, and the
// result is cut to 63 bytes. It returns "agent" when nothing is left.
//
//	HostLabel("Deploy Bot #2") == "deploy-bot-2"
func HostLabel(s string) string {
	b := make([]byte, 0, maxLabel+1)
	hyphen := false
	for i := 0; i < len(s) && len(b) <= maxLabel; i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') {
			if hyphen && len(b) > 0 {
				b = append(b, '-')
			}
			hyphen = false
			b = append(b, c)
		} else {
			hyphen = true
		}
	}
	if len(b) > maxLabel {
		b = b[:maxLabel]
	}
	label := strings.TrimRight(string(b), "-")
	if label == "" {
		return "agent"
	}
	return label
}

const (
	maxLabel = 63
	maxHost  = 253
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidName}, args...)...)
}

// parseV2 parses what follows "ans://".
func parseV2(rest string) (Name, error) {
	rest = asciiLower(rest)
	if rest == "" || rest[0] != 'v' {
		return Name{}, invalid("version: must start with 'v' right after ans://")
	}
	// v MAJOR . MINOR . PATCH[-PRE] . HOST: the version has exactly three
	// dot-separated parts and no dots in the prerelease, so the fourth part
	// on is the host.
	parts := strings.SplitN(rest[1:], ".", 4)
	if len(parts) < 4 {
		return Name{}, invalid("want ans://vMAJOR.MINOR.PATCH.host")
	}
	version, err := parseV2Version(parts[0] + "." + parts[1] + "." + parts[2])
	if err != nil {
		return Name{}, err
	}
	host := parts[3]
	if err := checkHost(host); err != nil {
		return Name{}, err
	}
	return Name{Form: FormV2, Version: version, Host: host}, nil
}

// parseV2Version checks a lowercased MAJOR.MINOR.PATCH[-PRERELEASE] and
// returns it.
func parseV2Version(v string) (string, error) {
	if strings.Contains(v, "+") {
		return "", invalid("version %q: +build metadata is not allowed", v)
	}
	core, pre, hasPre := strings.Cut(v, "-")
	nums := strings.Split(core, ".")
	if len(nums) != 3 {
		return "", invalid("version %q: want MAJOR.MINOR.PATCH", v)
	}
	for i, num := range nums {
		if err := checkNumber(num, [...]string{"major", "minor", "patch"}[i]); err != nil {
			return "", err
		}
	}
	if hasPre {
		if pre == "" {
			return "", invalid("version %q: empty prerelease after '-'", v)
		}
		allDigits := true
		for i := 0; i < len(pre); i++ {
			c := pre[i]
			switch {
			case '0' <= c && c <= '9':
			case ('a' <= c && c <= 'z') || c == '-':
				allDigits = false
			case c == '.':
				return "", invalid("version %q: prerelease must not contain '.'", v)
			default:
				return "", invalid("version %q: prerelease may hold only letters, digits and '-'", v)
			}
		}
		if allDigits && len(pre) > 1 && pre[0] == '0' {
			return "", invalid("version %q: numeric prerelease has a leading zero", v)
		}
	}
	return v, nil
}

// checkNumber checks one numeric version component: decimal digits without
// a leading zero.
func checkNumber(s, what string) error {
	if s == "" {
		return invalid("version: %s component is empty", what)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return invalid("version: %s component %q is not a number", what, s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return invalid("version: %s component %q has a leading zero", what, s)
	}
	return nil
}

// CheckHost checks a DNS host name as ANS v2 names use it (see Name): lower
// case LDH labels, at least two, no trailing dot, a top-level label that is
// not all digits. The error wraps ErrInvalidName and says what is wrong.
func CheckHost(h string) error {
	if h != asciiLower(h) {
		return invalid("host %q: must be lower case", h)
	}
	return checkHost(h)
}

// checkHost checks a lowercased host name.
func checkHost(h string) error {
	if h == "" {
		return invalid("host: empty")
	}
	if len(h) > maxHost {
		return invalid("host: %d bytes, more than %d", len(h), maxHost)
	}
	if strings.HasSuffix(h, ".") {
		return invalid("host %q: trailing dot not allowed", h)
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return invalid("host %q: want at least two labels (name.domain)", h)
	}
	for i, l := range labels {
		if problem := checkLabel(l); problem != "" {
			return invalid("host label %d %q: %s", i+1, l, problem)
		}
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" {
		return invalid("host %q: top-level label must not be all digits", h)
	}
	return nil
}

// checkLabel checks one lowercased LDH label and says what is wrong with
// it, or returns "".
func checkLabel(l string) string {
	if l == "" {
		return "empty"
	}
	if len(l) > maxLabel {
		return fmt.Sprintf("%d bytes, more than %d", len(l), maxLabel)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-':
		case c == '_':
			return "'_' not allowed"
		case c >= 0x80:
			return "non-ASCII; give an IDN in its xn-- form"
		default:
			return fmt.Sprintf("character %q not allowed", c)
		}
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return "must not start or end with '-'"
	}
	return ""
}

// checkProtocol checks a lowercased draft-00 scheme.
func checkProtocol(p string) error {
	if p == "" {
		return invalid("scheme: empty")
	}
	if p[0] < 'a' || p[0] > 'z' {
		return invalid("scheme %q: must start with a letter", p)
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		if !(('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-') {
			return invalid("scheme %q: may hold only letters, digits and '-'", p)
		}
	}
	return nil
}

// parseDraft00 parses what follows "<protocol>://".
func parseDraft00(protocol, rest string) (Name, error) {
	parts := strings.Split(rest, ".")
	if len(parts) < 5 || len(parts) > 6 {
		return Name{}, invalid("want %s://AgentID.capability.provider.vMAJOR.MINOR[.PATCH]", protocol)
	}
	for i, what := range [...]string{"agent ID", "capability", "provider"} {
		if err := checkDraftPart(parts[i], what); err != nil {
			return Name{}, err
		}
	}
	major := parts[3]
	if major == "" || (major[0] != 'v' && major[0] != 'V') {
		return Name{}, invalid("version %q: must start with 'v'", major)
	}
	nums := append([]string{major[1:]}, parts[4:]...)
	for i, num := range nums {
		if err := checkNumber(num, [...]string{"major", "minor", "patch"}[i]); err != nil {
			return Name{}, err
		}
	}
	return Name{
		Form:       FormDraft00,
		Version:    strings.Join(nums, "."),
		Protocol:   protocol,
		AgentID:    parts[0],
		Capability: parts[1],
		Provider:   parts[2],
	}, nil
}

func checkDraftPart(s, what string) error {
	if s == "" {
		return invalid("%s: empty", what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '_') {
			return invalid("%s %q: may hold only letters, digits, '_' and '-'", what, s)
		}
	}
	return nil
}

// asciiLower lowercases ASCII letters only, leaving other bytes alone (so
// that non-ASCII input stays non-ASCII and is rejected, never folded).
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidEndpoint is returned (wrapped, with the reason) by ParseEndpoint.
// The caller must reject the pattern rather than drop it: silently dropping
// one pattern changes what a policy allows.
var ErrInvalidEndpoint = errors.New("invalid endpoint pattern")

// Limits on endpoint patterns. They bound the cost of matching on the request
// path, where the filter runs per request inside Envoy.
const (
	MaxEndpointLen     = 600 // whole pattern, in bytes
	MaxEndpointNameLen = 512 // name part, in bytes
)

// The MCP methods whose requests carry a name (tool name, resource URI,
// prompt name) that a pattern may restrict.
const (
	MethodToolsCall     = "tools/call"
	MethodResourcesRead = "resources/read"
	MethodPromptsGet    = "prompts/get"
)

// Endpoint is a parsed allowed-endpoint pattern: an MCP method glob and, for
// tools/call, resources/read and prompts/get only, an optional name glob.
//
// In both parts '*' matches any run of bytes, including none and including
// '/' and ':'; every other character, '?' and '[' included, is literal. A
// pattern without a name allows every name, so "tools/call" allows all tools
// and "*" allows every request.
type Endpoint struct {
	// Method is the method glob, e.g. "tools/call" or "notifications/*".
	Method string
	// Name is the name glob; meaningful only when HasName is set.
	Name string
	// HasName distinguishes "tools/call" (any tool) from a name restriction.
	// It is a separate flag because an empty name is never a valid pattern.
	HasName bool
}

// ParseEndpoint parses "<method>" or "<method>:<name>", splitting at the first
// ':' so that resource URIs keep theirs ("resources/read:file:///docs/*").
//
// The method part must be non-empty and use only letters, digits and
// "/_-.*". A name part is accepted only after exactly "tools/call",
// "resources/read" or "prompts/get" (not after a wildcard such as "tools/*",
// which already allows every name); it must be non-empty, valid UTF-8 without
// control characters, and at most MaxEndpointNameLen bytes. The whole pattern
// is at most MaxEndpointLen bytes. Nothing is trimmed or case-folded:
// e.String() returns s exactly.
func ParseEndpoint(s string) (Endpoint, error) {
	e, reason := parseEndpoint(s)
	if reason == "" {
		return e, nil
	}
	if len(s) > MaxEndpointLen {
		return Endpoint{}, fmt.Errorf("%w: %s", ErrInvalidEndpoint, reason)
	}
	return Endpoint{}, fmt.Errorf("%w %q: %s", ErrInvalidEndpoint, s, reason)
}

// parseEndpoint returns the reason s is invalid, or "", so that Validate can
// report the reason without the pattern it already lists as the value.
func parseEndpoint(s string) (Endpoint, string) {
	if s == "" {
		return Endpoint{}, "must not be empty"
	}
	if len(s) > MaxEndpointLen {
		return Endpoint{}, fmt.Sprintf("longer than %d bytes", MaxEndpointLen)
	}
	method, name, hasName := strings.Cut(s, ":")
	if method == "" {
		return Endpoint{}, "empty method before ':'"
	}
	for i := 0; i < len(method); i++ {
		if !isMethodByte(method[i]) {
			return Endpoint{}, "method may only contain letters, digits and / _ - . *"
		}
	}
	if !hasName {
		return Endpoint{Method: method}, ""
	}
	switch method {
	case MethodToolsCall, MethodResourcesRead, MethodPromptsGet:
	default:
		return Endpoint{}, "a ':name' is only allowed after tools/call, resources/read or prompts/get"
	}
	switch {
	case name == "":
		return Endpoint{}, "empty name after ':' (omit the ':' to allow every name)"
	case len(name) > MaxEndpointNameLen:
		return Endpoint{}, fmt.Sprintf("name longer than %d bytes", MaxEndpointNameLen)
	case !utf8.ValidString(name):
		return Endpoint{}, "name is not valid UTF-8"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return Endpoint{}, "name contains a control character"
	}
	return Endpoint{Method: method, Name: name, HasName: true}, ""
}

func isMethodByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '/' || c == '_' || c == '-' || c == '.' || c == '*'
}

// String returns the pattern in the form ParseEndpoint accepts; for a parsed
// Endpoint it is the original input.
func (e Endpoint) String() string {
	if e.HasName {
		return e.Method + ":" + e.Name
	}
	return e.Method
}

// Match reports whether a request with the given MCP method and name (tool
// name, resource URI or prompt name; "" for methods without one) is allowed by
// e. Comparison is byte-wise and case-sensitive, as MCP names are. A pattern
// without a name matches any name, including "", so requests lacking a
// required name must be rejected before policy evaluation. Match does not
// allocate.
func (e Endpoint) Match(method, name string) bool {
	if !glob(e.Method, method) {
		return false
	}
	return !e.HasName || glob(e.Name, name)
}

// glob reports whether s matches pattern, where '*' matches any run of bytes
// and every other byte matches itself. The pattern is taken as literal
// segments separated by stars: the first must be a prefix of s, the last a
// suffix, and each one in between is matched at its leftmost occurrence after
// the previous one. Leftmost is always right, because it leaves the longest
// rest of s for the remaining segments. Every byte of s is scanned about once
// (strings.Index is linear-time), unlike the classic backtracking glob, which
// is O(len(pattern)*len(s)) on a pattern such as "*aaa...ab*" against
// "aaaa..." (100 ms for a 64 KiB name), and the filter matches
// attacker-chosen names on every request. No allocation.
func glob(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	if !strings.HasPrefix(s, pattern[:star]) {
		return false
	}
	s, pattern = s[star:], pattern[star+1:]
	for {
		star = strings.IndexByte(pattern, '*')
		if star < 0 {
			return strings.HasSuffix(s, pattern)
		}
		seg := pattern[:star]
		pattern = pattern[star+1:]
		if seg == "" {
			continue
		}
		i := strings.Index(s, seg)
		if i < 0 {
			return false
		}
		s = s[i+len(seg):]
	}
}

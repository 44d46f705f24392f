package token

import "strings"

// Bearer returns the token of an Authorization header value of the Bearer
// scheme (RFC 6750): the scheme matched without regard to case (RFC 9110),
// then white space, then the token. It reports false for another scheme or
// an empty token.
func Bearer(authorization string) (string, bool) {
	scheme, rest, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	t := strings.TrimSpace(rest)
	return t, t != ""
}

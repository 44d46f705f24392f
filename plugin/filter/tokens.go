package filter

import (
	"time"

	"github.com/knaight/knaight/shared/token"
)

// tokenCache holds the tokens this VM verified, until they expire.
// Verifying an Ed25519 signature costs about half a millisecond in
// WebAssembly; an agent sends the same token for its whole lifetime, so a
// token is verified once per VM. Only the signature and the claims are
// cached: revocation is checked against the current snapshot on every
// request, and the cache is emptied when a verification key leaves the
// snapshot.
type tokenCache struct {
	entries map[string]*verifiedToken
	max     int
}

// verifiedToken is a verified token's claims, with what every request
// derives from them computed once per token rather than per request.
type verifiedToken struct {
	token.Claims
	// scopes is Claims.Scopes(), for the policy input. Shared by every
	// request with the token: never modify it.
	scopes []string
}

func newVerifiedToken(c token.Claims) *verifiedToken {
	return &verifiedToken{Claims: c, scopes: c.Scopes()}
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{entries: make(map[string]*verifiedToken), max: max}
}

// get returns the cached claims of raw if it verified before and has not
// expired at now.
func (c *tokenCache) get(raw string, now time.Time) (*verifiedToken, bool) {
	cl, ok := c.entries[raw]
	if !ok {
		return nil, false
	}
	if !now.Before(cl.ExpiresAt) {
		delete(c.entries, raw)
		return nil, false
	}
	return cl, true
}

// put caches verified claims. When the cache is full it drops the expired
// entries, and if that frees nothing, everything: the cost is one more
// verification per live token, never a wrong answer.
func (c *tokenCache) put(raw string, cl *verifiedToken, now time.Time) {
	if len(c.entries) >= c.max {
		for k, v := range c.entries {
			if !now.Before(v.ExpiresAt) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			c.clear()
		}
	}
	c.entries[raw] = cl
}

func (c *tokenCache) clear() { clear(c.entries) }

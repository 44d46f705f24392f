package sign

import (
	"sync"
	"time"
)

// ReplayCache remembers signatures that were accepted, for Verifier.Replay.
// Implementations must be safe for concurrent use. One shared by several
// processes (in a database or a cache server) must record and test in one
// atomic step.
type ReplayCache interface {
	// Seen records sig and reports whether it was already recorded within
	// its lifetime. The record may be forgotten after expires. An
	// implementation that cannot record sig must report true (fail closed).
	Seen(sig [32]byte, expires time.Time) bool
}

// MemoryReplayCache is a bounded in-memory ReplayCache for one process. A
// Verifier records a signature until its timestamp plus the skew, so a
// signature is accepted at most once in its window of 2×skew, and the cache
// holds at most the signatures accepted in the last 2×skew. Size it above the
// peak accepted requests per second times 2×skew (600 s by default): when it
// holds max unexpired entries, Seen reports true for every new signature and
// Verify fails with ErrReplay until entries expire. It never evicts an
// unexpired entry, which would let that signature be replayed.
//
// Behind several replicas each process has its own cache: route an agent
// consistently or share a cache, or a signature can be replayed once per
// replica.
type MemoryReplayCache struct {
	// Now returns the current time for expiry; nil means time.Now. Set it
	// before first use, to the same clock as the Verifier's.
	Now func() time.Time

	mu      sync.Mutex
	max     int
	seen    map[[32]byte]struct{}
	expires expiryHeap
}

// NewMemoryReplayCache returns an empty MemoryReplayCache holding at most max
// unexpired signatures (about 100 bytes each). It panics if max < 1.
func NewMemoryReplayCache(max int) *MemoryReplayCache {
	if max < 1 {
		panic("sign: NewMemoryReplayCache: max must be at least 1")
	}
	return &MemoryReplayCache{max: max, seen: make(map[[32]byte]struct{})}
}

// Seen implements ReplayCache. An entry whose expires is already past is not
// recorded and reported as not seen; a Verifier never asks for one.
func (c *MemoryReplayCache) Seen(sig [32]byte, expires time.Time) bool {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	t := now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.expires) > 0 && c.expires[0].at.Before(t) {
		delete(c.seen, c.expires.pop().sig)
	}
	if _, ok := c.seen[sig]; ok {
		return true
	}
	if expires.Before(t) {
		return false
	}
	if len(c.seen) >= c.max {
		return true
	}
	c.seen[sig] = struct{}{}
	c.expires.push(expiry{at: expires, sig: sig})
	return false
}

// Len returns the number of signatures held, expired ones included until the
// next Seen prunes them; for metrics.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type expiry struct {
	at  time.Time
	sig [32]byte
}

// expiryHeap is a binary min-heap of entries by expiry, without the
// interface boxing of container/heap.
type expiryHeap []expiry

func (h *expiryHeap) push(e expiry) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a[i].at.Before(a[p].at) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *expiryHeap) pop() expiry {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && a[l].at.Before(a[m].at) {
			m = l
		}
		if r := l + 1; r < n && a[r].at.Before(a[m].at) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

package sign

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock shared by a Verifier and its cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func replayVerifier(max int) (Verifier, *MemoryReplayCache, *clock) {
	c := &clock{t: t0}
	cache := NewMemoryReplayCache(max)
	cache.Now = c.now
	return Verifier{Now: c.now, Replay: cache}, cache, c
}

func signedAt(t *testing.T, ts string, body string) (Request, string) {
	t.Helper()
	r := baseRequest()
	r.Timestamp = ts
	r.BodySHA256 = BodyDigest([]byte(body))
	return r, mustSign(t, testKey, r)
}

func TestReplay(t *testing.T) {
	t.Run("replay is rejected within the window", func(t *testing.T) {
		v, _, c := replayVerifier(10)
		r, sig := signedAt(t, t0Stamp, "a")
		if err := v.Verify(testKey, r, sig); err != nil {
			t.Fatal(err)
		}
		for _, d := range []time.Duration{0, time.Minute, DefaultSkew} {
			c.set(t0.Add(d))
			if err := v.Verify(testKey, r, sig); !errors.Is(err, ErrReplay) {
				t.Fatalf("repeat %s later: %v, want ErrReplay", d, err)
			}
		}
		c.set(t0.Add(DefaultSkew + time.Second))
		if err := v.Verify(testKey, r, sig); !errors.Is(err, ErrStale) {
			t.Fatalf("after the window: %v, want ErrStale", err)
		}
	})
	t.Run("upper-case hex of the same signature is a replay", func(t *testing.T) {
		v, _, _ := replayVerifier(10)
		r, sig := signedAt(t, t0Stamp, "a")
		if err := v.Verify(testKey, r, sig); err != nil {
			t.Fatal(err)
		}
		upper := SignaturePrefix + toUpper(sig[len(SignaturePrefix):])
		if err := v.Verify(testKey, r, upper); !errors.Is(err, ErrReplay) {
			t.Fatalf("%v, want ErrReplay", err)
		}
	})
	t.Run("failed signatures are not recorded", func(t *testing.T) {
		v, cache, _ := replayVerifier(1)
		r, sig := signedAt(t, t0Stamp, "a")
		for range 5 {
			if err := v.Verify(otherKey, r, sig); !errors.Is(err, ErrBadSignature) {
				t.Fatal(err)
			}
		}
		if n := cache.Len(); n != 0 {
			t.Fatalf("cache holds %d entries after bad signatures", n)
		}
		if err := v.Verify(testKey, r, sig); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("distinct requests are each accepted once", func(t *testing.T) {
		v, cache, _ := replayVerifier(10)
		for _, body := range []string{"a", "b", "c"} {
			r, sig := signedAt(t, t0Stamp, body)
			if err := v.Verify(testKey, r, sig); err != nil {
				t.Fatal(err)
			}
		}
		if n := cache.Len(); n != 3 {
			t.Fatalf("Len = %d, want 3", n)
		}
	})
	t.Run("the cache forgets after expiry", func(t *testing.T) {
		c := &clock{t: t0}
		cache := NewMemoryReplayCache(10)
		cache.Now = c.now
		sig := [32]byte{1}
		exp := t0.Add(time.Minute)
		if cache.Seen(sig, exp) {
			t.Fatal("new signature reported seen")
		}
		c.set(exp)
		if !cache.Seen(sig, exp) {
			t.Fatal("forgotten at its expiry, want remembered until after it")
		}
		c.set(exp.Add(time.Nanosecond))
		if cache.Seen([32]byte{2}, exp.Add(time.Hour)); cache.Len() != 1 {
			t.Fatalf("Len = %d after expiry, want 1 (only the new one)", cache.Len())
		}
		if cache.Seen(sig, exp.Add(time.Hour)) {
			t.Fatal("expired signature still reported seen")
		}
		if cache.Seen([32]byte{3}, exp) {
			t.Fatal("already expired signature reported seen")
		}
		if n := cache.Len(); n != 2 {
			t.Fatalf("Len = %d, want 2: already expired ones are not recorded", n)
		}
	})
	t.Run("a full cache fails closed until entries expire", func(t *testing.T) {
		v, cache, c := replayVerifier(2)
		r1, s1 := signedAt(t, t0Stamp, "a")
		r2, s2 := signedAt(t, "2025-01-25T10:01:00Z", "b")
		r3, s3 := signedAt(t, "2025-01-25T10:02:00Z", "c")
		for _, x := range []struct {
			r Request
			s string
		}{{r1, s1}, {r2, s2}} {
			if err := v.Verify(testKey, x.r, x.s); err != nil {
				t.Fatal(err)
			}
		}
		if err := v.Verify(testKey, r3, s3); !errors.Is(err, ErrReplay) {
			t.Fatalf("full cache: %v, want ErrReplay", err)
		}
		if n := cache.Len(); n != 2 {
			t.Fatalf("Len = %d, want 2", n)
		}
		c.set(t0.Add(DefaultSkew + time.Second)) // the first entry expired
		if err := v.Verify(testKey, r3, s3); err != nil {
			t.Fatalf("after the first expired: %v", err)
		}
		if err := v.Verify(testKey, r2, s2); !errors.Is(err, ErrReplay) {
			t.Fatalf("unexpired entry evicted: %v, want ErrReplay", err)
		}
	})
	t.Run("concurrent replays: exactly one is accepted", func(t *testing.T) {
		v, _, _ := replayVerifier(100)
		r, sig := signedAt(t, t0Stamp, "a")
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if v.Verify(testKey, r, sig) == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := ok.Load(); n != 1 {
			t.Fatalf("%d accepted, want 1", n)
		}
	})
}

func TestNewMemoryReplayCachePanicsOnZero(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewMemoryReplayCache(0)
}

// TestMemoryReplayCacheModel compares the cache with a naive model under
// random expiries, out of order, and a moving clock.
func TestMemoryReplayCacheModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const max = 50
	c := &clock{t: t0}
	cache := NewMemoryReplayCache(max)
	cache.Now = c.now
	model := map[[32]byte]time.Time{}
	for i := range 20000 {
		if i%7 == 0 {
			c.set(c.now().Add(time.Duration(rng.IntN(20)) * time.Second))
		}
		now := c.now()
		for k, exp := range model {
			if exp.Before(now) {
				delete(model, k)
			}
		}
		sig := [32]byte{byte(rng.IntN(120))}
		exp := now.Add(time.Duration(rng.IntN(600)-30) * time.Second)
		_, seen := model[sig]
		want := seen || (!exp.Before(now) && len(model) >= max)
		if !seen && !exp.Before(now) && len(model) < max {
			model[sig] = exp
		}
		if got := cache.Seen(sig, exp); got != want {
			t.Fatalf("step %d: Seen = %v, want %v", i, got, want)
		}
		if cache.Len() != len(model) {
			t.Fatalf("step %d: Len = %d, model %d", i, cache.Len(), len(model))
		}
	}
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

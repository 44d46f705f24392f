package sign

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKeySignsAsSign checks a prepared key against Sign, for keys of every
// length around the HMAC block (a longer key is hashed first) and requests
// whose canonical strings span one to several blocks.
func TestKeySignsAsSign(t *testing.T) {
	for _, n := range []int{MinKeySize, 32, 63, 64, 65, 200} {
		secret := make([]byte, n)
		for i := range secret {
			secret[i] = byte(i*7 + n)
		}
		k := NewKey(secret)
		for _, target := range []string{"/", "/mcp?session=1", "/tools/" + strings.Repeat("x", 150) + "?q=1"} {
			for _, ts := range []string{t0Stamp, "2026-11-23T16:04:05.123456789Z"} {
				r := Request{Method: "post", Target: target, BodySHA256: BodyDigest([]byte(target)), Agent: testAgent, Timestamp: ts}
				want, err := Sign(secret, r)
				if err != nil {
					t.Fatal(err)
				}
				// Twice: the second starts from the saved pad states.
				for range 2 {
					if got, err := k.Sign(r); err != nil || got != want {
						t.Fatalf("key of %d bytes: Sign = %q, %v; want %q", n, got, err, want)
					}
				}
			}
		}
	}
}

func TestKeyRefusesAsSign(t *testing.T) {
	weak := NewKey([]byte("0123456789abcde"))
	if _, err := weak.Sign(baseRequest()); !errors.Is(err, ErrWeakKey) {
		t.Errorf("weak key: Sign = %v", err)
	}
	if err := (Verifier{}).VerifyKeyAt(t0, weak, baseRequest(), mustSign(t, testKey, baseRequest())); !errors.Is(err, ErrWeakKey) {
		t.Errorf("weak key: VerifyKeyAt = %v", err)
	}
	r := baseRequest()
	r.Target = "mcp"
	if _, err := NewKey(testKey).Sign(r); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("bad target: Sign = %v", err)
	}
}

func TestKeyWithReplayCache(t *testing.T) {
	c := NewMemoryReplayCache(10)
	c.Now = at(t0)
	v := Verifier{Replay: c}
	r := baseRequest()
	sig := mustSign(t, testKey, r)
	k := NewKey(testKey)
	if err := v.VerifyKeyAt(t0, k, r, sig); err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyKeyAt(t0, k, r, sig); !errors.Is(err, ErrReplay) {
		t.Fatalf("second VerifyKeyAt = %v, want ErrReplay", err)
	}
}

func TestKeyIsSafeForConcurrentUse(t *testing.T) {
	k := NewKey(testKey)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				r := baseRequest()
				r.Timestamp = t0.Add(time.Duration(g*1000+i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
				want := mustSign(t, testKey, r)
				if got, err := k.Sign(r); err != nil || got != want {
					t.Errorf("Sign = %q, %v; want %q", got, err, want)
					return
				}
				if err := (Verifier{}).VerifyKeyAt(t0, k, r, want); err != nil {
					t.Errorf("VerifyKeyAt = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestVerifyKeyAtDoesNotAllocate(t *testing.T) {
	r := baseRequest()
	sig := mustSign(t, testKey, r)
	k := NewKey(testKey)
	v := Verifier{}
	if n := testing.AllocsPerRun(100, func() {
		if err := v.VerifyKeyAt(t0, k, r, sig); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("VerifyKeyAt allocates %v times", n)
	}
	// Sign allocates only the string it returns.
	if n := testing.AllocsPerRun(100, func() {
		if _, err := k.Sign(r); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("Key.Sign allocates %v times", n)
	}
}

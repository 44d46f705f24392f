package sign

import (
	"crypto/hmac"
	"fmt"
	"time"
)

// Verifier checks signatures. The zero value is ready to use: a DefaultSkew
// window, the system clock and no replay protection. A Verifier is safe for
// concurrent use when its Replay is.
type Verifier struct {
	// Skew is how far a timestamp may be from Now, in either direction, and
	// still be accepted; exactly Skew is accepted. Zero or negative means
	// DefaultSkew.
	Skew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Replay, when set, makes every signature acceptable once: after a
	// signature verified, Verify records it until its timestamp plus Skew
	// (when it goes stale anyway) and fails with ErrReplay on a repeat.
	Replay ReplayCache
}

func (v Verifier) skew() time.Duration {
	if v.Skew <= 0 {
		return DefaultSkew
	}
	return v.Skew
}

func (v Verifier) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// Verify checks that signature (a header value) is the signature of r under
// key, that r.Timestamp is within the skew window and, with a Replay cache,
// that the signature was not accepted before. It checks, in this order: the
// key length (ErrWeakKey), the signature syntax (ErrMalformedSignature), the
// request (ErrInvalidRequest, ErrMalformedTimestamp), the window (ErrStale,
// ErrFuture), the HMAC in constant time (ErrBadSignature) and finally the
// replay cache (ErrReplay), so only signatures that verified are recorded.
// It does not allocate on success.
func (v Verifier) Verify(key []byte, r Request, signature string) error {
	return v.verify([][]byte{key}, r, signature)
}

// verify is Verify trying several keys: the signature is valid if it
// verifies under any of them.
func (v Verifier) verify(keys [][]byte, r Request, signature string) error {
	for _, k := range keys {
		if len(k) < MinKeySize {
			return ErrWeakKey
		}
	}
	got, err := ParseSignature(signature)
	if err != nil {
		return err
	}
	ts, err := checkRequest(r)
	if err != nil {
		return err
	}
	skew := v.skew()
	now := v.now()
	if d := now.Sub(ts); d > skew {
		return fmt.Errorf("%w: %s is %s before the verifier's clock, the window is %s", ErrStale, r.Timestamp, d, skew)
	} else if d < -skew {
		return fmt.Errorf("%w: %s is %s after the verifier's clock, the window is %s", ErrFuture, r.Timestamp, -d, skew)
	}
	var buf canonBuf
	msg := buf.build(r)
	ok := false
	for _, k := range keys {
		want := macPrefixed(k, msg)
		if hmac.Equal(want[:], got[:]) {
			ok = true
			break
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if v.Replay != nil && v.Replay.Seen(got, ts.Add(skew)) {
		return ErrReplay
	}
	return nil
}

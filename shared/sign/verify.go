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
	return v.verify(nil, [][]byte{key}, r, signature)
}

// VerifyAt is Verify with now as the current time instead of v.Now's. It
// is for a caller that reads its clock once per request and judges the
// whole request against that one reading, and it spares such a caller the
// closure a Now returning that reading would cost per request. It does not
// allocate on success.
func (v Verifier) VerifyAt(now time.Time, key []byte, r Request, signature string) error {
	return v.verify(&now, [][]byte{key}, r, signature)
}

// verify is Verify trying several keys: the signature is valid if it
// verifies under any of them. at, when not nil, is the current time;
// otherwise v.Now gives it.
func (v Verifier) verify(at *time.Time, keys [][]byte, r Request, signature string) error {
	for _, k := range keys {
		if len(k) < MinKeySize {
			return ErrWeakKey
		}
	}
	got, ts, err := v.check(at, r, signature)
	if err != nil {
		return err
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
	return v.record(got, ts)
}

// check runs the checks that come before the HMAC's: the signature syntax,
// the request and the window. It returns the signature's bytes and the
// request's time. at, when not nil, is the current time; otherwise v.Now
// gives it.
func (v Verifier) check(at *time.Time, r Request, signature string) (got [32]byte, ts time.Time, err error) {
	if got, err = ParseSignature(signature); err != nil {
		return got, ts, err
	}
	if ts, err = checkRequest(r); err != nil {
		return got, ts, err
	}
	skew := v.skew()
	var now time.Time
	if at != nil {
		now = *at
	} else {
		now = v.now()
	}
	if d := now.Sub(ts); d > skew {
		return got, ts, fmt.Errorf("%w: %s is %s before the verifier's clock, the window is %s", ErrStale, r.Timestamp, d, skew)
	} else if d < -skew {
		return got, ts, fmt.Errorf("%w: %s is %s after the verifier's clock, the window is %s", ErrFuture, r.Timestamp, -d, skew)
	}
	return got, ts, nil
}

// record records a signature that verified in the replay cache, if any,
// and fails with ErrReplay if it was there.
func (v Verifier) record(got [32]byte, ts time.Time) error {
	if v.Replay != nil && v.Replay.Seen(got, ts.Add(v.skew())) {
		return ErrReplay
	}
	return nil
}

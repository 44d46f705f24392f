package sign

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
	"time"
)

// Key is an HMAC key prepared for many signatures. HMAC-SHA256 hashes a
// block of the key's inner pad and one of its outer pad around every
// message, two of the six SHA-256 blocks of a typical request's signature;
// a Key keeps the SHA-256 state after each pad (FIPS 198-1, section 6
// allows precomputing them) and starts every signature from there. Key.Sign
// and Verifier.VerifyKeyAt decide exactly as Sign and Verifier.VerifyAt do
// with the raw key. A Key holds the secret's equivalent: protect it as the
// secret.
//
// A Key is safe for concurrent use; its signatures are computed one at a
// time. It pays off for a key used for many requests, such as a gateway's
// key toward an upstream.
type Key struct {
	weak bool

	mu  sync.Mutex
	mac hash.Hash
	// msg and sum are the buffers of the signature being computed: kept
	// here, since a message written through the hash.Hash interface would
	// escape to the heap on every call.
	msg []byte
	sum [sha256.Size]byte
}

// NewKey prepares secret, which it does not retain. A secret shorter than
// MinKeySize makes a Key with which Key.Sign and Verifier.VerifyKeyAt fail
// with ErrWeakKey, as Sign and Verify do with the secret itself.
func NewKey(secret []byte) *Key {
	if len(secret) < MinKeySize {
		return &Key{weak: true}
	}
	k := &Key{mac: hmac.New(sha256.New, secret)}
	// The first Reset saves the state after each pad, which every later
	// Reset and Sum restore instead of hashing the pad again.
	k.mac.Reset()
	return k
}

// Sign returns the signature header value of r under k, as Sign does.
func (k *Key) Sign(r Request) (string, error) {
	if k.weak {
		return "", ErrWeakKey
	}
	if _, err := checkRequest(r); err != nil {
		return "", err
	}
	return formatSignature(k.mac256(r)), nil
}

// VerifyKeyAt is VerifyAt with a prepared key. It does not allocate on
// success.
func (v Verifier) VerifyKeyAt(now time.Time, k *Key, r Request, signature string) error {
	if k.weak {
		return ErrWeakKey
	}
	got, ts, err := v.check(&now, r, signature)
	if err != nil {
		return err
	}
	want := k.mac256(r)
	if !hmac.Equal(want[:], got[:]) {
		return ErrBadSignature
	}
	return v.record(got, ts)
}

// mac256 returns HMAC-SHA256 under k of the canonical string of r, a
// checked request.
func (k *Key) mac256(r Request) [sha256.Size]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.msg = appendCanonical(k.msg[:0], r)
	k.mac.Reset()
	k.mac.Write(k.msg)
	k.mac.Sum(k.sum[:0])
	return k.sum
}

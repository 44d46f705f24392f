// Package seal encrypts the manager's secrets at rest (agents' HMAC keys,
// webhook secrets, and later signing keys) with a key-encryption key (KEK)
// from configuration, using AES-256-GCM. The associated data binds each
// ciphertext to the row it belongs to, so a sealed secret copied to another
// row does not open.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a KEK in bytes.
const KeySize = 32

// version prefixes every sealed value so the format can change later.
const version byte = 1

// ErrOpen means a sealed value did not decrypt: it was altered, moved to
// another row, or sealed under another KEK. Callers must treat the secret as
// unavailable, never fall back to anything.
var ErrOpen = errors.New("sealed value does not open with this key")

// Sealer seals and opens secrets with one KEK. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// ParseKEK decodes a KEK from base64 (standard or URL alphabet, padded or
// not). Its error never contains the input.
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("key-encryption key is not base64")
}

// New returns a Sealer for a 32-byte KEK.
func New(kek []byte) (*Sealer, error) {
	if len(kek) != KeySize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KeySize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = version
	rand.Read(out[1:]) // never fails (crypto/rand documents it)
	return s.aead.Seal(out, out[1:], plaintext, aad)
}

// Open decrypts a value produced by Seal with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	pt, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

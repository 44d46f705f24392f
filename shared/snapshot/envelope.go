package snapshot

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Envelope is the response body of GET /api/v1/gateway/snapshot: one
// snapshot, signed by the manager and sealed to one gateway.
type Envelope struct {
	// Version is the snapshot's version, repeated outside the seal so that
	// the poller can send it back in If-None-Match without opening anything.
	Version uint64 `json:"version"`
	// GatewayID is the gateway the envelope is sealed to.
	GatewayID string `json:"gatewayId"`
	// KeyID names the manager's snapshot signing key.
	KeyID string `json:"keyId"`
	// Signature is the Ed25519 signature of SignedMessage(payload).
	Signature []byte `json:"signature"`
	// Nonce is the AES-GCM nonce (12 bytes).
	Nonce []byte `json:"nonce"`
	// Sealed is the snapshot's JSON, encrypted with AES-256-GCM under the
	// gateway's seal key, with the envelope's header as additional data.
	Sealed []byte `json:"sealed"`
}

// Errors of Open. Each means the envelope must be thrown away and the
// previous snapshot kept; none is worth retrying with the same bytes.
var (
	// ErrMalformed: the envelope or the credential does not parse, or the
	// signed snapshot inside does not decode, validate or match the
	// envelope's version.
	ErrMalformed = errors.New("snapshot: malformed")
	// ErrWrongGateway: the envelope is sealed to another gateway, so this
	// gateway's configuration names the wrong credential or manager.
	ErrWrongGateway = errors.New("snapshot: sealed to another gateway")
	// ErrUnknownKey: no configured snapshot public key has the envelope's
	// key id; configure the manager's current key.
	ErrUnknownKey = errors.New("snapshot: unknown signing key")
	// ErrSeal: the seal does not open, so the envelope was altered or the
	// gateway credential is not the one the manager sealed to.
	ErrSeal = errors.New("snapshot: seal does not open")
	// ErrSignature: the manager's signature does not verify: a forged
	// snapshot. Alert on it.
	ErrSignature = errors.New("snapshot: bad signature")
)

// signatureContext separates snapshot signatures from anything else the key
// could ever sign.
const signatureContext = "knaight-snapshot-v1\n"

// SignedMessage returns the bytes the manager's Ed25519 key signs for a
// snapshot payload: a fixed context string followed by the payload.
func SignedMessage(payload []byte) []byte {
	return append([]byte(signatureContext), payload...)
}

// CredentialPrefix starts every gateway credential.
const CredentialPrefix = "kngw."

// Credential is a gateway credential, as the manager shows it once at
// registration: "kngw.<gateway id>.<secret>", the secret being 32 random
// bytes in unpadded base64url. The gateway sends it as a bearer token and
// derives its seal key from the secret.
type Credential struct {
	GatewayID string
	Secret    []byte
}

// String formats the credential.
func (c Credential) String() string {
	return CredentialPrefix + c.GatewayID + "." + base64.RawURLEncoding.EncodeToString(c.Secret)
}

// ParseCredential parses a gateway credential. The error never contains the
// secret.
func ParseCredential(s string) (Credential, error) {
	rest, ok := strings.CutPrefix(s, CredentialPrefix)
	if !ok {
		return Credential{}, fmt.Errorf("%w: credential does not start with %q", ErrMalformed, CredentialPrefix)
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok || id == "" || strings.ContainsAny(id, ". \t\r\n") {
		return Credential{}, fmt.Errorf("%w: credential is not %s<gateway id>.<secret>", ErrMalformed, CredentialPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != 32 || len(secret) != 43 { // Strict still skips CR and LF
		return Credential{}, fmt.Errorf("%w: credential secret is not 32 bytes of unpadded base64url", ErrMalformed)
	}
	return Credential{GatewayID: id, Secret: raw}, nil
}

// SealKey derives the AES-256 key that seals snapshots to the gateway
// holding c (HKDF-SHA256, salted with the gateway id). The manager stores
// it, encrypted, when it issues the credential; the gateway derives it.
func (c Credential) SealKey() ([]byte, error) {
	return hkdf.Key(sha256.New, c.Secret, []byte(c.GatewayID), "knaight snapshot seal v1", 32)
}

// additionalData binds the seal to the envelope's header, so that a sealed
// payload cannot be moved under another version, gateway or key id.
func additionalData(version uint64, gatewayID, keyID string) []byte {
	b := make([]byte, 0, 64)
	b = append(b, signatureContext...)
	b = binary.BigEndian.AppendUint64(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(gatewayID)))
	b = append(b, gatewayID...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keyID)))
	b = append(b, keyID...)
	return b
}

func newGCM(key []byte) (cipher.AEAD, error) {
	// aes.NewCipher would take a 16- or 24-byte key and quietly seal with
	// AES-128 or AES-192; the contract is AES-256.
	if len(key) != 32 {
		return nil, fmt.Errorf("seal key of %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal signs payload (a snapshot's JSON, from Encode) with the manager's
// key and seals it to one gateway. version must be the payload's version.
func Seal(payload []byte, version uint64, signer ed25519.PrivateKey, keyID, gatewayID string, sealKey []byte) (*Envelope, error) {
	return SealSigned(payload, ed25519.Sign(signer, SignedMessage(payload)), version, keyID, gatewayID, sealKey)
}

// SealSigned is Seal with the signature already made, so that the manager
// signs a snapshot once and seals it to each gateway of the environment.
func SealSigned(payload, signature []byte, version uint64, keyID, gatewayID string, sealKey []byte) (*Envelope, error) {
	aead, err := newGCM(sealKey)
	if err != nil {
		return nil, fmt.Errorf("snapshot: seal key: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, err
	}
	return &Envelope{
		Version:   version,
		GatewayID: gatewayID,
		KeyID:     keyID,
		Signature: signature,
		Nonce:     nonce,
		Sealed:    aead.Seal(nil, nonce, payload, additionalData(version, gatewayID, keyID)),
	}, nil
}

// Opened is a verified snapshot with the exact bytes it was decoded from.
type Opened struct {
	Snapshot *Snapshot
	Payload  []byte
}

// Open parses an envelope, opens its seal with the gateway's seal key,
// verifies the manager's signature with the public key named by its key id,
// and decodes and validates the snapshot, whose version must be the
// envelope's. Nothing of the envelope is trusted before the signature
// verified.
func Open(body []byte, cred Credential, sealKey []byte, keys map[string]ed25519.PublicKey) (Opened, error) {
	var env Envelope
	if err := decodeStrict(body, &env); err != nil {
		return Opened{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if env.GatewayID != cred.GatewayID {
		return Opened{}, fmt.Errorf("%w: %q, this gateway is %q", ErrWrongGateway, env.GatewayID, cred.GatewayID)
	}
	pub, ok := keys[env.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return Opened{}, fmt.Errorf("%w: %q", ErrUnknownKey, env.KeyID)
	}
	aead, err := newGCM(sealKey)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: seal key: %v", ErrMalformed, err)
	}
	if len(env.Nonce) != aead.NonceSize() {
		return Opened{}, fmt.Errorf("%w: nonce of %d bytes", ErrMalformed, len(env.Nonce))
	}
	payload, err := aead.Open(nil, env.Nonce, env.Sealed, additionalData(env.Version, env.GatewayID, env.KeyID))
	if err != nil {
		return Opened{}, ErrSeal
	}
	if len(env.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, SignedMessage(payload), env.Signature) {
		return Opened{}, ErrSignature
	}
	s, err := Decode(payload)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if s.Version != env.Version {
		return Opened{}, fmt.Errorf("%w: envelope version %d, snapshot version %d", ErrMalformed, env.Version, s.Version)
	}
	return Opened{Snapshot: s, Payload: payload}, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

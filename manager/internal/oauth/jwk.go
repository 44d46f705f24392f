package oauth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/knaight/knaight/manager/internal/fault"
)

// MaxClientKeys bounds a private_key_jwt client's JWK Set: enough for a
// rotation overlap, few enough that trying every key of an assertion
// without a kid stays cheap.
const MaxClientKeys = 5

// RSA key sizes accepted. Below 2048 bits is breakable; above 8192 makes
// every verification slow enough to be a denial of service.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// AssertionAlgorithms are the JWS algorithms a client assertion may use,
// each dictated by the key that verifies it. None and HS* are never
// accepted: a client's keys are public, so a MAC keyed by one proves nothing.
func AssertionAlgorithms() []string { return []string{"EdDSA", "ES256", "RS256", "PS256"} }

// JWK is a client's public key in JSON Web Key form (RFC 7517), reduced to
// the members Knaight uses.
type JWK struct {
	KTY string `json:"kty" enum:"OKP,EC,RSA"`
	KID string `json:"kid"`
	Alg string `json:"alg" enum:"EdDSA,ES256,RS256,PS256" doc:"The only algorithm the key verifies."`
	Use string `json:"use,omitempty" enum:"sig"`
	CRV string `json:"crv,omitempty" enum:"Ed25519,P-256"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKSet is a JWK Set (RFC 7517 §5).
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// privateMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// b64 is base64url without padding, rejecting non-canonical encodings.
var b64 = base64.RawURLEncoding.Strict()

// ParseJWKSet validates raw as the JWK Set of a private_key_jwt client:
// one to MaxClientKeys public keys, each Ed25519 (EdDSA), P-256 (ES256) or
// RSA of at least 2048 bits (RS256 or PS256, named by alg), each with a
// distinct kid. Field errors are under "jwks"; a private key member is
// named but its value is never repeated. The result keeps only the members
// Knaight uses, with alg always set.
func ParseJWKSet(raw []byte) (*JWKSet, error) {
	var inv fault.Invalid
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
		return nil, fault.Field("jwks", "must be a JWK Set: {\"keys\": [...]}", nil)
	}
	var members []map[string]json.RawMessage
	if err := json.Unmarshal(doc["keys"], &members); err != nil || doc["keys"] == nil {
		return nil, fault.Field("jwks.keys", "must be an array of JWKs", nil)
	}
	if len(members) == 0 || len(members) > MaxClientKeys {
		return nil, fault.Field("jwks.keys", fmt.Sprintf("must hold 1 to %d keys", MaxClientKeys), len(members))
	}
	set := &JWKSet{Keys: make([]JWK, 0, len(members))}
	for i, m := range members {
		field := fmt.Sprintf("jwks.keys[%d]", i)
		if m == nil {
			inv.Add(field, "must be a JWK object", nil)
			continue
		}
		private := false
		for _, name := range privateMembers {
			if _, ok := m[name]; ok {
				// The value is deliberately not echoed: it is a secret.
				inv.Add(field+"."+name, "private key material must not be registered: send the public key only", nil)
				private = true
			}
		}
		if private {
			continue
		}
		k, ok := parseJWK(&inv, m, field)
		if !ok {
			continue
		}
		if slices.ContainsFunc(set.Keys, func(o JWK) bool { return o.KID == k.KID }) {
			inv.Add(field+".kid", "duplicate kid", k.KID)
			continue
		}
		set.Keys = append(set.Keys, k)
	}
	if err := inv.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// parseJWK checks one public JWK, adding its errors to inv under field.
func parseJWK(inv *fault.Invalid, m map[string]json.RawMessage, field string) (JWK, bool) {
	before := len(inv.Errors)
	ok := func() bool { return len(inv.Errors) == before }
	str := func(name string) string {
		raw, ok := m[name]
		if !ok {
			return ""
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			inv.Add(field+"."+name, "must be a string", nil)
		}
		return s
	}
	k := JWK{KTY: str("kty"), KID: str("kid"), Alg: str("alg"), Use: str("use"), CRV: str("crv"), X: str("x"), Y: str("y"), N: str("n"), E: str("e")}
	if !ok() {
		return k, false
	}
	switch {
	case k.KID == "":
		inv.Add(field+".kid", "required: assertions name their key by kid", nil)
	case len(k.KID) > 200:
		inv.Add(field+".kid", "must be at most 200 bytes", len(k.KID))
	}
	if k.Use != "" && k.Use != "sig" {
		inv.Add(field+".use", "must be sig", k.Use)
	}
	// The key type decides the algorithm; alg may only confirm it, except
	// for RSA keys, which verify two.
	switch k.KTY {
	case "OKP":
		k.Alg = defaultAlg(inv, field, k.Alg, "EdDSA")
		k.Y, k.N, k.E = "", "", ""
	case "EC":
		k.Alg = defaultAlg(inv, field, k.Alg, "ES256")
		k.N, k.E = "", ""
	case "RSA":
		if k.Alg != "RS256" && k.Alg != "PS256" {
			inv.Add(field+".alg", "required for an RSA key: RS256 or PS256", k.Alg)
		}
		k.CRV, k.X, k.Y = "", "", ""
	default:
		inv.Add(field+".kty", "must be OKP (Ed25519), EC (P-256) or RSA", k.KTY)
		return k, false
	}
	if _, member, err := k.publicKey(); err != nil {
		inv.Add(field+"."+member, err.Error(), nil)
	}
	return k, ok()
}

func defaultAlg(inv *fault.Invalid, field, alg, want string) string {
	if alg != "" && alg != want {
		inv.Add(field+".alg", "must be "+want+" for this key type", alg)
	}
	return want
}

// publicKey returns the key in the form golang-jwt verifies with, or the
// member that is wrong.
func (k JWK) publicKey() (crypto.PublicKey, string, error) {
	switch k.KTY {
	case "OKP":
		if k.CRV != "Ed25519" {
			return nil, "crv", errors.New("must be Ed25519")
		}
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, "x", errors.New("must be the 32-byte Ed25519 public key, base64url without padding")
		}
		return ed25519.PublicKey(x), "", nil
	case "EC":
		if k.CRV != "P-256" {
			return nil, "crv", errors.New("must be P-256")
		}
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		switch {
		case errX != nil || len(x) != 32:
			return nil, "x", errors.New("must be a 32-byte coordinate, base64url without padding")
		case errY != nil || len(y) != 32:
			return nil, "y", errors.New("must be a 32-byte coordinate, base64url without padding")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), bytes.Join([][]byte{{4}, x, y}, nil))
		if err != nil {
			return nil, "x", errors.New("x and y are not a point on P-256")
		}
		return pub, "", nil
	case "RSA":
		n, err := b64.DecodeString(k.N)
		if err != nil || len(n) == 0 || n[0] == 0 {
			return nil, "n", errors.New("must be the modulus, big-endian without leading zeros, base64url without padding")
		}
		if bits := new(big.Int).SetBytes(n).BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, "n", fmt.Errorf("must be %d to %d bits, not %d", minRSABits, maxRSABits, bits)
		}
		e, err := b64.DecodeString(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 || e[0] == 0 {
			return nil, "e", errors.New("must be the public exponent, big-endian without leading zeros, base64url without padding")
		}
		exp := new(big.Int).SetBytes(e)
		if exp.Cmp(big.NewInt(3)) < 0 || exp.Bit(0) == 0 || exp.BitLen() > 31 {
			return nil, "e", errors.New("must be an odd exponent of at least 3")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}, "", nil
	}
	return nil, "kty", errors.New("must be OKP, EC or RSA")
}

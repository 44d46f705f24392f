package snapshot_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/knaight/knaight/shared/snapshot"
)

// The manager's snapshot key and the gateway's credential of these tests.
// They are fixed, not random, so that the envelopes of the seed corpus
// (testdata/fuzz/FuzzOpen) still open in later runs.
var (
	testSigner = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5a}, ed25519.SeedSize))
	testCred   = snapshot.Credential{GatewayID: "gw-7f3a", Secret: bytes.Repeat([]byte{0xc3}, 32)}
	// otherSigner is a key the gateway does not trust.
	otherSigner = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xa5}, ed25519.SeedSize))
)

const (
	testKID = "snap-2025"
	// rotatedKID names a second configured key, the manager's next one.
	rotatedKID = "snap-2026"
)

func sealKey(t testing.TB, c snapshot.Credential) []byte {
	t.Helper()
	k, err := c.SealKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testKeys are the snapshot keys the gateway of these tests trusts.
func testKeys() map[string]ed25519.PublicKey {
	return map[string]ed25519.PublicKey{
		testKID:    testSigner.Public().(ed25519.PublicKey),
		rotatedKID: otherSigner.Public().(ed25519.PublicKey),
	}
}

// sealed returns the JSON of a genuine envelope of s for testCred.
func sealed(t testing.TB, s *snapshot.Snapshot) []byte {
	t.Helper()
	payload, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	env, err := snapshot.Seal(payload, s.Version, testSigner, testKID, testCred.GatewayID, sealKey(t, testCred))
	if err != nil {
		t.Fatal(err)
	}
	return marshal(t, env)
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenRoundTrip(t *testing.T) {
	want := validSnapshot()
	payload, err := snapshot.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	env, err := snapshot.Seal(payload, want.Version, testSigner, testKID, testCred.GatewayID, sealKey(t, testCred))
	if err != nil {
		t.Fatal(err)
	}
	if env.Version != want.Version || env.GatewayID != testCred.GatewayID || env.KeyID != testKID {
		t.Fatalf("envelope header %d %q %q", env.Version, env.GatewayID, env.KeyID)
	}
	if bytes.Contains(env.Sealed, payload[:32]) || bytes.Contains(env.Sealed, want.Upstream.Secret) {
		t.Fatal("the sealed payload is readable")
	}
	// The signature covers the context string too, so it is worthless for
	// anything but a snapshot.
	pub := testSigner.Public().(ed25519.PublicKey)
	if !ed25519.Verify(pub, snapshot.SignedMessage(payload), env.Signature) || ed25519.Verify(pub, payload, env.Signature) {
		t.Fatal("the signature is not over SignedMessage(payload) alone")
	}

	opened, err := snapshot.Open(marshal(t, env), testCred, sealKey(t, testCred), testKeys())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(opened.Payload, payload) {
		t.Fatalf("Payload = %s, want %s", opened.Payload, payload)
	}
	if !reflect.DeepEqual(opened.Snapshot, want) {
		t.Fatalf("Snapshot =\n%+v\nwant\n%+v", opened.Snapshot, want)
	}

	// The credential is parsed from its string form in the gateway.
	cred, err := snapshot.ParseCredential(testCred.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Open(marshal(t, env), cred, sealKey(t, cred), testKeys()); err != nil {
		t.Fatalf("Open with the parsed credential: %v", err)
	}
}

func TestSealUsesAFreshNonce(t *testing.T) {
	payload, err := snapshot.Encode(validSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(testSigner, snapshot.SignedMessage(payload))
	a, err := snapshot.SealSigned(payload, sig, 42, testKID, testCred.GatewayID, sealKey(t, testCred))
	if err != nil {
		t.Fatal(err)
	}
	b, err := snapshot.SealSigned(payload, sig, 42, testKID, testCred.GatewayID, sealKey(t, testCred))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Nonce, b.Nonce) || bytes.Equal(a.Sealed, b.Sealed) {
		t.Fatal("two seals of one payload share a nonce")
	}
}

func TestSealRejectsABadSealKey(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := snapshot.Seal([]byte("{}"), 1, testSigner, testKID, testCred.GatewayID, make([]byte, n)); err == nil {
			t.Errorf("Seal accepted a seal key of %d bytes", n)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	good := validSnapshot()
	payload, err := snapshot.Encode(good)
	if err != nil {
		t.Fatal(err)
	}
	key := sealKey(t, testCred)
	other := snapshot.Credential{GatewayID: "gw-other", Secret: bytes.Repeat([]byte{0x11}, 32)}
	wrongSecret := snapshot.Credential{GatewayID: testCred.GatewayID, Secret: bytes.Repeat([]byte{0x12}, 32)}

	// seal makes a genuine envelope with the given header and signer.
	seal := func(t *testing.T, version uint64, signer ed25519.PrivateKey, kid string, cred snapshot.Credential) *snapshot.Envelope {
		t.Helper()
		env, err := snapshot.Seal(payload, version, signer, kid, cred.GatewayID, sealKey(t, cred))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	genuine := func(t *testing.T) *snapshot.Envelope { return seal(t, good.Version, testSigner, testKID, testCred) }
	// body wraps an envelope change into a body.
	body := func(change func(e *snapshot.Envelope)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			e := genuine(t)
			change(e)
			return marshal(t, e)
		}
	}
	// edit rewrites the JSON of a genuine envelope.
	edit := func(change func(s string) string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			s := string(marshal(t, genuine(t)))
			if c := change(s); c != s {
				return []byte(c)
			}
			t.Fatal("the edit does not change the envelope")
			return nil
		}
	}

	tests := []struct {
		name string
		body func(t *testing.T) []byte
		// key replaces the gateway's seal key when not nil.
		key  []byte
		keys map[string]ed25519.PublicKey
		want error
	}{
		{name: "sealed to another gateway", want: snapshot.ErrWrongGateway,
			body: func(t *testing.T) []byte { return marshal(t, seal(t, good.Version, testSigner, testKID, other)) }},
		{name: "another gateway's envelope relabelled to this one", want: snapshot.ErrSeal,
			body: func(t *testing.T) []byte {
				e := seal(t, good.Version, testSigner, testKID, other)
				e.GatewayID = testCred.GatewayID
				return marshal(t, e)
			}},
		{name: "unknown key id", want: snapshot.ErrUnknownKey,
			body: func(t *testing.T) []byte { return marshal(t, seal(t, good.Version, testSigner, "snap-1999", testCred)) }},
		{name: "no configured keys", want: snapshot.ErrUnknownKey, keys: map[string]ed25519.PublicKey{},
			body: func(t *testing.T) []byte { return marshal(t, genuine(t)) }},
		{name: "key id changed in the header", want: snapshot.ErrSeal,
			body: body(func(e *snapshot.Envelope) { e.KeyID = rotatedKID })},
		{name: "flipped byte in sealed", want: snapshot.ErrSeal,
			body: body(func(e *snapshot.Envelope) { e.Sealed[len(e.Sealed)/2] ^= 0x01 })},
		{name: "flipped byte in the GCM tag", want: snapshot.ErrSeal,
			body: body(func(e *snapshot.Envelope) { e.Sealed[len(e.Sealed)-1] ^= 0x80 })},
		{name: "truncated sealed", want: snapshot.ErrSeal,
			body: body(func(e *snapshot.Envelope) { e.Sealed = e.Sealed[:len(e.Sealed)-1] })},
		{name: "empty sealed", want: snapshot.ErrSeal,
			body: body(func(e *snapshot.Envelope) { e.Sealed = nil })},
		{name: "flipped byte in nonce", want: snapshot.ErrSeal,
			body: body(func(e *snapshot.Envelope) { e.Nonce[0] ^= 0x01 })},
		{name: "nonce of 16 bytes", want: snapshot.ErrMalformed,
			body: body(func(e *snapshot.Envelope) { e.Nonce = append(e.Nonce, 0, 0, 0, 0) })},
		{name: "no nonce", want: snapshot.ErrMalformed,
			body: body(func(e *snapshot.Envelope) { e.Nonce = nil })},
		{name: "version raised in the header", want: snapshot.ErrSeal,
			body: body(func(e *snapshot.Envelope) { e.Version++ })},
		{name: "version lowered in the header", want: snapshot.ErrSeal,
			body: body(func(e *snapshot.Envelope) { e.Version-- })},
		{name: "signed by another Ed25519 key", want: snapshot.ErrSignature,
			body: func(t *testing.T) []byte { return marshal(t, seal(t, good.Version, otherSigner, testKID, testCred)) }},
		{name: "flipped bit in the signature", want: snapshot.ErrSignature,
			body: body(func(e *snapshot.Envelope) { e.Signature[10] ^= 0x04 })},
		{name: "truncated signature", want: snapshot.ErrSignature,
			body: body(func(e *snapshot.Envelope) { e.Signature = e.Signature[:ed25519.SignatureSize-1] })},
		{name: "no signature", want: snapshot.ErrSignature,
			body: body(func(e *snapshot.Envelope) { e.Signature = nil })},
		{name: "signature of the bare payload", want: snapshot.ErrSignature,
			body: body(func(e *snapshot.Envelope) { e.Signature = ed25519.Sign(testSigner, payload) })},
		{name: "wrong credential secret", want: snapshot.ErrSeal, key: sealKey(t, wrongSecret),
			body: func(t *testing.T) []byte { return marshal(t, genuine(t)) }},
		{name: "seal key of 16 bytes", want: snapshot.ErrMalformed, key: key[:16],
			body: func(t *testing.T) []byte { return marshal(t, genuine(t)) }},
		{name: "malformed JSON", want: snapshot.ErrMalformed,
			body: func(*testing.T) []byte { return []byte(`{"version":42,`) }},
		{name: "empty body", want: snapshot.ErrMalformed,
			body: func(*testing.T) []byte { return nil }},
		{name: "JSON array", want: snapshot.ErrMalformed,
			body: func(*testing.T) []byte { return []byte(`[]`) }},
		{name: "unknown envelope field", want: snapshot.ErrMalformed,
			body: edit(func(s string) string { return strings.Replace(s, `{`, `{"alg":"none",`, 1) })},
		{name: "trailing data", want: snapshot.ErrMalformed,
			body: edit(func(s string) string { return s + "{}" })},
		{name: "two envelopes", want: snapshot.ErrMalformed,
			body: edit(func(s string) string { return s + s })},
		{name: "signature not base64", want: snapshot.ErrMalformed,
			body: edit(func(s string) string { return strings.Replace(s, `"signature":"`, `"signature":"*`, 1) })},
		{name: "version as string", want: snapshot.ErrMalformed,
			body: edit(func(s string) string { return strings.Replace(s, `"version":42`, `"version":"42"`, 1) })},
		{name: "payload version differs from the envelope's", want: snapshot.ErrMalformed,
			body: func(t *testing.T) []byte {
				sig := ed25519.Sign(testSigner, snapshot.SignedMessage(payload))
				e, err := snapshot.SealSigned(payload, sig, good.Version+1, testKID, testCred.GatewayID, key)
				if err != nil {
					t.Fatal(err)
				}
				return marshal(t, e)
			}},
		{name: "signed snapshot that does not validate", want: snapshot.ErrMalformed,
			body: func(t *testing.T) []byte {
				s := validSnapshot()
				s.Settings.MaxStalenessSeconds = 0
				return sealed(t, s)
			}},
		{name: "signed payload that is not JSON", want: snapshot.ErrMalformed,
			body: func(t *testing.T) []byte {
				e, err := snapshot.Seal([]byte("not json"), good.Version, testSigner, testKID, testCred.GatewayID, key)
				if err != nil {
					t.Fatal(err)
				}
				return marshal(t, e)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, keys := key, testKeys()
			if tt.key != nil {
				k = tt.key
			}
			if tt.keys != nil {
				keys = tt.keys
			}
			opened, err := snapshot.Open(tt.body(t), testCred, k, keys)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
			if opened.Snapshot != nil || opened.Payload != nil {
				t.Fatalf("Open returned a snapshot with error %v", err)
			}
		})
	}
}

func TestParseCredential(t *testing.T) {
	secret := bytes.Repeat([]byte{0xfb}, 32) // encodes with '-' and '_'
	enc := base64.RawURLEncoding.EncodeToString(secret)
	tests := []struct {
		name string
		in   string
		want *snapshot.Credential // nil: ErrMalformed
	}{
		{"credential as shown at registration", "kngw.gw-7f3a." + enc, &snapshot.Credential{GatewayID: "gw-7f3a", Secret: secret}},
		{"uuid gateway id", "kngw.0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5." + enc, &snapshot.Credential{GatewayID: "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5", Secret: secret}},
		{"empty", "", nil},
		{"no prefix", "gw-7f3a." + enc, nil},
		{"upper-case prefix", "KNGW.gw-7f3a." + enc, nil},
		{"another prefix", "kngx.gw-7f3a." + enc, nil},
		{"bearer scheme left on", "Bearer kngw.gw-7f3a." + enc, nil},
		{"leading space", " kngw.gw-7f3a." + enc, nil},
		{"missing dot", "kngw.gw-7f3a" + enc, nil},
		{"only the prefix", "kngw.", nil},
		{"empty gateway id", "kngw.." + enc, nil},
		{"space in gateway id", "kngw.gw 7f3a." + enc, nil},
		{"tab in gateway id", "kngw.gw\t7f3a." + enc, nil},
		{"dot in the secret", "kngw.gw-7f3a." + enc[:20] + "." + enc[20:], nil},
		{"padded base64", "kngw.gw-7f3a." + base64.URLEncoding.EncodeToString(secret), nil},
		{"standard base64 alphabet", "kngw.gw-7f3a." + base64.RawStdEncoding.EncodeToString(secret), nil},
		{"31-byte secret", "kngw.gw-7f3a." + base64.RawURLEncoding.EncodeToString(secret[:31]), nil},
		{"33-byte secret", "kngw.gw-7f3a." + base64.RawURLEncoding.EncodeToString(append(secret, 0)), nil},
		{"empty secret", "kngw.gw-7f3a.", nil},
		{"non-canonical last character", "kngw.gw-7f3a." + enc[:len(enc)-1] + "B", nil},
		{"secret in hex", "kngw.gw-7f3a." + strings.Repeat("fb", 32), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := snapshot.ParseCredential(tt.in)
			if tt.want == nil {
				if !errors.Is(err, snapshot.ErrMalformed) {
					t.Fatalf("ParseCredential: %v, want %v", err, snapshot.ErrMalformed)
				}
				if !reflect.DeepEqual(got, snapshot.Credential{}) {
					t.Fatalf("ParseCredential returned %+v with its error", got)
				}
				// The error may be logged: it must not carry the secret, in
				// any of the forms the input could have it in.
				for _, s := range []string{enc, enc[:16], enc[16:], base64.RawStdEncoding.EncodeToString(secret)[:16], strings.Repeat("fb", 8)} {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("the error %q contains the secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCredential: %v", err)
			}
			if !reflect.DeepEqual(got, *tt.want) {
				t.Fatalf("ParseCredential = %+v, want %+v", got, *tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Fatalf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestCredentialStringRoundTrip(t *testing.T) {
	for _, c := range []snapshot.Credential{
		testCred,
		{GatewayID: "g", Secret: make([]byte, 32)},
		{GatewayID: "gw_ü-1", Secret: bytes.Repeat([]byte{0xff}, 32)},
	} {
		got, err := snapshot.ParseCredential(c.String())
		if err != nil {
			t.Fatalf("ParseCredential(%+v.String()): %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("ParseCredential(String()) = %+v, want %+v", got, c)
		}
	}
}

func TestSealKeyIsBoundToTheCredential(t *testing.T) {
	base := sealKey(t, testCred)
	if len(base) != 32 {
		t.Fatalf("seal key of %d bytes, want 32 (AES-256)", len(base))
	}
	if again := sealKey(t, testCred); !bytes.Equal(again, base) {
		t.Fatal("SealKey is not deterministic: the manager and the gateway would disagree")
	}
	if bytes.Equal(base, testCred.Secret) {
		t.Fatal("the seal key is the raw secret")
	}
	for _, c := range []snapshot.Credential{
		{GatewayID: "gw-7f3b", Secret: testCred.Secret},
		{GatewayID: testCred.GatewayID, Secret: append(bytes.Repeat([]byte{0xc3}, 31), 0xc2)},
	} {
		if bytes.Equal(sealKey(t, c), base) {
			t.Fatalf("credential %q has the same seal key as %q", c.GatewayID, testCred.GatewayID)
		}
	}
}

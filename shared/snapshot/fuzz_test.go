package snapshot_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/knaight/knaight/shared/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzDecode and testdata/fuzz/FuzzOpen from decodeSeeds and openSeeds")

// minimalSnapshot has only what Validate requires: no bundle (the gateway
// denies everything), no keys, no agents.
func minimalSnapshot() *snapshot.Snapshot {
	return &snapshot.Snapshot{
		Schema: snapshot.Schema, Version: 1, Organization: "o", OrganizationID: "1",
		Environment: "development", IssuedAt: t0, Issuer: "https://m",
		Upstream:          snapshot.UpstreamKey{ID: "u", Secret: make([]byte, 32)},
		ProtectedResource: snapshot.ProtectedResource{AuthorizationServers: []string{"https://m"}},
		Settings:          snapshot.Settings{ClockSkewSeconds: 1, MaxStalenessSeconds: 5},
	}
}

// editJSON decodes a snapshot's JSON into generic values, lets change edit
// them and encodes the result.
func editJSON(t testing.TB, s *snapshot.Snapshot, change func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(encode(t, s), &doc); err != nil {
		t.Fatal(err)
	}
	change(doc)
	return marshal(t, doc)
}

func encode(t testing.TB, s *snapshot.Snapshot) []byte {
	t.Helper()
	b, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeSeeds are FuzzDecode's seed corpus, kept in testdata/fuzz/FuzzDecode
// (regenerate with go test -run TestFuzzSeedCorpus -update). ok says whether
// Decode accepts the seed.
func decodeSeeds(t testing.TB) map[string]struct {
	data []byte
	ok   bool
} {
	type seed = struct {
		data []byte
		ok   bool
	}
	full := string(encode(t, validSnapshot()))
	return map[string]seed{
		"valid-full":    {encode(t, validSnapshot()), true},
		"valid-minimal": {encode(t, minimalSnapshot()), true},
		"time-offsets": {[]byte(strings.NewReplacer(
			`"issuedAt":"2025-06-02T12:00:00Z"`, `"issuedAt":"2025-06-02T17:30:00.123456789+05:30"`,
			`"exp":"2025-06-02T12:15:00Z"`, `"exp":"2025-06-02T02:15:00-10:00"`,
		).Replace(full)), true},
		// encoding/json matches names without regard to case and keeps the
		// last of repeated names; the manager never writes either.
		"folded-and-repeated-names": {[]byte(strings.Replace(strings.Replace(full, `"schema":`, `"SCHEMA":`, 1),
			`"version":42`, `"version":7,"Version":42`, 1)), true},
		// base64 in JSON strings may carry escaped line breaks.
		"base64-with-line-breaks": {editJSON(t, validSnapshot(), func(d map[string]any) {
			u := d["upstream"].(map[string]any)
			s := u["secret"].(string)
			u["secret"] = s[:20] + "\r\n" + s[20:]
		}), true},
		// Encode leaves empty lists of omitempty fields out.
		"empty-lists": {[]byte(strings.NewReplacer(
			`"tokenKeys":null`, `"tokenKeys":[]`, `"revocations":null`, `"revocations":[]`,
			`"agents":null`, `"agents":[{"ansName":"a","status":"PENDING","keys":[]}]`,
			`"authorization_servers":["https://m"]`, `"authorization_servers":["https://m"],"scopes_supported":[]`,
		).Replace(string(encode(t, minimalSnapshot())))), true},
		// Encode used to write "trustLevel":"none" here, which Decode refuses.
		"inactive-agent-without-trust-level": {editJSON(t, validSnapshot(), func(d map[string]any) {
			a := elem(d, "agents", 1)
			a["status"] = "PENDING"
			delete(a, "trustLevel")
		}), true},
		"active-agent-without-trust-level": {editJSON(t, validSnapshot(), func(d map[string]any) { delete(elem(d, "agents", 0), "trustLevel") }), false},
		"unknown-field-in-agent":           {editJSON(t, validSnapshot(), func(d map[string]any) { elem(d, "agents", 0)["admin"] = true }), false},
		"policy-of-another-environment": {editJSON(t, validSnapshot(), func(d map[string]any) {
			elem(d["bundle"].(map[string]any), "policies", 0)["environment"] = "development"
		}), false},
		"settings-out-of-range": {editJSON(t, validSnapshot(), func(d map[string]any) { d["settings"].(map[string]any)["clockSkewSeconds"] = 0 }), false},
		"wrong-schema":          {[]byte(strings.Replace(full, snapshot.Schema, "knaight-snapshot-v2", 1)), false},
		"trailing-data":         {[]byte(full + "[]"), false},
		"not-json":              {[]byte("kngw snapshot"), false},
	}
}

// openSeeds are FuzzOpen's seed corpus, kept in testdata/fuzz/FuzzOpen
// (regenerate with go test -run TestFuzzSeedCorpus -update). AES-GCM nonces
// are random, so the files differ at each regeneration; TestFuzzSeedCorpus
// checks that each still gets its want from Open instead.
func openSeeds(t testing.TB) map[string]struct {
	body []byte
	want error
} {
	type seed = struct {
		body []byte
		want error
	}
	key := sealKey(t, testCred)
	seal := func(payload []byte, version uint64, signer ed25519.PrivateKey, kid string, cred snapshot.Credential) *snapshot.Envelope {
		env, err := snapshot.Seal(payload, version, signer, kid, cred.GatewayID, sealKey(t, cred))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	full := encode(t, validSnapshot())
	genuine := func() *snapshot.Envelope { return seal(full, 42, testSigner, testKID, testCred) }
	indented, err := json.MarshalIndent(genuine(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	flipped := genuine()
	flipped.Sealed[100] ^= 0x20
	raised := genuine()
	raised.Version++
	otherGW := snapshot.Credential{GatewayID: "gw-other", Secret: bytes.Repeat([]byte{0x11}, 32)}
	sig := ed25519.Sign(testSigner, snapshot.SignedMessage(full))
	mismatch, err := snapshot.SealSigned(full, sig, 43, testKID, testCred.GatewayID, key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]seed{
		"valid-full":              {marshal(t, genuine()), nil},
		"valid-minimal":           {marshal(t, seal(encode(t, minimalSnapshot()), 1, testSigner, testKID, testCred)), nil},
		"valid-indented":          {indented, nil},
		"other-gateway":           {marshal(t, seal(full, 42, testSigner, testKID, otherGW)), snapshot.ErrWrongGateway},
		"unknown-key-id":          {marshal(t, seal(full, 42, testSigner, "snap-1999", testCred)), snapshot.ErrUnknownKey},
		"version-raised":          {marshal(t, raised), snapshot.ErrSeal},
		"flipped-sealed-byte":     {marshal(t, flipped), snapshot.ErrSeal},
		"other-signer":            {marshal(t, seal(full, 42, otherSigner, testKID, testCred)), snapshot.ErrSignature},
		"unknown-field":           {[]byte(strings.Replace(string(marshal(t, genuine())), "{", `{"cipher":"none",`, 1)), snapshot.ErrMalformed},
		"trailing-data":           {append(marshal(t, genuine()), " 1"...), snapshot.ErrMalformed},
		"payload-version-differs": {marshal(t, mismatch), snapshot.ErrMalformed},
		"not-json":                {[]byte("{"), snapshot.ErrMalformed},
	}
}

// signedPayloads are every payload testSigner signs in openSeeds: nothing
// else can open under testKeys.
func signedPayloads(t testing.TB) [][]byte {
	return [][]byte{encode(t, validSnapshot()), encode(t, minimalSnapshot())}
}

func corpusFile(data []byte) string {
	return fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
}

// readCorpusFile reads a corpus file of one []byte value.
func readCorpusFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go test -run TestFuzzSeedCorpus -update", err)
	}
	lit, ok := strings.CutPrefix(string(b), "go test fuzz v1\n[]byte(")
	lit, ok2 := strings.CutSuffix(lit, ")\n")
	v, err := strconv.Unquote(lit)
	if !ok || !ok2 || err != nil {
		t.Fatalf("%s is not a corpus file of one []byte", path)
	}
	return []byte(v)
}

func writeCorpus(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(corpusFile(data)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFuzzSeedCorpus keeps the seed corpora in step with the seeds: the
// FuzzDecode files byte for byte, the FuzzOpen files by what Open makes of
// them.
func TestFuzzSeedCorpus(t *testing.T) {
	decodeDir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	openDir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	if *update {
		files := map[string][]byte{}
		for name, s := range decodeSeeds(t) {
			files[name] = s.data
		}
		writeCorpus(t, decodeDir, files)
		files = map[string][]byte{}
		for name, s := range openSeeds(t) {
			files[name] = s.body
		}
		writeCorpus(t, openDir, files)
	}
	for name, s := range decodeSeeds(t) {
		path := filepath.Join(decodeDir, name)
		if got := readCorpusFile(t, path); !bytes.Equal(got, s.data) {
			t.Errorf("%s is stale: run go test -run TestFuzzSeedCorpus -update", path)
		}
		if _, err := snapshot.Decode(s.data); (err == nil) != s.ok {
			t.Errorf("%s: Decode: %v, want ok %v", name, err, s.ok)
		}
	}
	signed := signedPayloads(t)
	for name, s := range openSeeds(t) {
		path := filepath.Join(openDir, name)
		opened, err := snapshot.Open(readCorpusFile(t, path), testCred, sealKey(t, testCred), testKeys())
		if !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Errorf("%s: Open: %v, want %v (stale? run go test -run TestFuzzSeedCorpus -update)", path, err, s.want)
		}
		if err == nil && !slices.ContainsFunc(signed, func(p []byte) bool { return bytes.Equal(p, opened.Payload) }) {
			t.Errorf("%s is stale: its payload is not one of signedPayloads; run go test -run TestFuzzSeedCorpus -update", path)
		}
	}
}

// FuzzDecode checks that Decode never panics; that whatever it accepts
// Encode writes back, and Decode reads that to an equal snapshot that
// encodes to the same bytes again; and that the accepted bytes, signed and
// sealed, open to the same snapshot.
func FuzzDecode(f *testing.F) {
	key := sealKey(f, testCred)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode(t, key, data) })
}

// checkDecode is FuzzDecode's property for one input.
func checkDecode(t *testing.T, key, data []byte) {
	t.Helper()
	s, err := snapshot.Decode(data)
	if err != nil {
		if s != nil {
			t.Fatalf("a snapshot with error %v", err)
		}
		return
	}
	enc, err := snapshot.Encode(s)
	if err != nil {
		t.Fatalf("Decode accepted what Encode cannot write: %v", err)
	}
	s2, err := snapshot.Decode(enc)
	if err != nil {
		t.Fatalf("Decode refuses the encoding of what it accepted: %v\n%s", err, enc)
	}
	if enc2, err := snapshot.Encode(s2); err != nil || !bytes.Equal(enc2, enc) {
		t.Fatalf("Encode is not stable: %v\n%s\n%s", err, enc2, enc)
	}

	env, err := snapshot.Seal(data, s.Version, testSigner, testKID, testCred.GatewayID, key)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := snapshot.Open(marshal(t, env), testCred, key, testKeys())
	if err != nil {
		t.Fatalf("Open refuses a sealed snapshot Decode accepts: %v", err)
	}
	if !bytes.Equal(opened.Payload, data) || !reflect.DeepEqual(opened.Snapshot, s) {
		t.Fatalf("Open and Decode disagree:\n%+v\n%+v", opened.Snapshot, s)
	}

	// Last, as nilEmpty changes s and s2.
	if !reflect.DeepEqual(nilEmpty(s2), nilEmpty(s)) {
		t.Fatalf("round trip changed the snapshot:\n%+v\nwant\n%+v", s2, s)
	}
}

// nilEmpty sets every empty slice in s to nil and returns s. An empty list
// and no list mean the same, and Encode leaves out the empty lists of
// omitempty fields ("keys": [] reads back as nil).
func nilEmpty(s *snapshot.Snapshot) *snapshot.Snapshot {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			if v.Len() == 0 {
				v.SetZero()
			}
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(s))
	return s
}

// FuzzOpen checks that Open never panics, fails only with its sentinel
// errors, and opens nothing but what Seal made with the test key: an
// accepted envelope carries one of the payloads testSigner signed, and
// changing any of its fields makes Open fail for that field.
func FuzzOpen(f *testing.F) {
	key := sealKey(f, testCred)
	keys := testKeys()
	signed := signedPayloads(f)
	sentinels := []error{snapshot.ErrMalformed, snapshot.ErrWrongGateway, snapshot.ErrUnknownKey, snapshot.ErrSeal, snapshot.ErrSignature}
	f.Fuzz(func(t *testing.T, body []byte) {
		opened, err := snapshot.Open(body, testCred, key, keys)
		if err != nil {
			if opened.Snapshot != nil || opened.Payload != nil {
				t.Fatalf("a snapshot with error %v", err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		if !slices.ContainsFunc(signed, func(p []byte) bool { return bytes.Equal(p, opened.Payload) }) {
			t.Fatalf("Open accepted a payload the test key never signed:\n%s", opened.Payload)
		}
		var env snapshot.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("Open accepted an envelope encoding/json cannot read: %v", err)
		}
		if env.GatewayID != testCred.GatewayID || env.KeyID != testKID || env.Version != opened.Snapshot.Version {
			t.Fatalf("accepted header %d %q %q", env.Version, env.GatewayID, env.KeyID)
		}
		if again, err := snapshot.Decode(opened.Payload); err != nil || !reflect.DeepEqual(again, opened.Snapshot) {
			t.Fatalf("Opened.Snapshot is not Decode(Opened.Payload): %v", err)
		}

		n := len(body) // picks the byte and bit each mutation changes
		mutations := []struct {
			name   string
			change func(e *snapshot.Envelope)
			want   error
		}{
			{"flipped sealed bit", func(e *snapshot.Envelope) { e.Sealed[n%len(e.Sealed)] ^= 1 << (n % 8) }, snapshot.ErrSeal},
			{"truncated sealed", func(e *snapshot.Envelope) { e.Sealed = e.Sealed[:len(e.Sealed)-1] }, snapshot.ErrSeal},
			{"flipped nonce bit", func(e *snapshot.Envelope) { e.Nonce[n%len(e.Nonce)] ^= 1 << (n % 8) }, snapshot.ErrSeal},
			{"flipped signature bit", func(e *snapshot.Envelope) { e.Signature[n%len(e.Signature)] ^= 1 << (n % 8) }, snapshot.ErrSignature},
			{"version changed", func(e *snapshot.Envelope) { e.Version ^= 1 << (n % 64) }, snapshot.ErrSeal},
			{"key id of another trusted key", func(e *snapshot.Envelope) { e.KeyID = rotatedKID }, snapshot.ErrSeal},
			{"another gateway", func(e *snapshot.Envelope) { e.GatewayID += "x" }, snapshot.ErrWrongGateway},
		}
		for _, m := range mutations {
			e := env
			e.Sealed, e.Nonce, e.Signature = bytes.Clone(env.Sealed), bytes.Clone(env.Nonce), bytes.Clone(env.Signature)
			m.change(&e)
			if _, err := snapshot.Open(marshal(t, e), testCred, key, keys); !errors.Is(err, m.want) {
				t.Fatalf("%s: Open: %v, want %v", m.name, err, m.want)
			}
		}
	})
}

package sign

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from vectorInputs")

const vectorsFile = "testdata/vectors.json"

// vectorInput is what a vector signs; vectorInputs is the source of truth,
// `go test ./sign -run TestVectors -update` regenerates the expected values.
type vectorInput struct {
	Name         string `json:"name"`
	KeyHex       string `json:"keyHex"`
	Method       string `json:"method"`
	Target       string `json:"target"`
	Body         string `json:"body"`
	Agent        string `json:"agent"`
	Timestamp    string `json:"timestamp"`
	KeyID        string `json:"keyId,omitempty"`
	Organization string `json:"organization,omitempty"`
	// HeaderForm is "knaight" (X-Knaight-*) or "sck" (X-SCK-* aliases).
	HeaderForm string `json:"headerForm"`
}

type vector struct {
	vectorInput
	BodySHA256 string            `json:"bodySHA256"`
	Canonical  string            `json:"canonical"`
	Signature  string            `json:"signature"`
	Headers    map[string]string `json:"headers"`
}

type vectorFile struct {
	Comment string   `json:"comment"`
	Vectors []vector `json:"vectors"`
}

func keyHex(n int, f func(i int) byte) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = f(i)
	}
	return hex.EncodeToString(b)
}

var (
	key32  = keyHex(32, func(i int) byte { return byte(i) })            // 000102...1f
	key20  = keyHex(20, func(int) byte { return 0x0b })                 // RFC 4231 case 1 key
	key64  = keyHex(64, func(i int) byte { return byte(0x40 + i) })     // exactly one block
	key100 = keyHex(100, func(i int) byte { return byte(0xa0 + i%16) }) // longer than a block: hashed first
)

const deployBot = "ans://v1.0.0.deploy-bot.agents.example.com"

var vectorInputs = []vectorInput{
	{Name: "json-rpc tools/call, 32-byte key", KeyHex: key32, Method: "POST", Target: "/mcp",
		Body:  `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","arguments":{"env":"staging"}}}`,
		Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", KeyID: "hk_mfrggzdfmztwq2lk", HeaderForm: "knaight"},
	{Name: "milestone 3 example request, X-SCK-* headers", KeyHex: key32, Method: "POST", Target: "/api/v1/enforcement/verify",
		Body: `{"action": "invoke"}`, Agent: "service.knaight", Timestamp: "2025-01-25T10:00:00Z",
		Organization: "org-123", HeaderForm: "sck"},
	{Name: "empty body (GET of the SSE stream)", KeyHex: key32, Method: "GET", Target: "/mcp",
		Body: "", Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "query string kept as sent", KeyHex: key32, Method: "GET", Target: "/api/v1/tools?name=deploy&limit=10&q=a%20b+c",
		Body: "", Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "non-ASCII path, raw UTF-8", KeyHex: key32, Method: "POST", Target: "/files/Zürich/日本語?lang=de",
		Body: `{"path":"Zürich"}`, Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "percent-encoding is not decoded", KeyHex: key32, Method: "POST", Target: "/files/Z%C3%BCrich/a%2Fb",
		Body: `{}`, Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "20-byte key", KeyHex: key20, Method: "POST", Target: "/mcp",
		Body: `{"jsonrpc":"2.0","id":"a","method":"tools/list"}`, Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "64-byte key (one block)", KeyHex: key64, Method: "POST", Target: "/mcp",
		Body: `{"jsonrpc":"2.0","id":"a","method":"tools/list"}`, Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "100-byte key (hashed first)", KeyHex: key100, Method: "POST", Target: "/mcp",
		Body: `{"jsonrpc":"2.0","id":"a","method":"tools/list"}`, Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "fractional seconds and an offset, timestamp signed as sent", KeyHex: key32, Method: "DELETE", Target: "/mcp",
		Body: "", Agent: deployBot, Timestamp: "2025-01-25T11:00:00.123456+01:00", HeaderForm: "knaight"},
	{Name: "lower-case method is upper-cased", KeyHex: key32, Method: "post", Target: "/mcp",
		Body: `{"jsonrpc":"2.0","id":2,"method":"ping"}`, Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "trailing ? with an empty query is dropped", KeyHex: key32, Method: "GET", Target: "/mcp?",
		Body: "", Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z", HeaderForm: "knaight"},
	{Name: "X-SCK-* headers with a key id", KeyHex: key20, Method: "POST", Target: "/mcp?session=abc",
		Body: `{"action": "invoke"}`, Agent: "service.knaight", Timestamp: "2025-01-25T10:04:59Z",
		KeyID: "hk_abcdefghijklmnop", Organization: "org-123", HeaderForm: "sck"},
}

// refCanonical and refSign are an independent, straightforward
// implementation of the specification, so that the vectors are not merely
// self-consistent with the package's optimized code.
func refCanonical(in vectorInput) string {
	path, query, _ := strings.Cut(in.Target, "?")
	target := path
	if query != "" {
		target += "?" + query
	}
	return fmt.Sprintf("%s\n%s\n%s\n%s\n%x\n%s",
		"KNAIGHT-HMAC-SHA256-V1", in.Timestamp, strings.ToUpper(in.Method), target, sha256.Sum256([]byte(in.Body)), in.Agent)
}

func refSign(key []byte, canonical string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(canonical))
	return "hmac-sha256=" + hex.EncodeToString(m.Sum(nil))
}

func requestOf(in vectorInput) Request {
	return Request{Method: in.Method, Target: in.Target, BodySHA256: BodyDigest([]byte(in.Body)), Agent: in.Agent, Timestamp: in.Timestamp}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func generateVectors(t *testing.T) []byte {
	f := vectorFile{Comment: "Golden vectors of the Knaight request signature (package github.com/knaight/knaight/shared/sign). " +
		"keyHex is the raw HMAC key; body is the exact body bytes as a UTF-8 string; canonical is the string that is MACed; " +
		"headers are what the signer sends. Regenerate with: go test ./sign -run TestVectors -update"}
	for _, in := range vectorInputs {
		r := requestOf(in)
		c, err := Canonical(r)
		if err != nil {
			t.Fatalf("%s: %v", in.Name, err)
		}
		sig, err := Sign(mustHex(t, in.KeyHex), r)
		if err != nil {
			t.Fatalf("%s: %v", in.Name, err)
		}
		h := Headers{Agent: in.Agent, Timestamp: in.Timestamp, Signature: sig, KeyID: in.KeyID, Organization: in.Organization, Alias: in.HeaderForm == "sck"}
		hm := map[string]string{}
		h.Apply(func(name, value string) { hm[name] = value })
		f.Vectors = append(f.Vectors, vector{vectorInput: in, BodySHA256: hex.EncodeToString(r.BodySHA256[:]), Canonical: c, Signature: sig, Headers: hm})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestVectors(t *testing.T) {
	if *update {
		if err := os.MkdirAll(filepath.Dir(vectorsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, generateVectors(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) != len(vectorInputs) {
		t.Fatalf("%s has %d vectors, vectorInputs %d: run with -update", vectorsFile, len(f.Vectors), len(vectorInputs))
	}
	sawSCK := false
	for i, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			if v.vectorInput != vectorInputs[i] {
				t.Fatalf("inputs differ from vectorInputs[%d]: run with -update", i)
			}
			key := mustHex(t, v.KeyHex)
			r := requestOf(v.vectorInput)

			// The independent implementation agrees with the file.
			if got := refCanonical(v.vectorInput); got != v.Canonical {
				t.Errorf("reference canonical\n%q\nwant\n%q", got, v.Canonical)
			}
			if got := refSign(key, v.Canonical); got != v.Signature {
				t.Errorf("reference signature %s, want %s", got, v.Signature)
			}
			if got := fmt.Sprintf("%x", sha256.Sum256([]byte(v.Body))); got != v.BodySHA256 {
				t.Errorf("body SHA-256 %s, want %s", got, v.BodySHA256)
			}

			// The package agrees with the file.
			if got, err := Canonical(r); err != nil || got != v.Canonical {
				t.Errorf("Canonical = %q, %v; want %q", got, err, v.Canonical)
			}
			if got, err := Sign(key, r); err != nil || got != v.Signature {
				t.Errorf("Sign = %s, %v; want %s", got, err, v.Signature)
			}

			// The headers as sent parse and verify.
			hdr := map[string][]string{}
			for name, value := range v.Headers {
				hdr[strings.ToLower(name)] = []string{value}
			}
			h, err := ParseHeaders(func(name string) []string { return hdr[strings.ToLower(name)] })
			if err != nil {
				t.Fatalf("ParseHeaders: %v", err)
			}
			want := Headers{Agent: v.Agent, Timestamp: v.Timestamp, Signature: v.Signature, KeyID: v.KeyID, Organization: v.Organization, Alias: v.HeaderForm == "sck"}
			if h != want {
				t.Errorf("ParseHeaders = %+v, want %+v", h, want)
			}
			if v.HeaderForm == "sck" {
				sawSCK = true
				for name := range v.Headers {
					if !strings.HasPrefix(name, "X-SCK-") && name != HeaderKeyID {
						t.Errorf("header %s in the X-SCK-* form", name)
					}
				}
			}
			ts, err := ParseTimestamp(h.Timestamp)
			if err != nil {
				t.Fatal(err)
			}
			vf := Verifier{Now: func() time.Time { return ts }}
			if err := vf.Verify(key, Request{Method: v.Method, Target: v.Target, BodySHA256: r.BodySHA256, Agent: h.Agent, Timestamp: h.Timestamp}, h.Signature); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	if !sawSCK {
		t.Error("no X-SCK-* vector")
	}
	if !*update {
		if gen := generateVectors(t); !bytes.Equal(gen, raw) {
			t.Errorf("%s is not what the code generates (formatting or order changed?): run with -update", vectorsFile)
		}
	}
}

// TestMACMatchesCryptoHMAC checks the allocation-free HMAC against
// crypto/hmac for key lengths around the block size and canonical strings
// that fit and that spill out of the stack buffer.
func TestMACMatchesCryptoHMAC(t *testing.T) {
	for _, klen := range []int{16, 20, 32, 63, 64, 65, 100, 200} {
		key := bytes.Repeat([]byte{byte(klen)}, klen)
		for _, tlen := range []int{1, 100, 500, 600, 5000} {
			r := Request{Method: "POST", Target: "/" + strings.Repeat("x", tlen-1), BodySHA256: BodyDigest([]byte("b")),
				Agent: deployBot, Timestamp: "2025-01-25T10:00:00Z"}
			c, err := Canonical(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Sign(key, r)
			if err != nil {
				t.Fatal(err)
			}
			if want := refSign(key, c); got != want {
				t.Errorf("key %d bytes, target %d bytes: %s, want %s", klen, tlen, got, want)
			}
		}
	}
}

//go:build ignore

// gen_fuzz_corpus writes the seed corpora of the fuzz targets of package
// sign (fuzz_test.go) to testdata/fuzz/<FuzzName>/, in the go test fuzz v1
// format, one file per seed. Run it from shared/sign after changing a
// target's arguments or a seed:
//
//	go run testdata/gen_fuzz_corpus.go
//
// Genuine signatures are made with sign.Sign, and every seed is checked
// against the outcome its name promises before anything is written.
package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/knaight/knaight/shared/sign"
)

const (
	agent = "ans://v1.0.0.deploy-bot.agents.example.com"
	ts    = "2025-01-25T10:00:00Z"
	body  = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}`
)

var key = []byte("0123456789abcdef0123456789abcdef")

func main() {
	sig, err := sign.Sign(key, sign.Request{Method: "POST", Target: "/mcp", BodySHA256: sign.BodyDigest([]byte(body)), Agent: agent, Timestamp: ts})
	if err != nil {
		log.Fatal(err)
	}
	upper := strings.ToUpper(sig[:len(sign.SignaturePrefix)]) + sig[len(sign.SignaturePrefix):]
	upperHex := sign.SignaturePrefix + strings.ToUpper(sig[len(sign.SignaturePrefix):])

	// FuzzParseHeaders(agent, ts, sig, kid, org, aliasAgent, aliasTS,
	// aliasSig, aliasOrg): "" leaves a header out, "\n" repeats it. want is
	// the error ParseHeaders must give, nil for none.
	type headers struct {
		args [9]string
		want error
	}
	headerSeeds := map[string]headers{
		"valid-knaight":               {[9]string{agent, ts, sig, "hk_2025", "acme"}, nil},
		"valid-required-only":         {[9]string{agent, ts, sig}, nil},
		"valid-alias":                 {[9]string{5: agent, 6: ts, 7: sig, 8: "acme"}, nil},
		"valid-mixed-forms":           {[9]string{agent, "", upperHex, "hk_2025", "", "", ts, "", "acme"}, nil},
		"valid-both-forms-agree":      {[9]string{agent, ts, sig, "", "acme", agent, ts, sig, "acme"}, nil},
		"valid-repeated-same-value":   {[9]string{agent + "\n" + agent, ts, sig, "hk_2025\nhk_2025"}, nil},
		"conflicting-agent":           {[9]string{agent, ts, sig, 5: "ans://v1.0.0.other.agents.example.com"}, sign.ErrMalformedHeader},
		"conflicting-signature-case":  {[9]string{agent, ts, sig, 7: upperHex}, sign.ErrMalformedHeader},
		"conflicting-repeated-stamp":  {[9]string{agent, ts + "\n2025-01-25T10:00:01Z", sig}, sign.ErrMalformedHeader},
		"conflicting-organization":    {[9]string{agent, ts, sig, "", "acme", 8: "globex"}, sign.ErrMalformedHeader},
		"malformed-timestamp":         {[9]string{agent, "2025-01-25 10:00:00Z", sig}, sign.ErrMalformedTimestamp},
		"malformed-alias-timestamp":   {[9]string{5: agent, 6: "2025-02-29T10:00:00Z", 7: sig}, sign.ErrMalformedTimestamp},
		"malformed-alias-signature":   {[9]string{5: agent, 6: ts, 7: "hmac-sha256=abc123..."}, sign.ErrMalformedSignature},
		"malformed-signature-prefix":  {[9]string{agent, ts, upper}, sign.ErrMalformedSignature},
		"malformed-key-id-space":      {[9]string{agent, ts, sig, " hk_2025"}, sign.ErrMalformedHeader},
		"malformed-agent-control":     {[9]string{agent + "\x00", ts, sig}, sign.ErrMalformedHeader},
		"malformed-empty-repeated":    {[9]string{"\n", ts, sig}, sign.ErrMalformedHeader},
		"missing-signature":           {[9]string{agent, ts, "", "hk_2025", "acme"}, sign.ErrMissingHeader},
		"missing-agent-alias-org-set": {[9]string{"", ts, sig, 8: "acme"}, sign.ErrMissingHeader},
	}
	files := map[string]string{}
	for name, s := range headerSeeds {
		_, err := sign.ParseHeaders(getter(s.args))
		check(name, err, s.want)
		files[name] = corpus(s.args[:]...)
	}
	write("FuzzParseHeaders", files)

	sigSeeds := map[string]struct {
		v    string
		want error
	}{
		"valid-lower":           {sig, nil},
		"valid-upper-hex":       {upperHex, nil},
		"valid-mixed-hex":       {sig[:20] + strings.ToUpper(sig[20:40]) + sig[40:], nil},
		"upper-case-prefix":     {upper, sign.ErrMalformedSignature},
		"short-hex":             {sig[:len(sig)-1], sign.ErrMalformedSignature},
		"long-hex":              {sig + "0", sign.ErrMalformedSignature},
		"non-hex-digit":         {sig[:len(sig)-1] + "g", sign.ErrMalformedSignature},
		"empty":                 {"", sign.ErrMalformedSignature},
		"prefix-only":           {sign.SignaturePrefix, sign.ErrMalformedSignature},
		"trailing-space":        {sig + " ", sign.ErrMalformedSignature},
		"other-algorithm":       {"hmac-sha512=" + sig[len(sign.SignaturePrefix):], sign.ErrMalformedSignature},
		"base64-instead-of-hex": {sign.SignaturePrefix + "YMtBvpWGqx4kXi+fT86srenaF3JXBz2DAw8GA9c9+oc=", sign.ErrMalformedSignature},
	}
	files = map[string]string{}
	for name, s := range sigSeeds {
		_, err := sign.ParseSignature(s.v)
		check(name, err, s.want)
		files[name] = corpus(s.v)
	}
	write("FuzzParseSignature", files)

	// FuzzSignMatchesReference(key, method, target, body, agent, ts).
	type request struct {
		key                             []byte
		method, target, body, agent, ts string
		want                            error
	}
	reqSeeds := map[string]request{
		"valid-post":              {key, "POST", "/mcp", body, agent, ts, nil},
		"valid-get-empty-query":   {key, "GET", "/mcp?", "", agent, ts, nil},
		"valid-lower-case-method": {key, "delete", "/mcp?session=3f1c", "", agent, ts, nil},
		"valid-minimum-key":       {key[:sign.MinKeySize], "POST", "/mcp", body, agent, ts, nil},
		"valid-long-key":          {[]byte(strings.Repeat("k", 100)), "POST", "/tools?name=a%20b&x=%C3%BC", body, agent, ts, nil},
		"valid-offset-fraction":   {key, "POST", "/mcp", body, "service.knaight", "2025-01-25T11:00:00.123456789+01:00", nil},
		"valid-unicode":           {key, "POST", "/ü?q=ß", "ü\x00\xff", "ans://ü.example", ts, nil},
		"weak-key":                {key[:sign.MinKeySize-1], "POST", "/mcp", body, agent, ts, sign.ErrWeakKey},
		"target-without-slash":    {key, "POST", "mcp", body, agent, ts, sign.ErrInvalidRequest},
		"target-with-line-break":  {key, "POST", "/mcp\r\nX-Knaight-Agent: x", body, agent, ts, sign.ErrInvalidRequest},
		"method-not-a-token":      {key, "PO ST", "/mcp", body, agent, ts, sign.ErrInvalidRequest},
		"agent-surrounding-space": {key, "POST", "/mcp", body, agent + " ", ts, sign.ErrInvalidRequest},
		"timestamp-not-a-date":    {key, "POST", "/mcp", body, agent, "2025-02-30T10:00:00Z", sign.ErrMalformedTimestamp},
		"timestamp-lower-case-t":  {key, "POST", "/mcp", body, agent, "2025-01-25t10:00:00z", sign.ErrMalformedTimestamp},
		"timestamp-unix-seconds":  {key, "POST", "/mcp", body, agent, "1737799200", sign.ErrMalformedTimestamp},
	}
	files = map[string]string{}
	for name, s := range reqSeeds {
		_, err := sign.Sign(s.key, sign.Request{Method: s.method, Target: s.target, BodySHA256: sign.BodyDigest([]byte(s.body)), Agent: s.agent, Timestamp: s.ts})
		check(name, err, s.want)
		files[name] = corpusBytes(s.key, s.method, s.target, s.body, s.agent, s.ts)
	}
	write("FuzzSignMatchesReference", files)
}

// getter serves the FuzzParseHeaders arguments as fuzz_test.go's header
// map does.
func getter(args [9]string) func(string) []string {
	names := [...]string{
		sign.HeaderAgent, sign.HeaderTimestamp, sign.HeaderSignature, sign.HeaderKeyID, sign.HeaderOrganization,
		sign.AliasHeaderAgent, sign.AliasHeaderTimestamp, sign.AliasHeaderSignature, sign.AliasHeaderOrganization,
	}
	h := map[string][]string{}
	for i, v := range args {
		if v != "" {
			h[strings.ToLower(names[i])] = strings.Split(v, "\n")
		}
	}
	return func(name string) []string { return h[strings.ToLower(name)] }
}

func check(seed string, err, want error) {
	if (err == nil) != (want == nil) || (want != nil && !errors.Is(err, want)) {
		log.Fatalf("seed %s: error %v, want %v", seed, err, want)
	}
}

// corpus formats string arguments in the go test fuzz v1 format.
func corpus(args ...string) string {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		fmt.Fprintf(&b, "string(%q)\n", a)
	}
	return b.String()
}

// corpusBytes formats a []byte argument followed by string arguments.
func corpusBytes(first []byte, rest ...string) string {
	c := corpus(rest...)
	head, tail, _ := strings.Cut(c, "\n")
	return fmt.Sprintf("%s\n[]byte(%q)\n%s", head, first, tail)
}

func write(target string, files map[string]string) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%s: %d seeds\n", dir, len(files))
}

package sign

import (
	"net/http/httptest"
	"testing"
	"time"
)

func BenchmarkVerify(b *testing.B) {
	r := Request{Method: "POST", Target: "/mcp?session=3f1c", BodySHA256: BodyDigest(make([]byte, 1024)), Agent: deployBot, Timestamp: t0Stamp}
	sig := mustSign(b, testKey, r)
	v := Verifier{Now: at(t0)}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(testKey, r, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	r := Request{Method: "POST", Target: "/mcp?session=3f1c", BodySHA256: BodyDigest(make([]byte, 1024)), Agent: deployBot, Timestamp: t0Stamp}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(testKey, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBodyDigest1KiB(b *testing.B) {
	body := make([]byte, 1024)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		BodyDigest(body)
	}
}

func BenchmarkParseHeaders(b *testing.B) {
	req := httptest.NewRequest("POST", "/mcp", nil)
	if err := SignHTTP(req, nil, testKey, deployBot, "hk_abc", t0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeaders(req.Header.Values); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWithReplayCache(b *testing.B) {
	r := Request{Method: "POST", Target: "/mcp", BodySHA256: BodyDigest(nil), Agent: deployBot}
	const n = 4096
	sigs := make([]string, n)
	reqs := make([]Request, n)
	for i := range n {
		reqs[i] = r
		reqs[i].Timestamp = t0.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
		sigs[i] = mustSign(b, testKey, reqs[i])
	}
	b.ReportAllocs()
	i := 0
	var v Verifier
	for b.Loop() {
		if i%n == 0 {
			c := NewMemoryReplayCache(n)
			c.Now = at(t0)
			v = Verifier{Now: at(t0), Replay: c}
		}
		if err := v.Verify(testKey, reqs[i%n], sigs[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

package main

import (
	"strings"
	"testing"
	"time"
)

// goTestOutput is what go test -bench prints, with two runs of one
// benchmark, custom metrics, and test output between the lines.
const goTestOutput = `goos: linux
goarch: amd64
pkg: github.com/knaight/knaight/testenv/bundletest
cpu: Example CPU
BenchmarkPolicyDecision/shared-policy-2         	 1000000	       200.0 ns/op	       180.0 p50-ns	       900.0 p99-ns	      16 B/op	       1 allocs/op
BenchmarkPolicyDecision/shared-policy-2         	 1000000	       220.0 ns/op	       190.0 p50-ns	       950.0 p99-ns	      16 B/op	       1 allocs/op
    bench_test.go:40: 61% of the inputs are allowed
BenchmarkPolicyDecision/opa-prepared-2          	   20000	     30000 ns/op	     29000 p50-ns	     90000 p99-ns	   12000 B/op	     250 allocs/op
PASS
ok  	github.com/knaight/knaight/testenv/bundletest	12.3s
`

func TestParseFoldsRunsIntoMedians(t *testing.T) {
	results, err := parse([]byte(goTestOutput))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2: %+v", len(results), results)
	}
	r := results[0]
	if r.Name != "PolicyDecision/shared-policy" || r.Package != "github.com/knaight/knaight/testenv/bundletest" || r.Runs != 2 {
		t.Errorf("first result %+v", r)
	}
	if got := r.Metrics["sec/op"]; got < 209e-9 || got > 211e-9 {
		t.Errorf("sec/op %g, want the median of 200 and 220 ns", got)
	}
	if p99, _ := r.nanos("p99"); p99 < 924.9 || p99 > 925.1 || r.Metrics["allocs/op"] != 1 {
		t.Errorf("metrics %v", r.Metrics)
	}
}

func TestRenderComparesWithinTheRun(t *testing.T) {
	results, err := parse([]byte(goTestOutput))
	if err != nil {
		t.Fatal(err)
	}
	rep := Report{
		Machine: Machine{CPU: "Example CPU", Cores: 2, MemoryGB: 8, OS: "linux/amd64", Go: "go1.26"},
		Started: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 23, 12, 20, 0, 0, time.UTC),
		Sections: []SectionResult{
			{ID: "policy", Runs: []RunResult{{Command: "go test -bench x ./testenv/bundletest", Seconds: 900, Results: results}}},
			{ID: "manager", Runs: []RunResult{{Command: "go test -bench y ./manager/internal/api", Seconds: 300, Error: "exit status 1\nFAIL"}}},
		},
	}
	md := render(rep)
	for _, want := range []string{
		"Example CPU, 2 cores", "memory: 8 GB", "the benchmarks took 20m0s",
		"## 2. Policy decision", "opa-prepared 30 µs per decision vs shared/policy 210 ns: **143x** (budget 50x): within budget",
		"opa-http: not measured",
		"| `PolicyDecision/shared-policy` | 210 ns | 185 ns | 925 ns |", "16 B",
		"**Failed:** `go test -bench y ./manager/internal/api`", "token issue: not measured",
		"go test -bench x ./testenv/bundletest",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "## 1. Filter") {
		t.Error("a section that did not run is in the report")
	}
}

func TestNumberAndDuration(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{number(1234567), "1,234,567"}, {number(950), "950"}, {number(0.613), "0.613"}, {number(-20000), "-20,000"},
		{duration(387_000), "387 µs"}, {duration(1.5e9), "1.5 s"}, {duration(3.7e3), "3.7 µs"}, {duration(45), "45 ns"},
		{bytesSize(1536), "1.5 KiB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

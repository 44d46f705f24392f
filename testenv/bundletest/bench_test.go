package bundletest

import (
	"context"
	"testing"

	"github.com/knaight/knaight/shared/policy"
)

// BenchmarkPolicyVsOPA evaluates the same generated inputs against the same
// policy set with the Go evaluator and with the library's prepared OPA query,
// in one run: go test -bench=PolicyVsOPA -benchmem ./bundletest/
func BenchmarkPolicyVsOPA(b *testing.B) {
	ctx := context.Background()
	g := newGen(differentialSeed)
	policies := g.policySet()
	for len(policies) < 3 {
		policies = g.policySet()
	}
	set, err := policy.Compile(policies)
	if err != nil {
		b.Fatal(err)
	}
	opa, err := prepareOPA(ctx, loadPolicyModule(b), policies)
	if err != nil {
		b.Fatal(err)
	}
	features := map[string]int{}
	inputs := make([]policy.Input, 256)
	docs := make([]any, len(inputs))
	for i := range inputs {
		inputs[i] = g.input(policies, features)
		if docs[i], _, err = decodeInput(&inputs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("shared-policy", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_ = set.Evaluate(&inputs[i%len(inputs)])
		}
	})
	b.Run("opa-prepared", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := opa.eval(ctx, docs[i%len(docs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The OPA input document also has to be built from the Input.
	b.Run("opa-prepared-with-input-encoding", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			doc, _, err := decodeInput(&inputs[i%len(inputs)])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := opa.eval(ctx, doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

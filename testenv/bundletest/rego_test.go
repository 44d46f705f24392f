package bundletest

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/tester"
)

// TestRegoUnitTests runs the Rego tests (test_* rules) under bundles/ with
// OPA's tester, as `opa test bundles/` does.
func TestRegoUnitTests(t *testing.T) {
	results, err := tester.Run(context.Background(), BundlesDir())
	if err != nil {
		t.Fatalf("loading or compiling %s: %v", BundlesDir(), err)
	}
	var failed []string
	passed := 0
	for _, r := range results {
		switch {
		case r.Error != nil:
			failed = append(failed, r.Package+"."+r.Name+" (error: "+r.Error.Error()+")")
		case r.Skip:
			t.Logf("skipped: %s.%s", r.Package, r.Name)
		case r.Fail:
			failed = append(failed, r.Package+"."+r.Name)
		default:
			passed++
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d Rego tests failed:\n  %s", len(failed), len(results), strings.Join(failed, "\n  "))
	}
	if passed == 0 {
		t.Fatalf("no Rego tests found under %s", BundlesDir())
	}
	t.Logf("%d Rego tests passed", passed)
}

package bundles_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/knaight/knaight/manager/internal/bundles"
)

// The embedded library must be the source of truth byte for byte; run
// go generate ./internal/bundles/ after changing bundles/knaight.
func TestLibraryIsTheSourceOfTruth(t *testing.T) {
	want, err := os.ReadFile("../../../bundles/knaight/policy/policy.rego")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bundles.Library, want) {
		t.Fatal("rego/policy.rego differs from bundles/knaight/policy/policy.rego: run go generate ./internal/bundles/")
	}
}

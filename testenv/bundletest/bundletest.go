// Package bundletest tests the OPA policy library in the repository's
// bundles/ directory: it runs the library's own Rego tests with OPA's
// tester, and checks in a differential test that the library's decision
// (data.knaight.policy.decision) equals the decision of the Go evaluator in
// github.com/knaight/knaight/shared/policy, byte for byte, over generated
// policies and inputs.
//
// The package holds tests only, plus BundlesDir.
package bundletest

import (
	"path/filepath"
	"runtime"
)

// BundlesDir returns the repository's bundles/ directory, found relative to
// this source file (testenv/bundletest/bundletest.go), so that it does not
// depend on the working directory.
func BundlesDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("..", "..", "bundles")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "bundles")
}

// PolicyModulePath is the library's Rego module, relative to BundlesDir.
const PolicyModulePath = "knaight/policy/policy.rego"

// Package bundles builds, signs and tracks the OPA policy bundles that
// optional OPA sidecars load instead of (or beside) the filter: the
// organization's MCP policies as data.knaight.policies plus the Rego library
// of bundles/knaight, signed with the organization's bundle signing key and
// activated per environment, with rollback to the previously active bundle.
package bundles

import _ "embed"

// The library's source of truth is bundles/knaight/policy/policy.rego,
// outside this module where go:embed cannot reach; the copy embedded here is
// refreshed by go generate and checked against the original by a test.
//go:generate cp ../../../bundles/knaight/policy/policy.rego rego/policy.rego

// Library is the Rego library of bundles/knaight/policy/policy.rego
// (package knaight.policy), as shipped in every bundle.
//
//go:embed rego/policy.rego
var Library []byte

// LibraryPath is where the library sits inside a bundle.
const LibraryPath = "/knaight/policy/policy.rego"

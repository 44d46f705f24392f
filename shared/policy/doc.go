// Package policy is the MCP policy model of Knaight (contract 5 in the
// architecture) and its one evaluator: per role template and environment,
// the minimum trust level and level of assurance, the required scopes, the
// allowed MCP endpoints and the constraints. The manager validates and
// stores policies with it; the filter compiles them once per snapshot
// (Compile) and judges every request with Set.Evaluate, deny by default, as
// the manager's explain endpoint does. docs/policy.md specifies the
// semantics exactly, so that the OPA library in bundles/ can match it; the
// package builds for GOOS=wasip1 with the standard library alone.
package policy

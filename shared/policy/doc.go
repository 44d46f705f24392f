// Package policy is the MCP policy model of Knaight (contract 5 in the
// architecture): per role template and environment, the minimum trust level
// and level of assurance, the required scopes, the allowed MCP endpoints and
// the constraints. The manager validates and stores policies with it, and the
// filter and the OPA bundle evaluate exactly the same model, so it builds for
// GOOS=wasip1 with the standard library alone.
package policy

// Package mcp classifies MCP (JSON-RPC 2.0) request bodies and checks the
// request metadata headers of MCP's Streamable HTTP transport against them.
// The Envoy filter calls Classify on every MCP request body before policy:
// the method and the tool, prompt or resource name it returns are what
// policy.Set.Evaluate judges, so they must be the values the upstream MCP
// server will act on. CheckHeaders then enforces the 2026-07-28 rule that the
// Mcp-Method and Mcp-Name headers, on which load balancers and other
// intermediaries may route, agree with the body.
//
// Classify reads the body in a single pass with internal/jsonscan rather
// than encoding/json, whose reflection costs about 16 us per small request
// in WebAssembly. It reads only the members it needs and checks the rest for
// well-formedness.
// Because parsers that disagree about a body are a way to smuggle a request
// past policy, it rejects what encoding/json resolves silently: keys that
// encoding/json would treat as the same (it takes the last duplicate and
// matches struct fields case-insensitively) and invalid UTF-8 (which it
// replaces). The package uses the standard library only and builds for
// GOOS=wasip1.
package mcp

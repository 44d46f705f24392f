package mcp

import (
	"errors"
	"fmt"
)

// JSON-RPC error codes for the errors of this package, to put in the
// JSON-RPC error response that answers a rejected request.
const (
	CodeParseError     = -32700 // JSON-RPC 2.0 "Parse error"
	CodeInvalidRequest = -32600 // JSON-RPC 2.0 "Invalid Request"
	CodeInternalError  = -32603 // JSON-RPC 2.0 "Internal error"
	CodeHeaderMismatch = -32020 // MCP 2026-07-28 "HeaderMismatch"
)

// The errors below are mostly returned wrapped, with a reason and, from
// Classify, a byte offset for logs (never body content): match them with
// errors.Is and map them to a JSON-RPC code with Code. Every one of them
// means "do not forward this request and do not evaluate policy": answer
// 400 Bad Request with a JSON-RPC error response. Its id is null after a
// Classify error (the body's id cannot be trusted) and the Message's ID
// after ErrHeaderMismatch.
var (
	// ErrParse: the body is not well-formed JSON: empty, invalid syntax or
	// number, invalid UTF-8, a bad escape, data after the value, or nesting
	// deeper than MaxDepth (see ErrTooDeep). Answer with CodeParseError.
	ErrParse = errors.New("mcp: parse error")

	// ErrTooDeep: the body nests objects and arrays more than MaxDepth
	// deep; the scanner stops there to stay bounded. It wraps ErrParse, so
	// errors.Is(err, ErrParse) also holds: answer with CodeParseError.
	ErrTooDeep = fmt.Errorf("%w: nesting deeper than %d", ErrParse, MaxDepth)

	// ErrBatch: the body is a JSON array, a JSON-RPC batch. MCP dropped
	// batching in revision 2025-06-18; the client must send one message per
	// request. Answer with CodeInvalidRequest.
	ErrBatch = errors.New("mcp: JSON-RPC batch not supported")

	// ErrDuplicateKey: the top-level object, params or params._meta has two
	// keys that encoding/json would match to the same struct field (equal
	// after unescaping, ignoring case as bytes.EqualFold does). Parsers
	// disagree on which one counts (encoding/json takes the last), so the
	// name we would check may not be the one the server runs. Answer with
	// CodeInvalidRequest; never pick one of the values.
	ErrDuplicateKey = errors.New("mcp: duplicate key")

	// ErrInvalidRequest: well-formed JSON that is not a valid JSON-RPC 2.0
	// message for MCP: not an object; "jsonrpc" not exactly "2.0"; a
	// missing or non-string method; an id that is null or not a string or
	// number; both a method and a result or error; params not an object or
	// array; a response without id, with params or with both result and
	// error; a non-object error; a non-string params.name (tools/call,
	// prompts/get), params.uri (resources/read) or
	// params._meta["io.modelcontextprotocol/protocolVersion"]; or a key
	// that differs only in letter case from one of those members (such as
	// "Name"), which encoding/json would read and other parsers would not.
	// Answer with CodeInvalidRequest.
	ErrInvalidRequest = errors.New("mcp: invalid request")

	// ErrHeaderMismatch: from CheckHeaders, the MCP-Protocol-Version,
	// Mcp-Method or Mcp-Name header is missing where required, malformed, or
	// differs from the body. The MCP 2026-07-28 specification requires
	// 400 Bad Request with CodeHeaderMismatch; do not forward the request,
	// since an intermediary may already have routed on the header.
	ErrHeaderMismatch = errors.New("mcp: header mismatch")
)

// Code returns the JSON-RPC error code that answers err: CodeParseError,
// CodeInvalidRequest or CodeHeaderMismatch for this package's errors,
// CodeInternalError for any other error, and 0 for nil.
func Code(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrParse):
		return CodeParseError
	case errors.Is(err, ErrBatch), errors.Is(err, ErrDuplicateKey), errors.Is(err, ErrInvalidRequest):
		return CodeInvalidRequest
	case errors.Is(err, ErrHeaderMismatch):
		return CodeHeaderMismatch
	default:
		return CodeInternalError
	}
}

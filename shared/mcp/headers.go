package mcp

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Names of the MCP request headers of the Streamable HTTP transport, in
// lower case as Envoy hands them to the filter (HTTP header names are
// case-insensitive; compare them case-insensitively elsewhere).
const (
	HeaderProtocolVersion = "mcp-protocol-version"
	HeaderMethod          = "mcp-method"
	HeaderName            = "mcp-name"
	// HeaderSessionID is sent by clients on protocol versions before
	// 2026-07-28, which removed sessions.
	HeaderSessionID = "mcp-session-id"
)

// Version20260728 is the MCP protocol revision that made the Mcp-Method and
// Mcp-Name headers mandatory and defined code -32020 (HeaderMismatch).
const Version20260728 = "2026-07-28"

// The sentinel that marks a base64-encoded Mcp-Name value.
const (
	base64Prefix = "=?base64?"
	base64Suffix = "?="
)

// CheckHeaders checks a request's MCP-Protocol-Version, Mcp-Method and
// Mcp-Name headers against its classified body m, as the Streamable HTTP
// transport of MCP 2026-07-28 requires of every server and intermediary
// that processes the body ("Server Validation": "Servers that process the
// request body MUST reject requests where the values specified in the
// headers do not match the corresponding values in the request body"). It
// returns nil or ErrHeaderMismatch, wrapped with the reason; answer the
// latter with 400 Bad Request and CodeHeaderMismatch.
//
// protocolVersion, methodHeader and nameHeader are the header values;
// protocolVersion is empty when its header is absent, and hasMethod and
// hasName tell whether the other two were sent. The rules, from the
// specification's "Request Metadata" section:
//
//   - A protocol version is modern if it sorts at or after "2026-07-28"
//     (versions are dates; a malformed value also counts as modern, which
//     only makes the check stricter). Absent or older versions are legacy.
//   - "The header value MUST match the io.modelcontextprotocol/protocolVersion
//     field carried in the request body's _meta": when the body carries one,
//     the header must equal it, and a modern request must carry one.
//   - Mcp-Method: "Required For: All requests", equal to method. Header
//     values are case-sensitive, so the comparison is byte for byte.
//   - Mcp-Name: "Source Field: params.name or params.uri", "Required For:
//     tools/call, resources/read, prompts/get requests", equal to m.Name. A
//     value of the form "=?base64?...?=" is standard base64 of the UTF-8
//     name and is decoded before the comparison ("servers MUST decode an
//     encoded Mcp-Name ... before comparing it"). For other methods there is
//     no body value to match, so Mcp-Name must be absent or empty: a header
//     nothing checks is a header an intermediary could route on wrongly.
//   - "A header value contains invalid characters" is a failure: a value
//     must be printable ASCII (0x20-0x7E); anything else must be sent
//     base64-encoded, which only Mcp-Name allows.
//   - The headers are required only for modern requests. The specification
//     leaves notification POSTs without header requirements, and clients on
//     legacy versions do not know the headers; for both, headers that are
//     sent are still checked, since an intermediary may route on them.
//   - A response carries no method or name, so its Mcp-Method and Mcp-Name
//     must be absent or empty.
func CheckHeaders(protocolVersion, methodHeader, nameHeader string, hasMethod, hasName bool, m Message) error {
	modern := protocolVersion >= Version20260728
	required := modern && m.Kind == KindRequest
	if (m.ProtocolVersion != "" || required) && protocolVersion != m.ProtocolVersion {
		return mismatch("MCP-Protocol-Version differs from params._meta protocol version")
	}
	if hasMethod {
		if !printable(methodHeader) {
			return mismatch("Mcp-Method has invalid characters")
		}
		if methodHeader != m.Method {
			return mismatch("Mcp-Method differs from method")
		}
	} else if required {
		return mismatch("Mcp-Method missing")
	}
	named := m.Method == methodToolsCall || m.Method == methodPromptsGet || m.Method == methodResourcesRead
	if hasName {
		v, ok := decodeName(nameHeader)
		if !ok {
			return mismatch("Mcp-Name is malformed")
		}
		if !named && v != "" {
			return mismatch("Mcp-Name sent for a method without a name")
		}
		if v != m.Name {
			return mismatch("Mcp-Name differs from " + nameSource(m.Method))
		}
	} else if required && named {
		return mismatch("Mcp-Name missing")
	}
	return nil
}

func mismatch(reason string) error { return fmt.Errorf("%w: %s", ErrHeaderMismatch, reason) }

func nameSource(method string) string {
	if method == methodResourcesRead {
		return "params.uri"
	}
	return "params.name"
}

// decodeName returns the value an Mcp-Name header stands for, decoding the
// base64 sentinel form; ok is false when the value has invalid characters or
// bad base64.
func decodeName(v string) (name string, ok bool) {
	if !printable(v) {
		return "", false
	}
	enc, found := strings.CutPrefix(v, base64Prefix)
	if !found || !strings.HasSuffix(enc, base64Suffix) {
		return v, true
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(enc, base64Suffix))
	if err != nil {
		return "", false
	}
	return string(dec), true
}

// printable reports whether v has only the bytes that the specification lets
// a header value carry unencoded: visible ASCII and space.
func printable(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

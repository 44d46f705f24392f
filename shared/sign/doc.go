// Package sign is the Knaight request signature (contract 3 of the
// architecture): an HMAC-SHA256 over one canonical string, used by agents
// toward the gateway and by the gateway toward upstream MCP servers. One
// package signs and verifies; an upstream MCP server written in Go imports it
// to check the gateway, and POST /api/v1/enforcement/verify of the manager
// does the same for other languages. It uses the standard library only and
// builds for GOOS=wasip1, for the Envoy filter.
//
// This comment is the specification; an implementation in another language
// must follow it byte for byte. testdata/vectors.json has golden vectors.
//
// # Headers
//
// Header names are matched case-insensitively. The first milestone's X-SCK-*
// names are accepted as aliases on input.
//
//	X-Knaight-Agent         agent identity, its ANS name, such as
//	                        ans://v1.0.0.deploy-bot.agents.example.com
//	                        (alias X-SCK-ANS-ID)                  required, signed
//	X-Knaight-Timestamp     signing time, RFC 3339 (alias X-SCK-Timestamp)
//	                                                              required, signed
//	X-Knaight-Signature     hmac-sha256=<64 hex digits>
//	                        (alias X-SCK-Signature)               required
//	X-Knaight-Key-Id        id of the HMAC key used, such as hk_abcd...
//	                        (no alias)                            optional, not signed
//	X-Knaight-Organization  organization (alias X-SCK-Organization)
//	                                                              optional, not signed
//
// A value must be non-empty, valid UTF-8, without control characters (bytes
// below 0x20, and 0x7f) and without leading or trailing spaces or tabs. A
// header repeated with different values, or present in both forms with
// different values, is ambiguous and the request is rejected; identical
// repetitions are accepted. Signers send lower-case hex; verifiers accept
// either case. The organization and the key id are not signed: the key id
// only selects a key, and the organization must not be used to decide
// anything.
//
// The timestamp is YYYY-MM-DDTHH:MM:SS, optionally "." and 1 to 9 digits of
// fractional seconds, then "Z" or an offset +HH:MM or -HH:MM ("T" and "Z" in
// upper case; no leap second 60). Examples: 2025-01-25T10:00:00Z,
// 2025-01-25T10:00:00.123Z, 2025-01-25T11:00:00+01:00.
//
// # Canonical string
//
// Six lines joined by "\n" (0x0a), without a trailing newline, UTF-8:
//
//	KNAIGHT-HMAC-SHA256-V1
//	<timestamp, exactly the bytes of the timestamp header>
//	<HTTP method, ASCII letters upper-cased>
//	<request target: path, plus "?" and the raw query if the query is not empty>
//	<SHA-256 of the body, 64 lower-case hex digits>
//	<agent, exactly the bytes of the agent header>
//
// The request target is the origin-form target exactly as sent on the request
// line, with no decoding, re-encoding or path cleaning: the only change is
// that when the query is empty (the first "?" is the last byte) that "?" is
// dropped, so "/mcp?" and "/mcp" are the same. The body is hashed exactly as
// sent, after any Content-Encoding. The body hash of a request without a
// body is the SHA-256 of the empty string,
// e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855. The
// method must be an HTTP token, the target must start with "/", and no line
// may contain control characters or invalid UTF-8.
//
// The signature is "hmac-sha256=" followed by the lower-case hex of
// HMAC-SHA256(key, canonical string), where key is the raw secret bytes (the
// manager shows agents their 32-byte key in base64url: decode it first).
// Keys shorter than 16 bytes are refused.
//
// For example, the first milestone's example request signed with the
// 32-byte key 00 01 02 ... 1f
//
//	POST /api/v1/enforcement/verify
//	X-SCK-ANS-ID: service.knaight
//	X-SCK-Timestamp: 2025-01-25T10:00:00Z
//	X-SCK-Organization: org-123
//	X-SCK-Signature: hmac-sha256=60cb41be9586ab1e245e2f9f4fceacade9a2177257073d83030f0603d73dfa87
//
//	{"action": "invoke"}
//
// has the canonical string
//
//	KNAIGHT-HMAC-SHA256-V1
//	2025-01-25T10:00:00Z
//	POST
//	/api/v1/enforcement/verify
//	b6a1ca5807d5711041a8315e66ba4bcc9405279f7c396a9fc5f1326dee535f1a
//	service.knaight
//
// # Verification
//
// A verifier accepts a request when the signature matches under one of the
// agent's keys (several during a key rotation's overlap), compared in
// constant time, and the timestamp is at most the skew window (5 minutes by
// default) before or after its clock: exactly the window is accepted,
// anything beyond it (even a millisecond) is not. With replay protection, a signature is accepted once:
// it is recorded after it verified, until the timestamp plus the window,
// which makes each signature usable once within its 2×window of validity. A
// client that retries must sign again; two identical requests signed in the
// same instant are indistinguishable from a replay, which is why SignHTTP
// puts milliseconds in the timestamp.
//
// # Verifying the gateway in an upstream MCP server
//
// The gateway signs each request it forwards with the upstream's key, with
// the calling agent in X-Knaight-Agent. An upstream MCP server in Go wraps
// its handler:
//
//	func requireGateway(key []byte, next http.Handler) http.Handler {
//		v := sign.Verifier{Replay: sign.NewMemoryReplayCache(100_000)}
//		gatewayKey := func(agent, keyID string) ([][]byte, error) { return [][]byte{key}, nil }
//		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
//			if err != nil {
//				http.Error(w, "cannot read body", http.StatusRequestEntityTooLarge)
//				return
//			}
//			h, err := v.VerifyHTTP(r, body, gatewayKey)
//			if err != nil {
//				http.Error(w, "unauthorized", http.StatusUnauthorized)
//				return
//			}
//			r.Body = io.NopCloser(bytes.NewReader(body))
//			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), agentKey{}, h.Agent)))
//		})
//	}
//
// The key lookup may return several keys during a rotation, and an error from
// it should be answered with 503 rather than 401. Example (Upstream) is the
// same middleware, runnable.
package sign

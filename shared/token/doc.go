// Package token verifies Knaight gateway tokens (contract 4 of the
// architecture): the short-lived JWTs the manager issues to agents and the
// Envoy filter checks on every request with the verification keys of its
// snapshot. It applies the acceptance rules of the manager's
// tokens.Service.Verify except the ones that need the database (the token's
// record and its revocation, which the filter checks against the snapshot's
// revoked jti list), and is stricter about encoding, so that no other JWT
// parser reads an accepted token differently. It uses the standard library
// only and builds for GOOS=wasip1.
//
// Verify does not cache: Ed25519 costs about 550µs in WebAssembly, so the
// filter keeps verified tokens per VM until they expire, and only asks
// Verify again for a token it has not seen.
//
// # Acceptance rules
//
// Verify checks, in this order, and stops at the first failure:
//
//  1. Structure (ErrMalformed). At most MaxSize bytes; exactly three
//     segments joined by "."; each segment canonical unpadded base64url
//     (no "=", no line breaks, no non-zero trailing bits). The header is
//     one JSON object (RFC 8259) in UTF-8, nested at most 32 deep, without
//     \u escapes of unpaired surrogates. No object, at any depth, has two
//     names that are equal under Unicode case folding (encoding/json, and
//     so golang-jwt, match names that way and keep the last), and no name
//     differs only in case from one this package reads ("ALG", "Iss"). A
//     "crit" header is refused: no extension is understood (RFC 7515
//     §4.1.11).
//  2. Header. "alg" is EdDSA or HS256 (ErrUnsupportedAlgorithm); "typ" is
//     at+jwt or application/at+jwt in any case (ErrType); "kid" names a key
//     of the key set (ErrUnknownKey); and "alg" is that key's algorithm
//     (ErrUnsupportedAlgorithm): the key decides the algorithm, never the
//     token, which is what defeats alg none and HS256 signed with an Ed25519
//     public key. A header value of the wrong type counts as absent.
//  3. Signature (ErrBadSignature): Ed25519 over the bytes of
//     header "." payload with the key's public key, or HMAC-SHA256 with the
//     key's secret compared in constant time. A key without usable material
//     (not 32 public key bytes, or a secret shorter than MinSecretSize) is
//     ErrUnknownKey.
//  4. Claims, decoded only now. The payload is JSON as the header is, and
//     its claims have their types (ErrMalformed): iss, sub, jti, org, agent_id,
//     ans, scope and client_id strings; aud a string or an array of strings;
//     exp, nbf and iat numbers of seconds since the epoch (a fraction is
//     dropped); loa an integer; artifact an object with string id and type.
//     null counts as absent; other claims are ignored. Then: exp is present
//     and Now is before exp + Leeway (ErrExpired); Now is not before
//     nbf - Leeway nor before iat - Leeway (ErrNotYetValid); iss is
//     Expect.Issuer (ErrIssuer); sub, jti, org and ans are present, jti is a
//     UUID in canonical lower-case form (what the revocation list holds),
//     sub equals ans, and org is Expect.Organization when that is set
//     (ErrMissingClaim); aud contains Expect.Audience (ErrAudience).
//
// An empty Expect.Issuer or Expect.Audience matches no token: a
// misconfigured verifier refuses everything rather than accepting tokens of
// any issuer or for any resource.
package token

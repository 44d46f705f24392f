// Package trust is Knaight's trust model: a pure, deterministic function
// from an agent's live trust signals to per-dimension scores, an overall
// score (0..100) and a trust level (L1..L5).
//
// The package performs no I/O and keeps no state. It never creates a signal:
// every Signal it scores was recorded elsewhere by a connector (GitHub,
// OpenSSF Scorecard, ...), a verified signed webhook (Secure Code Warrior,
// credential checks such as ISACA's) or an admin attestation recorded with
// its actor. Missing evidence simply contributes nothing.
//
// The model is documented in docs/trust.md precisely enough to recompute an
// Assessment by hand; ModelVersion names this version of it, and every
// Assessment carries it so stored assessments say which model produced them.
//
// In short:
//
//   - Each signal kind of the fixed catalogue (Kinds) belongs to one
//     Dimension, has a weight inside that dimension, a half-life and a
//     normalization of its raw value to [0,1].
//   - A signal is live unless it has expired (now >= expiresAt) or was
//     observed more than ClockSkew in the future.
//   - A live signal contributes normalized × 0.5^(age/halfLife); per kind
//     only the strongest live signal counts.
//   - A dimension's score is the weighted mean of its kinds' contributions
//     over all kinds of the dimension (missing kinds count as 0), rounded to
//     4 decimals; the overall score is 100 × the weighted mean of the
//     dimension scores, rounded to 2 decimals.
//   - The level is the highest of L2..L5 whose requirements (Thresholds)
//     are met together with those of every lower level; L1 needs nothing.
package trust

package filter

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/knaight/knaight/shared/decision"
)

// appendRecord appends r's JSON, as encoding/json would write it, without
// reflection: the filter encodes one record per request, and reflection-based
// encoding costs tens of microseconds in WebAssembly. TestAppendRecord checks
// it against encoding/json.
func appendRecord(b []byte, r *decision.Record) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"kind":`...)
	b = appendString(b, r.Kind)
	b = append(b, `,"time":`...)
	b = appendTime(b, r.Time)
	b = append(b, `,"organization":`...)
	b = appendString(b, r.Organization)
	b = append(b, `,"environment":`...)
	b = appendString(b, r.Environment)
	b = appendOptString(b, "agent", r.Agent)
	b = appendOptString(b, "tokenId", r.TokenID)
	b = appendOptString(b, "httpMethod", r.HTTPMethod)
	b = appendOptString(b, "path", r.Path)
	b = appendOptString(b, "mcpMethod", r.MCPMethod)
	b = appendOptString(b, "name", r.Name)
	b = append(b, `,"allow":`...)
	b = strconv.AppendBool(b, r.Allow)
	b = appendOptString(b, "reason", string(r.Reason))
	b = appendOptString(b, "message", r.Message)
	if r.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
	}
	b = appendOptString(b, "trustLevel", r.TrustLevel)
	if r.TrustScore != 0 {
		b = append(b, `,"trustScore":`...)
		b = appendFloat(b, r.TrustScore)
	}
	b = appendOptString(b, "policyId", r.PolicyID)
	b = appendOptString(b, "bundleRevision", r.BundleRevision)
	if r.SnapshotVersion != 0 {
		b = append(b, `,"snapshotVersion":`...)
		b = strconv.AppendUint(b, r.SnapshotVersion, 10)
	}
	if r.LatencyMicros != 0 {
		b = append(b, `,"latencyUs":`...)
		b = strconv.AppendInt(b, r.LatencyMicros, 10)
	}
	if r.Lost != 0 {
		b = append(b, `,"lost":`...)
		b = strconv.AppendUint(b, r.Lost, 10)
	}
	if r.LostFrom != nil {
		b = append(b, `,"lostFrom":`...)
		b = appendTime(b, *r.LostFrom)
	}
	if r.LostTo != nil {
		b = append(b, `,"lostTo":`...)
		b = appendTime(b, *r.LostTo)
	}
	return append(b, '}')
}

// appendFloat writes f as encoding/json does: 'f' format, and 'e' with a
// one-digit negative exponent for very small or large magnitudes.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func appendOptString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the bytes appendString copies as they are: ASCII from
// 0x20, except the quote, the backslash and the HTML characters. One table
// load per byte replaces six comparisons, which took the record's strings
// half as long again in WebAssembly.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string, escaping as encoding/json does
// (HTML characters included), and replacing invalid UTF-8 with U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && jsonSafe[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

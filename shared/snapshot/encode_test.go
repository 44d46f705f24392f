package snapshot_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/policy"
	"github.com/knaight/knaight/shared/snapshot"
)

// checkEncodesAsEncodingJSON fails t unless AppendJSON, Encode and
// EncodeSigned write exactly the bytes json.Marshal writes for s, or all
// fail where json.Marshal fails. It returns json.Marshal's bytes.
func checkEncodesAsEncodingJSON(t testing.TB, s *snapshot.Snapshot) []byte {
	t.Helper()
	want, wantErr := json.Marshal(s)

	// AppendJSON appends: what dst holds stays, even with spare capacity.
	prefix := []byte("prefix:")
	dst := append(make([]byte, 0, 64), prefix...)
	got, err := s.AppendJSON(dst)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("AppendJSON error %v, json.Marshal error %v", err, wantErr)
	}
	if err != nil {
		if len(got) != len(prefix) {
			t.Fatalf("AppendJSON failed but returned %d bytes, want the %d of dst", len(got), len(prefix))
		}
		if _, err := snapshot.Encode(s); err == nil {
			t.Fatalf("Encode succeeded where json.Marshal failed: %v", wantErr)
		}
		if _, _, err := snapshot.EncodeSigned(s, testSigner); err == nil {
			t.Fatalf("EncodeSigned succeeded where json.Marshal failed: %v", wantErr)
		}
		return nil
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendJSON changed dst: %q", got[:len(prefix)])
	}
	diff(t, "AppendJSON", got[len(prefix):], want)

	enc, err := snapshot.Encode(s)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	diff(t, "Encode", enc, want)

	payload, sig, err := snapshot.EncodeSigned(s, testSigner)
	if err != nil {
		t.Fatalf("EncodeSigned: %v", err)
	}
	diff(t, "EncodeSigned", payload, want)
	if !bytes.Equal(sig, ed25519.Sign(testSigner, snapshot.SignedMessage(want))) {
		t.Fatal("EncodeSigned's signature is not ed25519.Sign(signer, SignedMessage(payload))")
	}
	return want
}

// diff fails t with the first difference of got and want, in context.
func diff(t testing.TB, name string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-60)
	t.Fatalf("%s differs from json.Marshal at byte %d of %d (json.Marshal: %d bytes):\n got …%q\nwant …%q",
		name, i, len(got), len(want), got[from:min(len(got), i+60)], want[from:min(len(want), i+60)])
}

// oddStrings need every kind of escaping encoding/json does, and some that
// look as if they did.
var oddStrings = []string{
	"",
	"plain ascii ~ DEL\x7f",
	`quote " backslash \ slash /`,
	"<script>alert('&amp;')</script>",
	"\x00\x01\x07\x0b\x0e\x1b\x1f",
	"\b\f\n\r\t",
	"line\u2028paragraph\u2029separators",
	"\u2027\u202a\u20ac near the separators",
	"é 日本語 🙂 \U0010ffff",
	"\xff", "a\xc3", "\xc3(", "\xe2\x80", "\xe2\x80\xa8\xe2\x80",
	"\xed\xa0\x80 a surrogate", "\xf4\x90\x80\x80 beyond U+10FFFF", "\xc0\xaf overlong",
	"\ufffd the replacement character itself",
}

// oddTimes are times with and without fractional seconds, in and out of
// UTC, at the edges RFC 3339 can express and past them.
var oddTimes = []time.Time{
	t0,
	{},
	t0.Add(time.Nanosecond),
	t0.Add(120 * time.Millisecond),
	t0.Add(999999999),
	t0.Add(100 * time.Microsecond),
	t0.In(time.FixedZone("IST", 5*3600+1800)),
	t0.Add(5 * time.Millisecond).In(time.FixedZone("HST", -10*3600)),
	t0.In(time.FixedZone("seconds", 59)),
	t0.In(time.FixedZone("almost a day", 23*3600+59*60)),
	t0.In(time.FixedZone("a day", 24*3600)),  // json.Marshal fails
	t0.In(time.FixedZone("a day", -24*3600)), // json.Marshal fails
	t0.Local(),
	time.Now(), // with a monotonic reading
	time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // json.Marshal fails
	time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC),  // json.Marshal fails
}

// oddFloats are trust scores around encoding/json's switches between
// number formats, and the values it refuses.
var oddFloats = []float64{
	0, math.Copysign(0, -1), 71.5, -12, 1.0 / 3, 100,
	1e-6, 9.999999e-7, 1e-7, 1.5e-9, 1.5e-10, 1e-100, 5e-324,
	1e20, 999999999999999999999, 1e21, 1.5e21, 1e100, math.MaxFloat64, -1e21,
	math.NaN(), math.Inf(1), math.Inf(-1), // json.Marshal fails
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	type change = func(s *snapshot.Snapshot)
	tests := map[string]change{
		"every field in use": func(*snapshot.Snapshot) {},
		"zero snapshot":      func(s *snapshot.Snapshot) { *s = snapshot.Snapshot{} },
		"minimal snapshot":   func(s *snapshot.Snapshot) { *s = *minimalSnapshot() },
		"largest version":    func(s *snapshot.Snapshot) { s.Version = math.MaxUint64 },
		"negative settings": func(s *snapshot.Snapshot) {
			s.Settings = snapshot.Settings{ClockSkewSeconds: -1, MaxStalenessSeconds: math.MinInt}
		},
		"nil lists": func(s *snapshot.Snapshot) { s.TokenKeys, s.Revocations, s.Agents = nil, nil, nil },
		"empty lists": func(s *snapshot.Snapshot) {
			s.TokenKeys, s.Revocations, s.Agents = []snapshot.TokenKey{}, []snapshot.Revocation{}, []snapshot.Agent{}
		},
		"nil agent keys":        func(s *snapshot.Snapshot) { s.Agents[0].Keys = nil },
		"empty agent keys":      func(s *snapshot.Snapshot) { s.Agents[0].Keys = []snapshot.HMACKey{} },
		"nil and empty secrets": func(s *snapshot.Snapshot) { s.Agents[0].Keys[0].Secret, s.Agents[0].Keys[1].Secret = nil, []byte{} },
		"nil and empty key":     func(s *snapshot.Snapshot) { s.TokenKeys[0].Key, s.TokenKeys[1].Key = nil, []byte{} },
		"base64 padding": func(s *snapshot.Snapshot) {
			s.TokenKeys[0].Key, s.TokenKeys[1].Key, s.Upstream.Secret = []byte{1}, []byte{1, 2}, []byte{0xff, 0xfe, 0xfd}
		},
		"nil upstream secret":    func(s *snapshot.Snapshot) { s.Upstream = snapshot.UpstreamKey{} },
		"no bundle":              func(s *snapshot.Snapshot) { s.Bundle = snapshot.Bundle{} },
		"empty policies":         func(s *snapshot.Snapshot) { s.Bundle.Policies = []policy.Policy{} },
		"policy with html":       func(s *snapshot.Snapshot) { s.Bundle.Policies[0].RoleTemplate = "<a&b>\u2028" },
		"nil servers and scopes": func(s *snapshot.Snapshot) { s.ProtectedResource = snapshot.ProtectedResource{} },
		"empty servers and scopes": func(s *snapshot.Snapshot) {
			s.ProtectedResource = snapshot.ProtectedResource{AuthorizationServers: []string{}, ScopesSupported: []string{}}
		},
		"no documentation": func(s *snapshot.Snapshot) { s.ProtectedResource.ResourceDocumentation = "" },
	}
	for i, str := range oddStrings {
		tests[fmt.Sprintf("string %d %q", i, str)] = func(s *snapshot.Snapshot) {
			s.Schema, s.Organization, s.OrganizationID, s.Environment, s.Issuer = str, str, "x"+str, policy.Environment(str), str+"y"
			s.TokenKeys[0].ID, s.TokenKeys[1].Algorithm = str, str
			s.Revocations[0].TokenID = str
			a := &s.Agents[0]
			a.ANSName, a.ID, a.Status, a.RoleTemplate, a.Keys[1].ID = str, str, str, str, str
			s.Bundle.ID, s.Bundle.Revision, s.Upstream.ID = str, str, str
			s.ProtectedResource = snapshot.ProtectedResource{AuthorizationServers: []string{str, str}, ScopesSupported: []string{str}, ResourceDocumentation: str}
		}
	}
	for i, tm := range oddTimes {
		tests[fmt.Sprintf("time %d %s", i, tm.Format(time.RFC3339Nano))] = func(s *snapshot.Snapshot) {
			s.IssuedAt, s.Revocations[0].ExpiresAt, s.Agents[0].Keys[1].ExpiresAt = tm, tm, &tm
		}
		tests[fmt.Sprintf("key expiry %d %s", i, tm.Format(time.RFC3339Nano))] = func(s *snapshot.Snapshot) { s.Agents[0].Keys[1].ExpiresAt = &tm }
	}
	for _, f := range oddFloats {
		tests[fmt.Sprintf("trust score %v", f)] = func(s *snapshot.Snapshot) { s.Agents[0].TrustScore = f }
	}
	for _, l := range []policy.TrustLevel{policy.LevelNone, policy.L1, policy.L5, 6, 255} {
		tests[fmt.Sprintf("trust level %d", l)] = func(s *snapshot.Snapshot) { s.Agents[0].TrustLevel = l }
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			s := validSnapshot()
			change(s)
			checkEncodesAsEncodingJSON(t, s)
		})
	}
}

// TestAppendJSONWritesEveryField sets every field reachable from a Snapshot,
// by reflection, so that a field added to a type of the snapshot but not to
// the encoder fails here even if no other test sets it.
func TestAppendJSONWritesEveryField(t *testing.T) {
	var s snapshot.Snapshot
	fillEveryField(t, reflect.ValueOf(&s).Elem(), "Snapshot")
	if checkEncodesAsEncodingJSON(t, &s) == nil {
		t.Fatal("json.Marshal failed on the filled snapshot; fill it with values it accepts")
	}
}

// fillEveryField sets v, and every exported field, element and pointee
// below it, to a value that is not its zero value.
func fillEveryField(t *testing.T, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(path + " <&>\u2028")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(3) // L3 and LoA3 for the policy types
	case reflect.Float32, reflect.Float64:
		v.SetFloat(2.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillEveryField(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range v.Len() {
			fillEveryField(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillEveryField(t, k, path+".key")
		fillEveryField(t, e, path+".value")
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(k, e)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(t0.Add(1500 * time.Millisecond)))
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fillEveryField(t, v.Field(i), path+"."+f.Name)
			}
		}
	default:
		t.Fatalf("%s: fillEveryField does not know %s; teach it, and check that AppendJSON writes it as encoding/json does", path, v.Type())
	}
}

func TestEncodeSizeHint(t *testing.T) {
	for name, s := range map[string]*snapshot.Snapshot{
		"every field in use": validSnapshot(),
		"minimal":            minimalSnapshot(),
		"zero":               {},
		"large":              largeSnapshot(1000, 10000),
	} {
		t.Run(name, func(t *testing.T) {
			n := len(encode(t, s))
			hint := snapshot.SizeHint(s)
			// The hint must cover the whole payload, or Encode regrows it,
			// and not waste much of a large one.
			if hint < n || (n > 1<<20 && hint > n+n/16) {
				t.Fatalf("size hint %d for a payload of %d bytes", hint, n)
			}
		})
	}
}

// largeSnapshot is shaped like the manager's snapshot of an organization
// with agents ACTIVE agents of one key each and revocations revoked tokens.
func largeSnapshot(agents, revocations int) *snapshot.Snapshot {
	s := validSnapshot()
	s.Revocations = make([]snapshot.Revocation, revocations)
	for i := range s.Revocations {
		s.Revocations[i] = snapshot.Revocation{
			TokenID:   fmt.Sprintf("%08x-4b5a-4968-8776-a5b4c3d2e1f0", i),
			ExpiresAt: t0.Add(time.Duration(i%600) * time.Second),
		}
	}
	s.Agents = make([]snapshot.Agent, agents)
	for i := range s.Agents {
		s.Agents[i] = snapshot.Agent{
			ANSName: fmt.Sprintf("ans://v1.0.0.bot-%d.agents.acme.example", i), ID: fmt.Sprintf("%08x-0b7e-4c1a-8e5d-6f2b7c8d9e0a", i),
			Status: snapshot.StatusActive, RoleTemplate: "assistant", TrustLevel: policy.L2, TrustScore: 42.5,
			Keys: []snapshot.HMACKey{{ID: fmt.Sprintf("hk_%016d", i), Secret: bytes.Repeat([]byte{byte(i)}, 32)}},
		}
	}
	return s
}

func BenchmarkEncode(b *testing.B) {
	s := largeSnapshot(10000, 100000)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := snapshot.Encode(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzAppendJSONMatchesEncodingJSON builds snapshots from the fuzzer's
// strings, times, score, level and bytes, with shape's bits choosing nil or
// empty lists, nil pointers and time zones, and checks that AppendJSON
// writes what json.Marshal writes.
func FuzzAppendJSONMatchesEncodingJSON(f *testing.F) {
	f.Add("acme", "ans://v1.0.0.bot.agents.acme.example", t0.Unix(), int64(0), int32(0), 71.5, uint8(3), uint16(0), []byte("0123456789abcdef"))
	f.Add("<&>", "\u2028\u2029\xff\x00", int64(-62135596800), int64(999999999), int32(19800), -1e-7, uint8(0), uint16(0xffff), []byte{})
	f.Add("\"\\/\b\f\n\r\t", "\xed\xa0\x80é🙂", int64(253402300799), int64(120000000), int32(-36000), 1e21, uint8(6), uint16(0x5555), []byte(nil))
	f.Add("", "", int64(253402300800), int64(1), int32(86400), math.Inf(1), uint8(255), uint16(0xaaaa), []byte{0xff})
	f.Fuzz(func(t *testing.T, a, b string, sec, nsec int64, offset int32, score float64, level uint8, shape uint16, key []byte) {
		checkEncodesAsEncodingJSON(t, fuzzSnapshot(a, b, sec, nsec, offset, score, level, shape, key))
	})
}

func fuzzSnapshot(a, b string, sec, nsec int64, offset int32, score float64, level uint8, shape uint16, key []byte) *snapshot.Snapshot {
	bit := func(i int) bool { return shape&(1<<i) != 0 }
	// nilOr returns nil or the list, as bit i says.
	nilOr := func(i int, list []string) []string {
		if bit(i) {
			return nil
		}
		return list
	}
	tm := time.Unix(sec, nsec)
	switch {
	case bit(0):
		tm = tm.UTC()
	case bit(1):
		tm = tm.In(time.FixedZone(b, int(offset)))
	}
	var expires *time.Time
	if !bit(2) {
		e := tm.Truncate(time.Microsecond)
		expires = &e
	}
	keys := []snapshot.HMACKey{{ID: a, Secret: key, ExpiresAt: expires}, {ID: b, Secret: []byte(b)}}
	if bit(3) {
		keys = keys[:0]
		if bit(4) {
			keys = nil
		}
	}
	var policies []policy.Policy
	if !bit(5) {
		policies = []policy.Policy{}
		if !bit(6) {
			policies = append(policies, policy.Policy{ID: a, RoleTemplate: b, Environment: policy.Environment(a), MinTrustLevel: policy.TrustLevel(level),
				RequiredScopes: nilOr(7, []string{b}), AllowedEndpoints: []string{a + b}})
		}
	}
	s := &snapshot.Snapshot{
		Schema: a, Version: uint64(sec) ^ uint64(shape), Organization: b, OrganizationID: a + b, Environment: policy.Environment(b),
		IssuedAt: tm.Truncate(time.Second), Issuer: b + a,
		TokenKeys:   []snapshot.TokenKey{{ID: a, Algorithm: b, Key: key}},
		Revocations: []snapshot.Revocation{{TokenID: a, ExpiresAt: tm}, {TokenID: b, ExpiresAt: tm.Add(time.Duration(nsec))}},
		Agents: []snapshot.Agent{
			{ANSName: a, ID: b, Status: a, RoleTemplate: b, TrustLevel: policy.TrustLevel(level), TrustScore: score, Keys: keys},
			{ANSName: b, ID: a, Status: strings.ToUpper(a), TrustScore: -score / 3},
		},
		Bundle:            snapshot.Bundle{ID: b, Revision: a, Policies: policies},
		Upstream:          snapshot.UpstreamKey{ID: a, Secret: []byte(a)},
		ProtectedResource: snapshot.ProtectedResource{AuthorizationServers: nilOr(8, []string{a, b}), ScopesSupported: nilOr(9, []string{}), ResourceDocumentation: a},
		Settings:          snapshot.Settings{ClockSkewSeconds: int(offset), MaxStalenessSeconds: int(nsec)},
	}
	if bit(10) {
		s.ProtectedResource.ScopesSupported = []string{b, a}
	}
	if bit(11) {
		s.TokenKeys, s.Revocations, s.Agents = nil, nil, nil
	}
	if bit(12) {
		s.TokenKeys, s.Revocations, s.Agents = []snapshot.TokenKey{}, []snapshot.Revocation{}, []snapshot.Agent{}
	}
	return s
}

package gateway

import (
	"slices"
	"testing"
)

func TestHeaderMapSerialization(t *testing.T) {
	for _, m := range []headerMap{
		{},
		{{":status", "200"}},
		{{":path", "/mcp?x=1"}, {"x-a", ""}, {"x-a", "two"}, {"", "empty name"}},
	} {
		got, ok := deserializeMap(serializeMap(m))
		if !ok || !slices.Equal(got, m) {
			t.Errorf("round trip of %q gave %q, %v", m, got, ok)
		}
	}
	for _, bad := range [][]byte{
		{1, 0},       // short count
		{1, 0, 0, 0}, // a pair without sizes
		{1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 'a', 0}, // name longer than the data
		{255, 255, 255, 255, 0, 0, 0, 0},             // count beyond the data
	} {
		if m, ok := deserializeMap(bad); ok {
			t.Errorf("deserializeMap(%v) = %q, want a refusal", bad, m)
		}
	}
}

// FuzzDeserializeMap: any input either is refused or re-serializes to
// something that decodes to the same pairs.
func FuzzDeserializeMap(f *testing.F) {
	f.Add(serializeMap(headerMap{{":status", "200"}, {"a", "b"}}))
	f.Add([]byte{})
	f.Add([]byte{2, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := deserializeMap(b)
		if !ok {
			return
		}
		again, ok := deserializeMap(serializeMap(m))
		if !ok || !slices.Equal(again, m) {
			t.Fatalf("%q does not survive a round trip: %q", m, again)
		}
	})
}

func TestHeaderMapEdits(t *testing.T) {
	m := headerMap{{":path", "/"}, {"x-a", "1"}, {"x-b", "2"}, {"x-a", "3"}}
	m.replace("x-a", "new")
	if want := (headerMap{{":path", "/"}, {"x-a", "new"}, {"x-b", "2"}}); !slices.Equal(m, want) {
		t.Errorf("replace of a repeated header: %q, want %q", m, want)
	}
	m.replace("x-c", "added")
	m.add("x-b", "again")
	m.remove("x-b")
	if want := (headerMap{{":path", "/"}, {"x-a", "new"}, {"x-c", "added"}}); !slices.Equal(m, want) {
		t.Errorf("after add, replace and remove: %q, want %q", m, want)
	}
	if v, ok := m.get("x-a"); !ok || v != "new" {
		t.Errorf("get = %q, %v", v, ok)
	}
}

// Shared data behaves as in Envoy: the filter's replay protection and
// poller lease depend on it.
func TestSharedDataCompareAndSwap(t *testing.T) {
	var s sharedData
	s.init()
	if _, _, ok := s.get("k"); ok {
		t.Fatal("a key never written was found")
	}
	if st := s.set("k", []byte("a"), 12345); st != statusOK {
		t.Fatalf("creating a key with any CAS: %d, want OK (Envoy does not check it)", st)
	}
	_, cas1, _ := s.get("k")
	if cas1 == 0 {
		t.Fatal("CAS 0 after a write")
	}
	if st := s.set("k", []byte("b"), cas1+1); st != statusCasMismatch {
		t.Errorf("stale CAS: %d, want CasMismatch", st)
	}
	if st := s.set("k", []byte("b"), cas1); st != statusOK {
		t.Errorf("current CAS: %d, want OK", st)
	}
	if st := s.set("k", []byte("c"), cas1); st != statusCasMismatch {
		t.Errorf("the CAS of the previous value: %d, want CasMismatch", st)
	}
	if st := s.set("k", []byte("d"), 0); st != statusOK {
		t.Errorf("CAS 0 (unconditional): %d, want OK", st)
	}
	v, cas2, _ := s.get("k")
	if string(v) != "d" || cas2 == cas1 {
		t.Errorf("value %q CAS %d after writes (first CAS %d)", v, cas2, cas1)
	}
	if st := s.set("empty", []byte{}, 0); st != statusOK {
		t.Errorf("an empty value: %d", st)
	}
	if v, _, ok := s.get("empty"); !ok || len(v) != 0 {
		t.Errorf("empty value read back as %q, %v", v, ok)
	}
}

func TestSetBufferFollowsEnvoy(t *testing.T) {
	for _, tc := range []struct {
		name          string
		start, length int
		want          string
		ok            bool
	}{
		{"start 0 length 0 prepends", 0, 0, "XYbody", true},
		{"start 0 length covering replaces", 0, 4, "XY", true},
		{"start 0 length beyond replaces", 0, 1 << 30, "XY", true},
		{"start at the end appends", 4, 0, "bodyXY", true},
		{"start past the end appends", 9, 3, "bodyXY", true},
		{"a middle range is refused", 1, 2, "", false},
		{"a prefix is refused", 0, 2, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := setBuffer([]byte("body"), tc.start, tc.length, []byte("XY"))
			if ok != tc.ok || (ok && string(got) != tc.want) {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTargetURLKeepsTheRequestTarget(t *testing.T) {
	for _, tc := range []struct{ base, target, want string }{
		{"http://h:1", "/mcp", "/mcp"},
		{"http://h:1", "/a%2Fb?x=%20y", "/a%2Fb?x=%20y"},
		{"http://h:1/prefix/", "/mcp?q", "/prefix/mcp?q"},
		{"http://h:1", "/{id}", "/{id}"},
		{"http://h:1", "/bad%zzescape", "/bad%zzescape"},
	} {
		base, err := parseBase(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		u := targetURL(base, tc.target)
		if got := u.RequestURI(); got != tc.want || u.Host != "h:1" {
			t.Errorf("targetURL(%s, %s) sends %s to %s, want %s", tc.base, tc.target, got, u.Host, tc.want)
		}
	}
}

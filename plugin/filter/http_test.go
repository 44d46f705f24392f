package filter

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knaight/knaight/shared/sign"
)

func TestUpstreamTimestamp(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	for _, at := range []time.Time{
		time.Date(2026, 11, 23, 16, 4, 5, 123456789, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 1, 1, 2, 0, 0, 7, east), // the day before in UTC
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		guestEpoch,
		time.Now(),
	} {
		if got, want := upstreamTimestamp(at), at.UTC().Format(timestampLayout); got != want {
			t.Errorf("upstreamTimestamp(%v) = %q, want %q", at, got, want)
		}
	}
}

func TestLowerHeaderName(t *testing.T) {
	var names []string
	for _, alias := range []bool{false, true} {
		h := sign.Headers{Agent: "a", Timestamp: "t", Signature: "s", KeyID: "k", Organization: "o", Alias: alias}
		h.Apply(func(name, _ string) { names = append(names, name) })
	}
	for _, n := range append(names, "X-Other", "already-lower") {
		if got := lowerHeaderName(n); got != strings.ToLower(n) {
			t.Errorf("lowerHeaderName(%q) = %q", n, got)
		}
	}
}

// TestHeaderListMatchesEqualFold checks the lookups, which compare lengths
// before strings.EqualFold, against a plain strings.EqualFold scan.
func TestHeaderListMatchesEqualFold(t *testing.T) {
	lists := [][][2]string{
		{{":method", "POST"}, {"x-knaight-agent", "a"}, {"content-length", "3"}},
		{{"X-Knaight-Agent", "a"}, {"x-knaight-agent", "b"}, {"x-knaight-agent", "a"}},
		// The Kelvin sign folds to k: a name of another length that
		// strings.EqualFold matches.
		{{"x-\u212anaight-agent", "kelvin"}, {"authorization", "Bearer x"}},
		{{"\u017fomething", "long s"}, {"x-sck-ans-id", "alias"}},
		nil,
	}
	names := []string{"x-knaight-agent", "X-Knaight-Agent", "authorization", "something", "x-sck-ans-id", "X-Sck-Ans-Id", "absent"}
	for _, kv := range lists {
		l := newHeaderList(kv)
		for _, name := range names {
			var want []string
			for _, h := range kv {
				if strings.EqualFold(h[0], name) {
					want = append(want, h[1])
				}
			}
			if got := l.values(name); !slices.Equal(got, want) {
				t.Errorf("%v: values(%q) = %q, want %q", kv, name, got, want)
			}
			wantSole := len(want) == 1 && slices.ContainsFunc(kv, func(h [2]string) bool { return h[0] == name })
			if got, ok := l.sole(name); ok != wantSole || ok && got != want[0] {
				t.Errorf("%v: sole(%q) = %q, %v, want %v", kv, name, got, ok, wantSole)
			}
			got, ok := l.get(name)
			if ok != (len(want) > 0) || got != strings.Join(want, ",") {
				t.Errorf("%v: get(%q) = %q, %v, want %q", kv, name, got, ok, strings.Join(want, ","))
			}
		}
	}
}

// TestHeaderValuesOfASingleHeaderDoNotAllocate: sign.ParseHeaders asks for
// nine names per request.
func TestHeaderValuesOfASingleHeaderDoNotAllocate(t *testing.T) {
	l := newHeaderList([][2]string{{":method", "POST"}, {"x-knaight-agent", "a"}, {"x-knaight-timestamp", "t"}})
	var got []string
	if n := testing.AllocsPerRun(100, func() { got = l.values(sign.HeaderAgent) }); n != 0 {
		t.Errorf("values allocates %v times", n)
	}
	if !slices.Equal(got, []string{"a"}) {
		t.Errorf("values = %q", got)
	}
}

package policy

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Endpoint
		wantErr bool
	}{
		{name: "plain method is accepted", in: "tools/list", want: Endpoint{Method: "tools/list"}},
		{name: "method without slash is accepted", in: "initialize", want: Endpoint{Method: "initialize"}},
		{name: "lone star allows every method", in: "*", want: Endpoint{Method: "*"}},
		{name: "method wildcard is accepted", in: "notifications/*", want: Endpoint{Method: "notifications/*"}},
		{name: "method with all allowed punctuation is accepted", in: "x-y_z.v/W9*", want: Endpoint{Method: "x-y_z.v/W9*"}},
		{name: "bare tools/call allows every tool", in: "tools/call", want: Endpoint{Method: "tools/call"}},
		{name: "tool name glob is accepted", in: "tools/call:deploy_*", want: Endpoint{Method: "tools/call", Name: "deploy_*", HasName: true}},
		{name: "resource URI keeps its colons", in: "resources/read:file:///docs/*", want: Endpoint{Method: "resources/read", Name: "file:///docs/*", HasName: true}},
		{name: "prompt name is accepted", in: "prompts/get:summarize", want: Endpoint{Method: "prompts/get", Name: "summarize", HasName: true}},
		{name: "question mark and bracket in a name are literal", in: "tools/call:a?[b]", want: Endpoint{Method: "tools/call", Name: "a?[b]", HasName: true}},
		{name: "non-ASCII name is accepted", in: "prompts/get:résumé", want: Endpoint{Method: "prompts/get", Name: "résumé", HasName: true}},
		{name: "name of maximum length is accepted", in: "tools/call:" + strings.Repeat("a", MaxEndpointNameLen), want: Endpoint{Method: "tools/call", Name: strings.Repeat("a", MaxEndpointNameLen), HasName: true}},

		{name: "empty pattern is rejected", in: "", wantErr: true},
		{name: "empty method before a name is rejected", in: ":deploy", wantErr: true},
		{name: "empty name after colon is rejected", in: "tools/call:", wantErr: true},
		{name: "name after a method without names is rejected", in: "tools/list:x", wantErr: true},
		{name: "name after a method wildcard is rejected", in: "tools/*:deploy", wantErr: true},
		{name: "name after a lone star is rejected", in: "*:deploy", wantErr: true},
		{name: "space in method is rejected", in: "tools/ list", wantErr: true},
		{name: "question mark in method is rejected", in: "tools/?ist", wantErr: true},
		{name: "control character in name is rejected", in: "tools/call:a\nb", wantErr: true},
		{name: "C1 control character in name is rejected", in: "tools/call:a\u0085b", wantErr: true},
		{name: "invalid UTF-8 in name is rejected", in: "tools/call:a\xffb", wantErr: true},
		{name: "name over the limit is rejected", in: "tools/call:" + strings.Repeat("a", MaxEndpointNameLen+1), wantErr: true},
		{name: "pattern over the limit is rejected", in: strings.Repeat("a", MaxEndpointLen+1), wantErr: true},
		{name: "method case is not folded", in: "Tools/Call:x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEndpoint(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidEndpoint) {
					t.Fatalf("ParseEndpoint(%q) = %+v, %v; want ErrInvalidEndpoint", tt.in, got, err)
				}
				if got != (Endpoint{}) {
					t.Errorf("ParseEndpoint(%q) returned %+v with an error; want zero Endpoint", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEndpoint(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseEndpoint(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want the input %q", s, tt.in)
			}
		})
	}
}

func TestEndpointMatch(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		method  string
		arg     string
		want    bool
	}{
		{"lone star matches any method", "*", "tools/list", "", true},
		{"lone star matches any tool call", "*", "tools/call", "rm_rf", true},
		{"lone star matches an empty method", "*", "", "", true},
		{"exact method matches itself", "tools/list", "tools/list", "", true},
		{"exact method does not match a longer one", "tools/list", "tools/listx", "", false},
		{"exact method does not match a prefix", "tools/list", "tools/lis", "", false},
		{"method match is case-sensitive", "tools/list", "Tools/List", "", false},
		{"notifications wildcard matches initialized", "notifications/*", "notifications/initialized", "", true},
		{"notifications wildcard matches nested names", "notifications/*", "notifications/a/b", "", true},
		{"notifications wildcard matches the bare prefix", "notifications/*", "notifications/", "", true},
		{"notifications wildcard does not match without slash", "notifications/*", "notifications", "", false},
		{"notifications wildcard does not match other methods", "notifications/*", "tools/list", "", false},
		{"bare tools/call matches any tool", "tools/call", "tools/call", "deploy_prod", true},
		{"bare tools/call matches a call without a name", "tools/call", "tools/call", "", true},
		{"bare tools/call does not match tools/list", "tools/call", "tools/list", "", false},
		{"tool glob matches a tool with the prefix", "tools/call:deploy_*", "tools/call", "deploy_prod", true},
		{"tool glob matches the prefix alone", "tools/call:deploy_*", "tools/call", "deploy_", true},
		{"tool glob does not match another tool", "tools/call:deploy_*", "tools/call", "delete_prod", false},
		{"tool glob does not match a call without a name", "tools/call:deploy_*", "tools/call", "", false},
		{"tool glob does not match tools/list", "tools/call:deploy_*", "tools/list", "deploy_prod", false},
		{"tool name star matches a call without a name", "tools/call:*", "tools/call", "", true},
		{"exact tool matches only itself", "tools/call:deploy", "tools/call", "deploy", true},
		{"exact tool does not match a longer name", "tools/call:deploy", "tools/call", "deploy2", false},
		{"resource glob crosses slashes and colons", "resources/read:file:///docs/*", "resources/read", "file:///docs/a/b.md", true},
		{"resource glob does not match another scheme", "resources/read:file:///docs/*", "resources/read", "http:///docs/a", false},
		{"resource glob does not match a sibling dir", "resources/read:file:///docs/*", "resources/read", "file:///doc/a", false},
		{"infix star matches across colons", "resources/read:*://host/*", "resources/read", "https://host/x", true},
		{"question mark is literal", "tools/call:a?c", "tools/call", "abc", false},
		{"question mark matches itself", "tools/call:a?c", "tools/call", "a?c", true},
		{"bracket is literal", "tools/call:[ab]", "tools/call", "a", false},
		{"prompt glob matches", "prompts/get:sum*ize", "prompts/get", "summarize", true},
		{"method star prefix matches", "*/list", "resources/list", "", true},
		{"method star prefix does not match other suffixes", "*/list", "resources/read", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEndpoint(tt.pattern)
			if err != nil {
				t.Fatalf("ParseEndpoint(%q): %v", tt.pattern, err)
			}
			if got := e.Match(tt.method, tt.arg); got != tt.want {
				t.Fatalf("%q.Match(%q, %q) = %v, want %v", tt.pattern, tt.method, tt.arg, got, tt.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"**", "", true},
		{"a*", "a", true},
		{"*a", "ba", true},
		{"*a", "ab", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "abcbc", true},
		{"a*b*c", "acb", false},
		{"a**b", "ab", true},
		{"*aab", "aaaab", true},
		{"*ab*ab", "abab", true},
		{"*ab*ab", "abaab", true},
		{"*ab*ab", "aba", false},
		{"a*", "", false},
		{"*x*", "", false},
		{"a*a", "a", false},
		{"ab*ba", "aba", false},
		{"ab*ba", "abba", true},
		{"*aa*aa", "aaa", false},
		{"*aa*aa", "aaaa", true},
	}
	for _, tt := range tests {
		if got := glob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	e, err := ParseEndpoint("resources/read:file:///*/docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		e.Match("resources/read", "file:///srv/docs/a/b/c.md")
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times per call, want 0", allocs)
	}
}

// globRegexp is the reference semantics: '*' is ".*" (dot matching newline),
// everything else is literal, and the whole string must match.
func globRegexp(pattern string) *regexp.Regexp {
	parts := strings.Split(pattern, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`(?s)\A` + strings.Join(parts, ".*") + `\z`)
}

func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"*", ""}, {"a*b", "axxb"}, {"*ab*ab", "abaab"}, {"notifications/*", "notifications/initialized"},
		{"file:///docs/*", "file:///docs/a\nb"}, {"a?[b]*", "a?[b]"}, {"**a**", "bab"}, {"é*", "éa"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		// The regexp reference works on runes; on valid UTF-8 that is the
		// same as matching bytes, which is all a validated pattern contains.
		if !utf8.ValidString(pattern) || !utf8.ValidString(s) || len(pattern) > MaxEndpointLen || len(s) > 4*MaxEndpointLen {
			return
		}
		want := globRegexp(pattern).MatchString(s)
		if got := glob(pattern, s); got != want {
			t.Fatalf("glob(%q, %q) = %v, regexp reference says %v", pattern, s, got, want)
		}
	})
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{
		"*", "tools/list", "notifications/*", "tools/call", "tools/call:deploy_*",
		"resources/read:file:///docs/*", "prompts/get:x", ":x", "tools/call:", "tools/list:x", "a\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEndpoint(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidEndpoint) {
				t.Fatalf("ParseEndpoint(%q) error %v does not wrap ErrInvalidEndpoint", s, err)
			}
			return
		}
		if e.String() != s {
			t.Fatalf("ParseEndpoint(%q).String() = %q", s, e.String())
		}
		again, err := ParseEndpoint(e.String())
		if err != nil || again != e {
			t.Fatalf("ParseEndpoint(%q) = %+v, %v; want %+v", e.String(), again, err, e)
		}
		// A parsed pattern always matches the request it spells literally
		// when it has no wildcard.
		if !strings.Contains(s, "*") && !e.Match(e.Method, e.Name) {
			t.Fatalf("%q does not match its own literal method and name", s)
		}
	})
}

var benchSink bool

func BenchmarkMatch(b *testing.B) {
	eps := make([]Endpoint, 0, 4)
	for _, s := range []string{"notifications/*", "tools/call:deploy_*", "resources/read:file:///*/docs/*.md", "*"} {
		e, err := ParseEndpoint(s)
		if err != nil {
			b.Fatal(err)
		}
		eps = append(eps, e)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range eps {
			benchSink = e.Match("resources/read", "file:///srv/app/docs/guide/install.md")
		}
	}
}

// BenchmarkGlobAdversarial is input on which a backtracking glob does
// len(pattern)*len(s) work; glob must stay linear in len(s).
func BenchmarkGlobAdversarial(b *testing.B) {
	s := strings.Repeat("a", 1<<16)
	for _, pattern := range []string{
		"*" + strings.Repeat("a", MaxEndpointNameLen-3) + "b*",
		strings.Repeat("*a", MaxEndpointNameLen/2-1) + "*b",
	} {
		b.Run(pattern[:4], func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				benchSink = glob(pattern, s)
			}
		})
	}
}

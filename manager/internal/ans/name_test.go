package ans

import (
	"errors"
	"strings"
	"testing"
)

func TestParseNameV2(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Name   // zero when an error is expected
		wantErr string // substring of the error; "" when the parse succeeds
	}{
		{name: "plain name parses", in: "ans://v1.0.0.agent.example.com",
			want: Name{Form: FormV2, Version: "1.0.0", Host: "agent.example.com"}},
		{name: "two-label host is enough", in: "ans://v1.0.0.example.com",
			want: Name{Form: FormV2, Version: "1.0.0", Host: "example.com"}},
		{name: "single-label host is rejected", in: "ans://v1.0.0.localhost", wantErr: "at least two labels"},
		{name: "upper case is canonicalized", in: "ANS://V1.2.3.Agent.Example.COM",
			want: Name{Form: FormV2, Version: "1.2.3", Host: "agent.example.com"}},
		{name: "mixed-case prerelease is lowercased", in: "ans://v1.0.0-RC1.agent.example.com",
			want: Name{Form: FormV2, Version: "1.0.0-rc1", Host: "agent.example.com"}},
		{name: "prerelease with hyphens parses", in: "ans://v2.0.0-beta-2.agent.example.com",
			want: Name{Form: FormV2, Version: "2.0.0-beta-2", Host: "agent.example.com"}},
		{name: "numeric prerelease parses", in: "ans://v1.0.0-1.agent.example.com",
			want: Name{Form: FormV2, Version: "1.0.0-1", Host: "agent.example.com"}},
		{name: "numeric prerelease with leading zero is rejected", in: "ans://v1.0.0-01.agent.example.com", wantErr: "leading zero"},
		{name: "dot after prerelease starts the host", in: "ans://v1.0.0-rc.1.example.com",
			want: Name{Form: FormV2, Version: "1.0.0-rc", Host: "1.example.com"}},
		{name: "empty prerelease is rejected", in: "ans://v1.0.0-.agent.example.com", wantErr: "empty prerelease"},
		{name: "build metadata is rejected", in: "ans://v1.0.0+b1.agent.example.com", wantErr: "+build metadata is not allowed"},
		{name: "build metadata after prerelease is rejected", in: "ans://v1.0.0-a+b.agent.example.com", wantErr: "+build metadata is not allowed"},
		{name: "zero version parses", in: "ans://v0.0.0.agent.example.com",
			want: Name{Form: FormV2, Version: "0.0.0", Host: "agent.example.com"}},
		{name: "multi-digit components parse", in: "ans://v10.20.300.agent.example.com",
			want: Name{Form: FormV2, Version: "10.20.300", Host: "agent.example.com"}},
		{name: "two-component version is rejected", in: "ans://v1.0.agent.example.com", wantErr: "patch component"},
		{name: "leading zero in major is rejected", in: "ans://v01.0.0.agent.example.com", wantErr: "leading zero"},
		{name: "leading zero in patch is rejected", in: "ans://v1.0.00.agent.example.com", wantErr: "leading zero"},
		{name: "missing v is rejected", in: "ans://1.0.0.agent.example.com", wantErr: "must start with 'v'"},
		{name: "empty version component is rejected", in: "ans://v1..0.agent.example.com", wantErr: "minor component is empty"},
		{name: "other character in prerelease is rejected", in: "ans://v1.0.0-r~c.agent.example.com", wantErr: "prerelease may hold only"},
		{name: "negative-looking major is rejected", in: "ans://v-1.0.0.agent.example.com", wantErr: "version"},
		{name: "version without host is rejected", in: "ans://v1.0.0", wantErr: "want ans://vMAJOR.MINOR.PATCH.host"},
		{name: "version with empty host is rejected", in: "ans://v1.0.0.", wantErr: "host: empty"},
		{name: "nothing after scheme is rejected", in: "ans://", wantErr: "must start with 'v'"},
		{name: "63-byte label is accepted", in: "ans://v1.0.0." + strings.Repeat("a", 63) + ".example.com",
			want: Name{Form: FormV2, Version: "1.0.0", Host: strings.Repeat("a", 63) + ".example.com"}},
		{name: "64-byte label is rejected", in: "ans://v1.0.0." + strings.Repeat("a", 64) + ".example.com", wantErr: "host label 1"},
		{name: "253-byte host is accepted", in: "ans://v1.0.0." + longHost(253),
			want: Name{Form: FormV2, Version: "1.0.0", Host: longHost(253)}},
		{name: "254-byte host is rejected", in: "ans://v1.0.0." + longHost(254), wantErr: "more than 253"},
		{name: "trailing dot is rejected", in: "ans://v1.0.0.agent.example.com.", wantErr: "trailing dot"},
		{name: "empty label is rejected", in: "ans://v1.0.0.agent..example.com", wantErr: "host label 2 \"\": empty"},
		{name: "underscore is rejected", in: "ans://v1.0.0.my_agent.example.com", wantErr: "host label 1 \"my_agent\": '_' not allowed"},
		{name: "IDN in Unicode is rejected", in: "ans://v1.0.0.bücher.example.com", wantErr: "non-ASCII"},
		{name: "IDN in punycode is accepted", in: "ans://v1.0.0.xn--bcher-kva.example.com",
			want: Name{Form: FormV2, Version: "1.0.0", Host: "xn--bcher-kva.example.com"}},
		{name: "label starting with hyphen is rejected", in: "ans://v1.0.0.-agent.example.com", wantErr: "start or end with '-'"},
		{name: "label ending with hyphen is rejected", in: "ans://v1.0.0.agent-.example.com", wantErr: "start or end with '-'"},
		{name: "hyphen inside label is accepted", in: "ans://v1.0.0.my-agent.example.com",
			want: Name{Form: FormV2, Version: "1.0.0", Host: "my-agent.example.com"}},
		{name: "numeric inner label is accepted", in: "ans://v1.0.0.42.example.com",
			want: Name{Form: FormV2, Version: "1.0.0", Host: "42.example.com"}},
		{name: "all-numeric top-level label is rejected", in: "ans://v1.0.0.10.0.0.1", wantErr: "top-level label"},
		{name: "port is rejected", in: "ans://v1.0.0.agent.example.com:443", wantErr: "character ':' not allowed"},
		{name: "path is rejected", in: "ans://v1.0.0.agent.example.com/x", wantErr: "character '/' not allowed"},
		{name: "space is rejected", in: "ans://v1.0.0.agent.example .com", wantErr: "character ' ' not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, tt.in, tt.want, tt.wantErr)
		})
	}
}

func TestParseNameDraft00(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Name
		wantErr string
	}{
		{name: "a2a name with two-part version parses", in: "a2a://textProcessor.DocumentTranslation.AcmeCorp.v2.1",
			want: Name{Form: FormDraft00, Version: "2.1", Protocol: "a2a", AgentID: "textProcessor", Capability: "DocumentTranslation", Provider: "AcmeCorp"}},
		{name: "mcp name parses", in: "mcp://deployBot.Deploy.Knaight.v1.0",
			want: Name{Form: FormDraft00, Version: "1.0", Protocol: "mcp", AgentID: "deployBot", Capability: "Deploy", Provider: "Knaight"}},
		{name: "three-part version parses and keeps three parts", in: "acp://bot.Cap.Prov.v1.2.3",
			want: Name{Form: FormDraft00, Version: "1.2.3", Protocol: "acp", AgentID: "bot", Capability: "Cap", Provider: "Prov"}},
		{name: "four-part version is rejected", in: "a2a://bot.Cap.Prov.v1.2.3.4", wantErr: "want a2a://AgentID"},
		{name: "one-part version is rejected", in: "a2a://bot.Cap.Prov.v1", wantErr: "want a2a://AgentID"},
		{name: "other lowercase protocol parses", in: "my-proto2://bot.Cap.Prov.v0.1",
			want: Name{Form: FormDraft00, Version: "0.1", Protocol: "my-proto2", AgentID: "bot", Capability: "Cap", Provider: "Prov"}},
		{name: "upper-case protocol and V are canonicalized", in: "MCP://deployBot.Deploy.Knaight.V1.0",
			want: Name{Form: FormDraft00, Version: "1.0", Protocol: "mcp", AgentID: "deployBot", Capability: "Deploy", Provider: "Knaight"}},
		{name: "protocol starting with digit is rejected", in: "2a2://bot.Cap.Prov.v1.0", wantErr: "must start with a letter"},
		{name: "protocol with dot is rejected", in: "a.b://bot.Cap.Prov.v1.0", wantErr: "scheme \"a.b\""},
		{name: "underscores and hyphens in parts parse", in: "a2a://text_processor-1.Doc_Trans.Acme-Corp.v2.1",
			want: Name{Form: FormDraft00, Version: "2.1", Protocol: "a2a", AgentID: "text_processor-1", Capability: "Doc_Trans", Provider: "Acme-Corp"}},
		{name: "space in agent ID is rejected", in: "a2a://text processor.Doc.Acme.v2.1", wantErr: "agent ID"},
		{name: "empty capability is rejected", in: "a2a://bot..Acme.v2.1", wantErr: "capability: empty"},
		{name: "non-ASCII provider is rejected", in: "a2a://bot.Doc.Acmé.v2.1", wantErr: "provider"},
		{name: "version without v is rejected", in: "a2a://bot.Doc.Acme.2.1", wantErr: "must start with 'v'"},
		{name: "leading zero in minor is rejected", in: "a2a://bot.Doc.Acme.v2.01", wantErr: "leading zero"},
		{name: "prerelease is rejected", in: "a2a://bot.Doc.Acme.v2.1-rc1", wantErr: "minor component \"1-rc1\" is not a number"},
		{name: "missing provider is rejected", in: "a2a://bot.Doc.v2.1", wantErr: "want a2a://AgentID"},
		{name: "ans scheme is not draft-00", in: "ans://bot.Doc.Acme.v2.1", wantErr: "must start with 'v'"},
		{name: "missing scheme is rejected", in: "bot.Doc.Acme.v2.1", wantErr: "missing scheme"},
		{name: "empty scheme is rejected", in: "://bot.Doc.Acme.v2.1", wantErr: "scheme: empty"},
		{name: "empty name is rejected", in: "", wantErr: "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, tt.in, tt.want, tt.wantErr)
		})
	}
}

func TestParseNameLengthLimit(t *testing.T) {
	// Draft-00 parts have no length limit of their own, so the overall
	// limit is what stops them.
	base := "a2a://.Doc.Acme.v2.1"
	atLimit := "a2a://" + strings.Repeat("a", MaxNameLength-len(base)) + ".Doc.Acme.v2.1"
	if _, err := ParseName(atLimit); err != nil {
		t.Errorf("ParseName(%d bytes) = %v, want ok", len(atLimit), err)
	}
	over := "a2a://" + strings.Repeat("a", MaxNameLength-len(base)+1) + ".Doc.Acme.v2.1"
	if _, err := ParseName(over); !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "more than 512") {
		t.Errorf("ParseName(%d bytes) = %v, want length error", len(over), err)
	}
}

func checkParse(t *testing.T, in string, want Name, wantErr string) {
	t.Helper()
	got, err := ParseName(in)
	if wantErr != "" {
		if err == nil {
			t.Fatalf("ParseName(%q) = %+v, want error containing %q", in, got, wantErr)
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseName(%q) error %v does not wrap ErrInvalidName", in, err)
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseName(%q) error = %q, want it to contain %q", in, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("ParseName(%q) error = %v", in, err)
	}
	if got != want {
		t.Fatalf("ParseName(%q) = %+v, want %+v", in, got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() of parsed %q = %v", in, err)
	}
	again, err := ParseName(got.String())
	if err != nil || again != got {
		t.Errorf("ParseName(String()) = %+v, %v; want %+v", again, err, got)
	}
}

// longHost returns a valid host name of exactly n bytes: labels of up to
// 63 'a's, then ".com".
func longHost(n int) string {
	body := n - len(".com")
	var b strings.Builder
	for b.Len() < body {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		l := min(63, body-b.Len())
		if body-b.Len()-l == 1 { // a lone byte left could not hold ".x"
			l--
		}
		b.WriteString(strings.Repeat("a", l))
	}
	s := b.String() + ".com"
	if len(s) != n {
		panic("longHost: wrong length")
	}
	return s
}

func TestNameString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "canonical v2 is unchanged", in: "ans://v1.0.0.agent.example.com", want: "ans://v1.0.0.agent.example.com"},
		{name: "v2 is lowercased", in: "Ans://V1.0.0-Beta.Agent.EXAMPLE.com", want: "ans://v1.0.0-beta.agent.example.com"},
		{name: "draft-00 keeps its form and case", in: "a2a://textProcessor.DocumentTranslation.AcmeCorp.v2.1", want: "a2a://textProcessor.DocumentTranslation.AcmeCorp.v2.1"},
		{name: "draft-00 keeps a three-part version", in: "mcp://deployBot.Deploy.Knaight.v1.0.0", want: "mcp://deployBot.Deploy.Knaight.v1.0.0"},
		{name: "draft-00 scheme and v are lowercased", in: "MCP://deployBot.Deploy.Knaight.V1.0", want: "mcp://deployBot.Deploy.Knaight.v1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseName(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := n.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := mustParse(t, n.String()).String(); got != tt.want {
				t.Errorf("String() after reparse = %q, want %q", got, tt.want)
			}
		})
	}
	if got := (Name{}).String(); got != "" {
		t.Errorf("zero Name String() = %q, want \"\"", got)
	}
}

func mustParse(t *testing.T, s string) Name {
	t.Helper()
	n, err := ParseName(s)
	if err != nil {
		t.Fatalf("ParseName(%q) = %v", s, err)
	}
	return n
}

func TestNewV2(t *testing.T) {
	tests := []struct {
		name    string
		version string
		host    string
		want    string
		wantErr string
	}{
		{name: "bare version builds a name", version: "1.0.0", host: "agent.example.com", want: "ans://v1.0.0.agent.example.com"},
		{name: "version with v builds the same name", version: "v1.0.0", host: "agent.example.com", want: "ans://v1.0.0.agent.example.com"},
		{name: "upper case is canonicalized", version: "V1.0.0-RC1", host: "Agent.Example.com", want: "ans://v1.0.0-rc1.agent.example.com"},
		{name: "dotted prerelease is rejected, not split into the host", version: "1.0.0-rc.1", host: "example.com", wantErr: "must not contain '.'"},
		{name: "two-part version is rejected", version: "1.0", host: "example.com", wantErr: "want MAJOR.MINOR.PATCH"},
		{name: "leading zero is rejected", version: "1.02.0", host: "example.com", wantErr: "leading zero"},
		{name: "empty version is rejected", version: "", host: "example.com", wantErr: "want MAJOR.MINOR.PATCH"},
		{name: "single-label host is rejected", version: "1.0.0", host: "agent", wantErr: "at least two labels"},
		{name: "host with scheme is rejected", version: "1.0.0", host: "https://agent.example.com", wantErr: "host label 1"},
		{name: "empty host is rejected", version: "1.0.0", host: "", wantErr: "host: empty"},
		{name: "name over the length limit is rejected", version: "1.0.0-" + strings.Repeat("a", 300), host: longHost(253), wantErr: "more than 512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := NewV2(tt.version, tt.host)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewV2(%q, %q) = %+v, %v; want error containing %q", tt.version, tt.host, n, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewV2(%q, %q) error = %v", tt.version, tt.host, err)
			}
			if got := n.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if p := mustParse(t, tt.want); p != n {
				t.Errorf("NewV2 = %+v, ParseName = %+v", n, p)
			}
		})
	}
}

func TestNameValidate(t *testing.T) {
	tests := []struct {
		name    string
		n       Name
		wantErr string
	}{
		{name: "canonical v2 is valid", n: Name{Form: FormV2, Version: "1.0.0", Host: "agent.example.com"}},
		{name: "canonical draft-00 is valid", n: Name{Form: FormDraft00, Version: "2.1", Protocol: "a2a", AgentID: "x", Capability: "Y", Provider: "Z"}},
		{name: "zero Name is invalid", n: Name{}, wantErr: "unknown form"},
		{name: "upper-case host is not canonical", n: Name{Form: FormV2, Version: "1.0.0", Host: "Agent.example.com"}, wantErr: "canonical"},
		{name: "version with v is invalid", n: Name{Form: FormV2, Version: "v1.0.0", Host: "agent.example.com"}, wantErr: "version"},
		{name: "dotted prerelease smuggled into Version is not canonical", n: Name{Form: FormV2, Version: "1.0.0-rc.1", Host: "example.com"}, wantErr: "canonical"},
		{name: "v2 fields on draft-00 form are invalid", n: Name{Form: FormDraft00, Version: "1.0.0", Host: "agent.example.com"}, wantErr: "scheme: empty"},
		{name: "stray draft-00 field on v2 is not canonical", n: Name{Form: FormV2, Version: "1.0.0", Host: "agent.example.com", Provider: "X"}, wantErr: "canonical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.n.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHostLabel(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "simple name is lowercased", in: "DeployBot", want: "deploybot"},
		{name: "spaces and symbols become one hyphen", in: "Deploy Bot #2", want: "deploy-bot-2"},
		{name: "runs collapse", in: "a -_- b", want: "a-b"},
		{name: "ends are trimmed", in: "  --agent--  ", want: "agent"},
		{name: "underscore becomes hyphen", in: "text_processor", want: "text-processor"},
		{name: "non-ASCII becomes hyphen", in: "Bücher Bot", want: "b-cher-bot"},
		{name: "Kelvin sign is not folded to k", in: "\u212Aelvin", want: "elvin"},
		{name: "empty becomes agent", in: "", want: "agent"},
		{name: "only symbols becomes agent", in: "!!! ---", want: "agent"},
		{name: "only non-ASCII becomes agent", in: "日本語", want: "agent"},
		{name: "digits are kept", in: "007", want: "007"},
		{name: "long name is cut to 63", in: strings.Repeat("a", 100), want: strings.Repeat("a", 63)},
		{name: "cut does not leave a trailing hyphen", in: strings.Repeat("a", 62) + " bcd", want: strings.Repeat("a", 62)},
		{name: "cut keeps a word boundary at 63", in: strings.Repeat("a", 61) + " bcd", want: strings.Repeat("a", 61) + "-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HostLabel(tt.in)
			if got != tt.want {
				t.Fatalf("HostLabel(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if problem := checkLabel(got); problem != "" {
				t.Errorf("HostLabel(%q) = %q is not a valid label: %s", tt.in, got, problem)
			}
		})
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"ans://v1.0.0.agent.example.com",
		"ANS://V1.0.0-RC1.Agent.Example.COM",
		"ans://v1.0.0-rc.1.example.com",
		"ans://v01.0.0.agent.example.com",
		"ans://v1.0.0.agent.example.com.",
		"ans://v1.0.0.xn--bcher-kva.example.com",
		"a2a://textProcessor.DocumentTranslation.AcmeCorp.v2.1",
		"mcp://deployBot.Deploy.Knaight.v1.0.0",
		"MCP://deployBot.Deploy.Knaight.V1.0",
		"a2a://bot.Doc.Acme.v2.1-rc1",
		"",
		"://",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ParseName(%q) error %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		str := n.String()
		again, err := ParseName(str)
		if err != nil {
			t.Fatalf("ParseName(%q) = %+v, but ParseName(String() = %q) = %v", s, n, str, err)
		}
		if again != n {
			t.Fatalf("ParseName(%q) = %+v, reparse of %q = %+v", s, n, str, again)
		}
		if again.String() != str {
			t.Fatalf("String not idempotent: %q then %q", str, again.String())
		}
		if err := n.Validate(); err != nil {
			t.Fatalf("Validate() of parsed %q = %v", s, err)
		}
		if n.Form == FormV2 {
			if m, err := NewV2(n.Version, n.Host); err != nil || m != n {
				t.Fatalf("NewV2(%q, %q) = %+v, %v; want %+v", n.Version, n.Host, m, err, n)
			}
		}
	})
}

package filter

import (
	"errors"
	"strings"
	"testing"

	"github.com/knaight/knaight/shared/policy"
)

// ParseConfig is pure Go, so it is tested natively only; filter_test.go runs
// the same rules through OnPluginStart, natively and in the compiled binary.

func TestParseConfigAccepts(t *testing.T) {
	cases := []struct {
		config string
		want   Config
	}{
		{`{"organization":"acme","environment":"development"}`, Config{"acme", policy.Development}},
		{"\n { \"environment\" : \"staging\", \"organization\" : \"a-1\" } \n", Config{"a-1", policy.Staging}},
		{`{"organization":"` + strings.Repeat("a", 63) + `","environment":"production"}`, Config{strings.Repeat("a", 63), policy.Production}},
		{`{"organization":"7","environment":"production"}`, Config{"7", policy.Production}},
	}
	for _, tc := range cases {
		got, err := ParseConfig([]byte(tc.config))
		if err != nil {
			t.Errorf("ParseConfig(%s): %v", tc.config, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseConfig(%s) = %+v, want %+v", tc.config, got, tc.want)
		}
	}
}

func TestParseConfigRejects(t *testing.T) {
	cases := []struct {
		config, field string
	}{
		{``, ""},
		{`null`, ""},
		{`"acme"`, ""},
		{`{`, ""},
		{`{"organization":"acme","environment":"production"`, ""},
		{`{"organization":"acme","environment":"production"}}`, ""},
		{`{}`, "organization"},
		{`{"organization":null,"environment":"production"}`, "organization"},
		{`{"organization":"","environment":"production"}`, "organization"},
		{`{"organization":"-acme","environment":"production"}`, "organization"},
		{`{"organization":"acme-","environment":"production"}`, "organization"},
		{`{"organization":"ac_me","environment":"production"}`, "organization"},
		{`{"organization":"` + strings.Repeat("a", 64) + `","environment":"production"}`, "organization"},
		{`{"organization":["acme"],"environment":"production"}`, "organization"},
		{`{"organization":"acme","organization":"acme","environment":"production"}`, "organization"},
		{`{"organization":"acme","environment":"Production"}`, "environment"},
		{`{"organization":"acme","environment":" production"}`, "environment"},
		{`{"organization":"acme","environment":null}`, "environment"},
		{`{"organization":"acme","ENVIRONMENT":"production"}`, "ENVIRONMENT"},
		{`{"organization":"acme","environment":"production","snapshotUrl":"x"}`, "snapshotUrl"},
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.config))
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("ParseConfig(%s) = %v, want a *ConfigError", tc.config, err)
			continue
		}
		if ce.Field != tc.field {
			t.Errorf("ParseConfig(%s): field %q, want %q (%v)", tc.config, ce.Field, tc.field, err)
		}
		if tc.field != "" && !strings.Contains(err.Error(), `"`+tc.field+`"`) {
			t.Errorf("ParseConfig(%s): %q does not name the field", tc.config, err)
		}
	}
}

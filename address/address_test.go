package address

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct{ in, key string }{
		{"Demo@Example.TEST", "demo@example.test"},
		{"demo@example.test.", "demo@example.test"},
		{"demo@bücher.example", "demo@xn--bcher-kva.example"},
		{"demo@XN--BCHER-KVA.example", "demo@xn--bcher-kva.example"},
		{`"a@b"@example.test`, `"a@b"@example.test`},
		{"user%remote@example.test", "user%remote@example.test"},
		{"user@[192.0.2.1]", "user@[192.0.2.1]"},
	}
	for _, tt := range tests {
		a, err := Parse(tt.in)
		if err != nil || a.Key() != tt.key {
			t.Errorf("Parse(%q) = %q, %v; want %q", tt.in, a.Key(), err, tt.key)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{"user@remote@example.test", "noat", "@example.test", "user@",
		"a\x00b@example.test", "user@[192.0.2.1", "user@exa mple.test"} {
		if a, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %+v, %v; want a syntax error", in, a, err)
		}
	}
}

func TestIsLiteral(t *testing.T) {
	a, _ := Parse("user@[IPv6:2001:db8::1]")
	if !a.IsLiteral() {
		t.Error("IPv6 literal not recognized")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"demo@example.test", `"a@b"@x`, "u@[1.2.3.4]", "a@bücher.example.", "x@y@z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		// A parsed address is stable: parsing its string form gives it back.
		b, err := Parse(a.String())
		if err != nil || b != a {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v, %v", s, a, a.String(), b, err)
		}
		if a.Domain == "" || a.Local == "" {
			t.Fatalf("Parse(%q) = %+v: empty part", s, a)
		}
	})
}

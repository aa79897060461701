package smtp

import "testing"

// [postline patch] RFC 5321 §4.1.1.3: "RCPT TO:<Postmaster>" has no domain.
func TestParsePostmaster(t *testing.T) {
	for _, in := range []string{"<postmaster>", "<PostMaster>", "<postmaster> NOTIFY=NEVER"} {
		p := parser{s: in}
		if got, err := p.parsePostmaster(); err != nil || got != "postmaster" {
			t.Errorf("%q: got %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"<postmaster@example.org>", "postmaster", "<postmasterx>", "<postmaster>x"} {
		p := parser{s: in}
		if _, err := p.parsePostmaster(); err == nil {
			t.Errorf("%q accepted", in)
		}
		if p.s != in {
			t.Errorf("%q: input consumed on failure", in)
		}
	}
}

// [postline patch] a quoted local part keeps its quotes unless it is a
// plain dot-string, so a quoted "@" cannot pass for a domain separator.
func TestRequote(t *testing.T) {
	for in, want := range map[string]string{
		"demo": "demo", "first.last": "first.last", "user@remote": `"user@remote"`,
		"john smith": `"john smith"`, `a"b`: `"a\"b"`, ".lead": `".lead"`, "": `""`,
	} {
		if got := requote(in); got != want {
			t.Errorf("requote(%q) = %q, want %q", in, got, want)
		}
	}
}

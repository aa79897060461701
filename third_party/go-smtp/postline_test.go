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

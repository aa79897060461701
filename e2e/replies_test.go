package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// Every daemon answers a transaction with Postfix's plain texts and
// RFC 5248's codes (package reply), not go-smtp's playful defaults,
// which admins would otherwise find in their logs: the MSA after AUTH,
// the MTA on port 25 and the MDA's LMTP socket.
func TestPlainReplies(t *testing.T) {
	t.Parallel()
	s := StartStack(t)

	msa := secLogin(t, s) // checks AUTH's reply too
	transaction(t, "msa", msa, demoUser, "someone@example.net", "Ok: queued as ")

	mta := secDial(t, "", s.MTA)
	mta.expect("EHLO client.example.net", 250, "")
	transaction(t, "mta", mta, "someone@example.net", demoUser, "Ok: queued as ")

	conn, err := net.Dial("unix", filepath.Join(s.Dir, "var", "run", "mda.sock"))
	if err != nil {
		t.Fatal(err)
	}
	mda := secWrap(t, conn)
	mda.expectReply("greeting", 220, "")
	mda.expect("LHLO postline-mta", 250, "")
	transaction(t, "mda", mda, "someone@example.net ENVID=06K0AAAAAAAAAAAR", demoUser, "Ok: delivered as ")
}

// transaction sends one message and checks each reply's whole text.
func transaction(t *testing.T, who string, c *secConn, from, to, queued string) {
	t.Helper()
	mail := "MAIL FROM:<" + strings.Replace(from, " ", "> ", 1)
	if !strings.Contains(from, " ") {
		mail += ">"
	}
	for _, step := range []struct {
		cmd  string
		code int
		want string
	}{
		{"NOOP", 250, "2.0.0 Ok"},
		{mail, 250, "2.1.0 Ok"},
		{"RSET", 250, "2.0.0 Ok"},
		{mail, 250, "2.1.0 Ok"},
		{"RCPT TO:<" + to + ">", 250, "2.1.5 Ok"},
		{"DATA", 354, "End data with <CR><LF>.<CR><LF>"},
	} {
		if got := c.expect(step.cmd, step.code, ""); got != step.want {
			t.Errorf("%s: %s: got %q, want %q", who, secShort(step.cmd), got, step.want)
		}
	}
	got := c.expect("From: <"+from[:strings.IndexByte(from+" ", ' ')]+">\r\nSubject: plain\r\n\r\nbody\r\n.", 250, "2.0.0")
	if !strings.Contains(got, queued) {
		t.Errorf("%s: end of data: got %q, want %q…", who, got, queued)
	}
	if got := c.expect("QUIT", 221, "2.0.0"); got != "2.0.0 Bye" {
		t.Errorf("%s: QUIT: got %q", who, got)
	}
}

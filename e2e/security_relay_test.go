package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The MTA port takes mail for local users only, from anyone: it must not
// be talked into relaying by the old address tricks, each of which some
// MTA once routed to the remote host hidden in it. The domain that
// decides is the one the mail would be delivered to, and nothing refused
// may reach the queue.
func TestSecurityRelayTricks(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	c.expect("MAIL FROM:<someone@remote.test>", 250, "2.1.0")
	for _, tt := range []struct {
		rcpt string
		code int
		enh  string
		why  string
	}{
		// The "percent hack" of old sendmail routing: a local part, and no such user here.
		{"<user%remote.test@example.test>", 550, "5.1.1", "percent hack"},
		// UUCP bang path: also just an unknown local part.
		{"<remote.test!user@example.test>", 550, "5.1.1", "bang path"},
		// A source route (RFC 5321 §4.1.1.3, Appendix C): servers must
		// ignore the route, so the mailbox is remote.
		{"<@example.test:user@remote.test>", 554, "5.7.1", "source route"},
		{"<@example.test,@other.example:user@remote.test>", 554, "5.7.1", "source route of two hops"},
		// RFC 5321 §4.1.2: a quoted local part may hold "@"; it is still a
		// local part of example.test, naming no user there.
		{`<"user@remote.test"@example.test>`, 550, "5.1.1", "quoted @ in local part"},
		// An unquoted "@" in the local part is no address at all.
		{"<user@remote.test@example.test>", 501, "5.1.3", "two @"},
		// An address literal is not a local domain, even ours.
		{"<user@[127.0.0.1]>", 554, "5.7.1", "address literal"},
		{"<demo@[IPv6:::1]>", 554, "5.7.1", "IPv6 address literal"},
	} {
		c.write("RCPT TO:" + tt.rcpt + "\r\n")
		c.expectReply(tt.why+" "+tt.rcpt, tt.code, tt.enh)
	}
	c.expect("DATA", 502, "5.5.1") // no recipient was accepted
	c.expect("QUIT", 221, "2.0.0")
	secWantQueued(t, s, 0)
	if n := secSpool(t, s); n != 0 {
		t.Errorf("the spool holds %d messages, want none", n)
	}

	// A trailing dot (the absolute form of RFC 1034 §3.1) and any case
	// (RFC 5321 §2.4: domains are case-insensitive) still name demo.
	for _, rcpt := range []string{"demo@example.test.", "DEMO@Example.TEST"} {
		secSendMTA(t, s, "", rcpt, "Subject: to "+rcpt+"\r\n\r\nhi\r\n")
	}
	for _, got := range s.WaitForMail(demoUser, 2, 10*time.Second) {
		if !strings.HasPrefix(string(got), "Return-Path: <someone@remote.test>\nSubject: to ") {
			t.Errorf("demo got %q", got)
		}
	}
}

// An internationalized local domain is one domain, however it is
// written: the A-label form (RFC 5890) and, under SMTPUTF8 (RFC 6531),
// the U-label form reach the same Maildir, kept under the A-label name so
// that both spellings cannot become two mailboxes. A remote IDN is
// refused like any remote domain.
func TestSecurityRelayIDN(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Domains: `["example.test", "bücher.example"]`})
	s.Postline("anna-password\n", "user", "add", "anna@bücher.example")
	secSendMTA(t, s, "", "anna@xn--bcher-kva.example", "Subject: A-label\r\n\r\nhi\r\n")
	secSendMTA(t, s, " SMTPUTF8", "anna@bücher.example", "Subject: U-label\r\n\r\nhi\r\n")

	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	c.expect("MAIL FROM:<someone@remote.test> SMTPUTF8", 250, "2.1.0")
	c.expect("RCPT TO:<x@exämple.org>", 554, "5.7.1")
	c.expect("RCPT TO:<x@xn--exmple-cua.org>", 554, "5.7.1")
	c.expect("QUIT", 221, "2.0.0")

	got := s.WaitForMail("anna@xn--bcher-kva.example", 2, 10*time.Second)
	if len(got) != 2 {
		t.Errorf("anna's Maildir holds %d messages, want 2", len(got))
	}
	secWantQueued(t, s, 2)
	if _, err := os.Stat(filepath.Join(s.MailRoot, "bücher.example")); !os.IsNotExist(err) {
		t.Errorf("a Maildir tree under the U-label name exists (Stat: %v)", err)
	}
}

// The MSA is where users may relay: an authenticated submission to a
// remote domain is accepted, and queued (outbound delivery is not
// implemented yet, so it stays in the spool).
func TestSecurityMSARelaysForUsers(t *testing.T) {
	t.Parallel()
	// No DNS answers (nothing listens there), so the relay attempt is
	// deferred and the message stays queued for this check.
	s := StartStackWith(t, StackConfig{MTA: `dns_server = "127.0.0.1:9"` + "\n"})
	reply, err := s.Submit(Submission{To: []string{"friend@remote.test"}, Body: "Subject: out\r\n\r\nhi\r\n"})
	if err != nil || !strings.Contains(reply, "queued as") {
		t.Fatalf("submission to a remote domain: %q, %v; want it queued", reply, err)
	}
	secWantQueued(t, s, 1)
	if n := secSpool(t, s); n != 1 {
		t.Errorf("the spool holds %d messages, want the remote one", n)
	}
}

// The MTA port never authenticates: AUTH is neither offered nor
// accepted there, not even after STARTTLS, and EXTERNAL (which the MSA
// uses on the MTA's unix socket, where file permissions vouch for it)
// least of all. An AUTH= parameter on MAIL FROM (RFC 4954 §5) from a
// public client is no login either: it gets no relay rights.
func TestSecurityNoAuthOnMTAPort(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	if err := c.startTLS(secTLS()); err != nil {
		t.Fatal(err)
	}
	if ehlo := c.expect("EHLO client.example.net", 250, ""); strings.Contains(ehlo, "AUTH") {
		t.Errorf("the MTA port offers AUTH:\n%s", ehlo)
	}
	if code, text := c.auth(demoUser, demoPassword); code != 502 || !strings.HasPrefix(text, "5.5.1 ") {
		t.Errorf("AUTH PLAIN on the MTA port: %d %q, want 502 5.5.1", code, text)
	}
	c.expect("AUTH EXTERNAL =", 502, "5.5.1")
	c.expect("MAIL FROM:<"+demoUser+"> AUTH="+demoUser, 250, "2.1.0")
	c.expect("RCPT TO:<friend@remote.test>", 554, "5.7.1")
	c.expect("QUIT", 221, "2.0.0")
	secWantQueued(t, s, 0)
}

// secSendMTA sends one message from a remote sender to rcpt over the
// MTA port; mailParams follow MAIL FROM (e.g. " SMTPUTF8").
func secSendMTA(t *testing.T, s *Stack, mailParams, rcpt, msg string) {
	t.Helper()
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	c.expect("MAIL FROM:<someone@remote.test>"+mailParams, 250, "2.1.0")
	c.expect("RCPT TO:<"+rcpt+">", 250, "2.1.5")
	c.expect("DATA", 354, "")
	c.write(msg + ".\r\n")
	c.expectReply("end of data for "+rcpt, 250, "2.0.0")
	c.expect("QUIT", 221, "2.0.0")
}

package e2e

// SMTP smuggling (CVE-2023-51764 for Postfix, CVE-2023-51765 for
// Sendmail, CVE-2023-51766 for Exim): only <CRLF>.<CRLF> ends DATA (RFC
// 5321 §4.1.1.4), but servers that also took a bare LF or CR for a line
// end let a message carry a second, forged transaction through an
// outbound server that does not. postline must see one message, and
// store and pass it on with CRLF-only line ends (normalize) or refuse it
// (reject), so that it cannot carry the trick to the next hop either.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// secVectors are the end-of-data look-alikes of the smuggling research
// (SEC Consult, 2023): each must be message text, never an end.
var secVectors = []struct{ name, eod string }{
	{`LF.LF`, "\n.\n"},
	{`LF.CRLF`, "\n.\r\n"},
	{`CRLF.LF`, "\r\n.\n"},
	{`CR.CRLF`, "\r.\r\n"},
	{`CRLF.CR`, "\r\n.\r"},
}

// secSmuggled is the forged transaction after the fake end: to demo,
// from a sender that the outbound server in the middle would never have
// let its user write.
const secSmuggled = "MAIL FROM:<evil@remote.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n" +
	"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n"

// secCarrier is the message that carries vector; its one real end is the
// final <CRLF>.<CRLF> of secSmuggled.
func secCarrier(eod string) string { return "Subject: a\r\n\r\nfirst" + eod + secSmuggled }

// secCarriers adds one user per vector, v1@example.test..., so that each
// carrier lands in its own Maildir and any smuggled message in demo's.
func secCarriers(s *Stack) []string {
	var users []string
	for i := range secVectors {
		users = append(users, fmt.Sprintf("v%d@example.test", i+1))
		s.Postline("v-password\n", "user", "add", users[i])
	}
	return users
}

// Over the MTA port, in the default normalize mode, each vector is text
// inside one message: one reply (250) for the whole write, one message
// delivered, whose body shows the forged commands as lines, and no bare
// CR left in the stored file (the Maildir keeps LF line ends).
func TestSecuritySmugglingNormalized(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	users := secCarriers(s)
	for i, v := range secVectors {
		c := secStartData(t, s, users[i])
		c.write(secCarrier(v.eod))
		c.expectReply(v.name+": end of data", 250, "2.0.0")
		c.expect("QUIT", 221, "2.0.0") // a reply to a smuggled command would come first
	}
	secWantOneCarrierEach(t, s, users)
}

// With bare_newline = "reject" (Postfix's smtpd_forbid_bare_newline),
// each vector is refused with 550 5.5.2 and nothing is delivered. The
// submission port applies the same rule.
func TestSecuritySmugglingRejected(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: `bare_newline = "reject"` + "\n"})
	for _, v := range secVectors {
		c := secStartData(t, s, "postmaster@example.test")
		c.write(secCarrier(v.eod))
		c.expectReply(v.name+": end of data", 550, "5.5.2")
		c.expect("QUIT", 221, "2.0.0")
	}
	m := secSubmitData(t, s, "postmaster@example.test")
	m.write(secCarrier(secVectors[0].eod))
	m.expectReply("submission: end of data", 550, "5.5.2")
	m.expect("QUIT", 221, "2.0.0")
	secWantQueued(t, s, 0)
	secWantMail(t, s, demoUser, 0)
	secWantMail(t, s, "postmaster@example.test", 0)
}

// The submission port, after STARTTLS and AUTH, treats each vector as
// the MTA port does. (go-smtp's client would repair the bare line ends,
// so the bytes go over the TLS connection by hand.)
func TestSecuritySmugglingSubmission(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	users := secCarriers(s)
	for i, v := range secVectors {
		c := secSubmitData(t, s, users[i])
		c.write(secCarrier(v.eod))
		c.expectReply(v.name+": end of data", 250, "2.0.0")
		c.expect("QUIT", 221, "2.0.0")
	}
	secWantOneCarrierEach(t, s, users)
}

// secWantOneCarrierEach checks that each of users received exactly one
// message, holding the forged commands as text and no CR, and that demo,
// the forged recipient, received nothing.
func secWantOneCarrierEach(t *testing.T, s *Stack, users []string) {
	t.Helper()
	for i, u := range users {
		got := string(s.WaitForMail(u, 1, 10*time.Second)[0])
		// The forged commands are text, up to the real end of the data.
		// (After "\r\n.\r" the dot is unstuffed and the CR may become
		// a space, so the MAIL FROM line is not compared from its start.)
		if !strings.Contains(got, "MAIL FROM:<evil@remote.test>\n") ||
			!strings.HasSuffix(got, "\nRCPT TO:<demo@example.test>\nDATA\nSubject: smuggled\n\nsmuggled\n") {
			t.Errorf("%s: the forged transaction is not text of the message:\n%q", secVectors[i].name, got)
		}
		if strings.Contains(got, "\r") {
			t.Errorf("%s: the stored message has a bare CR:\n%q", secVectors[i].name, got)
		}
	}
	secWantQueued(t, s, len(users))
	waitSpoolEmpty(t, s, 10*time.Second) // what was queued is in its Maildir now
	for _, u := range users {
		secWantMail(t, s, u, 1)
	}
	secWantMail(t, s, demoUser, 0)
}

// BDAT (RFC 3030, which go-smtp always offers as CHUNKING) has no end
// marker to fake, but its chunks go through the same data rules: a bare
// LF becomes CRLF and a stray CR a space, so that the stored message is
// safe to pass on with DATA.
func TestSecurityBDATNormalized(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c := secBDATReady(t, s, demoUser)
	body := "Subject: bdat\r\n\r\nfirst\n.\nMAIL FROM:<evil@remote.test>\r\nstray\rCR\r\n"
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
	c.expectReply("BDAT LAST", 250, "2.0.0")
	got := string(s.WaitForMail(demoUser, 1, 10*time.Second)[0])
	if want := "Return-Path: <someone@remote.test>\nSubject: bdat\n\nfirst\n.\nMAIL FROM:<evil@remote.test>\nstray CR\n"; got != want {
		t.Errorf("delivered %q, want %q", got, want)
	}
}

// In reject mode a BDAT chunk with a bare LF is refused like DATA.
func TestSecurityBDATRejected(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: `bare_newline = "reject"` + "\n"})
	c := secBDATReady(t, s, demoUser)
	body := "Subject: bdat\r\n\r\nfirst\n.\nsecond\r\n"
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
	c.expectReply("BDAT LAST", 550, "5.5.2")
	c.expect("NOOP", 250, "2.0.0")
	secWantQueued(t, s, 0)
	secWantMail(t, s, demoUser, 0)
}

// BDAT chunks count against max_message_size together: the chunk that
// would exceed it gets 552 5.3.4 (RFC 1870, RFC 3463) and nothing is
// queued.
func TestSecurityBDATMessageSize(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: "max_message_size = 2000\n"})
	c := secBDATReady(t, s, demoUser)
	chunk := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 12)
	c.write(fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk))
	c.expectReply("first chunk", 250, "2.0.0")
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	c.expectReply("second chunk", 552, "5.3.4")
	c.expect("NOOP", 250, "2.0.0")
	secWantQueued(t, s, 0)
	if n := secSpool(t, s); n != 0 {
		t.Errorf("the spool holds %d messages", n)
	}
}

// max_header_size holds for a header sent with BDAT too.
func TestSecurityBDATHeaderSize(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_header_size = 2000\n"})
	c := secBDATReady(t, s, demoUser)
	msg := strings.Repeat("X-Filler: "+strings.Repeat("f", 88)+"\r\n", 25) + "\r\nbody\r\n"
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg))
	c.expectReply("2500-octet header", 552, "5.3.4")
	c.expect("NOOP", 250, "2.0.0")
	secWantQueued(t, s, 0)
}

// A client silent in the middle of a BDAT chunk is disconnected, as
// inside DATA. Were the session to go on, the rest of the chunk would be
// read as commands: message text turned into a transaction, smuggling
// by timing. So after the timeout nothing the client sends may be
// answered, and nothing is queued.
func TestSecurityBDATIdleMidChunk(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: `smtp_timeout = "2s"` + "\n"})
	c := secBDATReady(t, s, "postmaster@example.test")
	rest := "\r\n" + secSmuggled
	head := "Subject: slow\r\n\r\nfirst"
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(head)+len(rest), head))
	time.Sleep(3 * time.Second) // beyond smtp_timeout
	c.conn.Write([]byte(rest))  // an error here means the server hung up: fine
	if got := c.hangup("silent inside BDAT", 6*time.Second); len(got) > 0 && !strings.HasPrefix(string(got), "421 4.4.2 ") {
		t.Errorf("got %q from the server after the timeout, want at most 421 4.4.2 and a hang-up", got)
	}
	secWantQueued(t, s, 0)
	secWantMail(t, s, demoUser, 0)
}

// A BDAT chunk over max_message_size is refused at once (552 5.3.4) and
// then read and thrown away. A client silent in the middle of that chunk
// must be disconnected too: were the session to go on, the rest of the
// chunk would be read as commands.
func TestSecurityBDATIdleInRefusedChunk(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: "max_message_size = 2000\nsmtp_timeout = \"2s\"\n"})
	c := secBDATReady(t, s, "postmaster@example.test")
	head := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 21) + "first"
	rest := "\r\n" + secSmuggled
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(head)+len(rest), head))
	c.expectReply("BDAT over the size limit", 552, "5.3.4")
	time.Sleep(3 * time.Second)             // beyond smtp_timeout
	c.conn.Write([]byte(rest + "QUIT\r\n")) // an error here means the server hung up: fine
	got := string(c.hangup("silent inside the refused chunk", 8*time.Second))
	if got != "" && !strings.HasPrefix(got, "421 4.4.2 ") && !strings.HasPrefix(got, "221 2.0.0 ") {
		t.Errorf("got %q from the server after the silence, want nothing, 421 4.4.2, or QUIT's 221", got)
	}
	secWantQueued(t, s, 0)
	secWantMail(t, s, demoUser, 0)
}

// After a message is refused in the middle of DATA (here for a line over
// max_line_length), the server reads on to the <CRLF>.<CRLF> to answer.
// A client silent in that part for longer than smtp_timeout must be
// disconnected, never made to leave DATA there: the rest of its message
// would be read as commands. So nothing after the silence is answered
// but QUIT, if the server still waits, and nothing is queued.
func TestSecurityDataIdleAfterRefusal(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: `smtp_timeout = "2s"` + "\n", Limits: "max_line_length = 5000\n"})
	c := secStartData(t, s, "postmaster@example.test")
	// More than the 32 KiB the data reader reads at once, so the long
	// line is seen (and the message refused) before the silence.
	filler := strings.Repeat(strings.Repeat("y", 98)+"\r\n", 400)
	c.write("Subject: long\r\n\r\n" + strings.Repeat("x", 5001) + "\r\n" + filler + "more")
	time.Sleep(3 * time.Second) // beyond smtp_timeout
	c.conn.Write([]byte("\r\n" + secSmuggled + "QUIT\r\n"))
	got := string(c.hangup("silent after the refusal", 8*time.Second))
	refusedThenQuit := regexp.MustCompile(`^552 5\.3\.4 [^\n]*\n221 2\.0\.0 [^\n]*\n$`)
	if got != "" && !strings.HasPrefix(got, "421 4.4.2 ") && !refusedThenQuit.MatchString(got) {
		t.Errorf("got %q from the server after the silence, want nothing, 421 4.4.2, or the 552 and QUIT's 221", got)
	}
	secWantQueued(t, s, 0)
	secWantMail(t, s, demoUser, 0)
}

// secBDATReady opens an MTA connection and starts a transaction to rcpt,
// ready for BDAT.
func secBDATReady(t *testing.T, s *Stack, rcpt string) *secConn {
	t.Helper()
	c := secDial(t, "", s.MTA)
	if ehlo := c.expect("EHLO client.example.net", 250, ""); !secHasLine(ehlo, "CHUNKING") {
		t.Errorf("EHLO does not announce CHUNKING:\n%s", ehlo)
	}
	c.expect("MAIL FROM:<someone@remote.test>", 250, "2.1.0")
	c.expect("RCPT TO:<"+rcpt+">", 250, "2.1.5")
	return c
}

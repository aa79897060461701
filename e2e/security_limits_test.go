package e2e

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// max_message_size is announced (RFC 1870 SIZE) and enforced: at MAIL
// for a declared size, at the end of DATA for the real one, both with
// 552 5.3.4 (RFC 1870 §6.1, RFC 3463). The refused message is not
// queued, and the session goes on.
func TestSecurityMessageSize(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: "max_message_size = 10000\n"})
	c := secDial(t, "", s.MTA)
	if ehlo := c.expect("EHLO client.example.net", 250, ""); !secHasLine(ehlo, "SIZE 10000") {
		t.Errorf("EHLO does not announce SIZE 10000:\n%s", ehlo)
	}
	c.expect("MAIL FROM:<someone@remote.test> SIZE=10001", 552, "5.3.4")
	c.expect("MAIL FROM:<someone@remote.test> SIZE=9000", 250, "2.1.0") // a lie
	c.expect("RCPT TO:<"+demoUser+">", 250, "2.1.5")
	c.expect("DATA", 354, "")
	c.write("Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 120) + ".\r\n")
	c.expectReply("12 kB of DATA", 552, "5.3.4")
	c.expect("NOOP", 250, "2.0.0")
	secWantQueued(t, s, 0)
	if n := secSpool(t, s); n != 0 {
		t.Errorf("the spool holds %d messages after the refusal", n)
	}
	// The same session still sends a message of the right size.
	c.expect("MAIL FROM:<someone@remote.test>", 250, "2.1.0")
	c.expect("RCPT TO:<"+demoUser+">", 250, "2.1.5")
	c.expect("DATA", 354, "")
	c.write("Subject: small\r\n\r\nsmall\r\n.\r\n")
	c.expectReply("small message", 250, "2.0.0")
	s.WaitForMail(demoUser, 1, 10*time.Second)

	// The submission port announces the same limit (after TLS).
	m := secSubmitReady(t, s, "")
	if ehlo := m.expect("EHLO client.example.net", 250, ""); !secHasLine(ehlo, "SIZE 10000") {
		t.Errorf("submission EHLO does not announce SIZE 10000:\n%s", ehlo)
	}
}

// max_recipients bounds the work of one message: the recipient over the
// limit gets 452 4.5.3 (RFC 5321 §4.5.3.1.10: a temporary failure, the
// client sends the rest later), and the limit is announced (RFC 9422).
func TestSecurityMaxRecipients(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_recipients = 3\n"})
	c := secDial(t, "", s.MTA)
	if ehlo := c.expect("EHLO client.example.net", 250, ""); !secHasLine(ehlo, "LIMITS RCPTMAX=3") {
		t.Errorf("EHLO does not announce LIMITS RCPTMAX=3:\n%s", ehlo)
	}
	c.expect("MAIL FROM:<someone@remote.test>", 250, "2.1.0")
	for _, rcpt := range []string{demoUser, "postmaster@example.test", "postmaster@other.example"} {
		c.expect("RCPT TO:<"+rcpt+">", 250, "2.1.5")
	}
	c.expect("RCPT TO:<Demo@example.test>", 452, "4.5.3")
}

// RFC 5321 §4.5.3.1.4: a command line is at least 512 octets with its
// CRLF, and its extensions make MAIL and RCPT longer (RFC 3461 §4: ENVID
// and ORCPT add 600). limits.max_command_line (default 2048, Postfix's
// line_length_limit) bounds it: one of 2048 is served; a longer one is
// refused with 500 5.5.2 (§4.2.2: "command line too long") and the
// connection closed, since the rest of the line would be read as commands.
func TestSecurityCommandLineLimit(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	c.expect("NOOP "+strings.Repeat("x", 2048-len("NOOP \r\n")), 250, "2.0.0")
	c.write("NOOP " + strings.Repeat("x", 2100) + "\r\n")
	c.expectReply("2100-octet command", 500, "5.5.2")
	c.expectClosed("after the long command", 5*time.Second)
}

// Message lines are not command lines: RFC 5321 §4.5.3.1.6 sets 1000
// octets as a minimum, and real mail (HTML on one line, base64 without
// breaks) goes far beyond it, so a 20,000-octet line within the default
// max_line_length arrives intact.
func TestSecurityLongTextLineAccepted(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	line := strings.Repeat("0123456789", 2000)
	secSendMTA(t, s, "", demoUser, "Subject: long line\r\n\r\n"+line+"\r\n")
	if got := string(s.WaitForMail(demoUser, 1, 10*time.Second)[0]); got != "Return-Path: <someone@remote.test>\nSubject: long line\n\n"+line+"\n" {
		t.Errorf("the long line did not arrive intact (%d octets delivered)", len(got))
	}
}

// A line over max_line_length gets 552 5.3.4 at the end of DATA; the
// session stays usable and nothing is queued.
func TestSecurityLineLengthLimit(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_line_length = 5000\n"})
	c := secStartData(t, s, demoUser)
	c.write("Subject: long\r\n\r\n" + strings.Repeat("x", 5001) + "\r\nend\r\n.\r\n")
	c.expectReply("5001-octet line", 552, "5.3.4")
	c.expect("NOOP", 250, "2.0.0")
	secWantQueued(t, s, 0)
	// A line of exactly the limit passes.
	c.expect("MAIL FROM:<someone@remote.test>", 250, "2.1.0")
	c.expect("RCPT TO:<"+demoUser+">", 250, "2.1.5")
	c.expect("DATA", 354, "")
	c.write("Subject: long\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n.\r\n")
	c.expectReply("5000-octet line", 250, "2.0.0")
}

// A header block over max_header_size gets 552 5.3.4: header fields are
// parsed and held in memory by every hop (filters, the MSA's checks,
// IMAP servers), unlike the body. Nothing is queued.
func TestSecurityHeaderSizeLimit(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_header_size = 2000\n"})
	c := secStartData(t, s, demoUser)
	c.write(strings.Repeat("X-Filler: "+strings.Repeat("f", 88)+"\r\n", 25) + "\r\nbody\r\n.\r\n")
	c.expectReply("2500-octet header", 552, "5.3.4")
	c.expect("NOOP", 250, "2.0.0")
	secWantQueued(t, s, 0)
	if n := secSpool(t, s); n != 0 {
		t.Errorf("the spool holds %d messages after the refusal", n)
	}
}

// max_errors protocol errors end the session: the error over the limit
// is answered, then "421 4.7.0" (RFC 5321 §3.8: the server closes with
// 421) and the connection is closed, so one connection cannot probe the
// parser forever.
func TestSecurityMaxErrors(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_errors = 3\n"})
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	for range 4 { // the 4th error is still answered...
		c.expect("XYZW", 500, "5.5.2")
	}
	c.expectReply("after the 4th error", 421, "4.7.0") // ...then the session ends
	c.expectClosed("after too many errors", 5*time.Second)
}

// max_commands bounds the commands of one session (NOOP and RSET floods
// included): the one over the limit gets 421 4.7.0 and the connection
// is closed.
func TestSecurityMaxCommands(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_commands = 10\n"})
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	for range 9 {
		c.expect("NOOP", 250, "2.0.0")
	}
	c.expect("NOOP", 421, "4.7.0")
	c.expectClosed("after too many commands", 5*time.Second)
}

// max_connections_per_ip, with no trusted network, holds on every
// listener: the connection over the limit gets "421 4.7.0" (RFC 5321
// §4.2.2: service not available, closing) and is closed before any
// session starts (with no greeting on the implicit-TLS port, where the
// client expects a handshake); the connections already open are served,
// and a closed one frees its slot.
func TestSecurityConnectionsPerIP(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_connections_per_ip = 2\ntrusted_networks = []\n"})
	for _, port := range []struct{ name, addr string }{{"mta", s.MTA}, {"msa starttls", s.Submission}} {
		first, second := secDial(t, "", port.addr), secDial(t, "", port.addr)
		third := secConnect(t, "", port.addr)
		third.expectReply(port.name+": third connection", 421, "4.7.0")
		third.expectClosed(port.name+": third connection", 5*time.Second)
		first.expect("NOOP", 250, "2.0.0")
		second.expect("NOOP", 250, "2.0.0")
		first.expect("QUIT", 221, "2.0.0")
		first.expectClosed(port.name+": after QUIT", 5*time.Second)
		secDial(t, "", port.addr).expect("NOOP", 250, "2.0.0") // the freed slot
	}
	secDialTLS(t, s.Submissions) // both stay open until the test ends
	secDialTLS(t, s.Submissions)
	if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Submissions, secTLS()); err == nil {
		conn.Close()
		t.Errorf("implicit TLS: third connection completed its handshake")
	}
	s.WaitLog(`"limit":"max_connections_per_ip"`, 1, logWait)
}

// Loopback is trusted by default (like Postfix's mynetworks), so the
// per-address limit does not apply to local clients such as webmail.
func TestSecurityTrustedNetworksExempt(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_connections_per_ip = 2\n"})
	for range 3 {
		secDial(t, "", s.MTA).expect("NOOP", 250, "2.0.0")
	}
}

// max_connections bounds the connections from all addresses together,
// trusted ones included.
func TestSecurityMaxConnections(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_connections = 2\n"})
	first, second := secDial(t, "127.0.0.11", s.MTA), secDial(t, "127.0.0.12", s.MTA)
	third := secConnect(t, "127.0.0.13", s.MTA)
	third.expectReply("third connection", 421, "4.7.0")
	third.expectClosed("third connection", 5*time.Second)
	first.expect("NOOP", 250, "2.0.0")
	second.expect("NOOP", 250, "2.0.0")
	s.WaitLog(`"limit":"max_connections"`, 1, logWait)
}

// Slowloris, first form: a client that says nothing after EHLO is told
// "421 4.4.2" (RFC 5321 §4.5.3.2 asks for timeouts; 4.4.2 is "bad
// connection") once smtp_timeout passes, and disconnected.
func TestSecurityIdleClientTimeout(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: `smtp_timeout = "2s"` + "\n"})
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	start := time.Now()
	c.expectReply("silence", 421, "4.4.2")
	if took := time.Since(start); took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("421 after %v, want about smtp_timeout (2s)", took)
	}
	c.expectClosed("after the idle timeout", 5*time.Second)
}

// Slowloris inside DATA: go-smtp's own timeout covers command lines only,
// so the data reader has its own. A client that starts a message and
// falls silent loses its connection after smtp_timeout, and the partial
// message is not queued.
func TestSecurityIdleInsideData(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: `smtp_timeout = "2s"` + "\n"})
	c := secStartData(t, s, demoUser)
	c.write("Subject: slo")
	start := time.Now()
	// The server may say 421 4.4.2 before it hangs up; it must hang up.
	if got := c.hangup("silent inside DATA", 6*time.Second); len(got) > 0 && !strings.HasPrefix(string(got), "421 4.4.2 ") {
		t.Errorf("got %q before the hang-up, want nothing or 421 4.4.2", got)
	}
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("hung up after %v, before smtp_timeout (2s)", took)
	}
	secWantQueued(t, s, 0)
	if n := secSpool(t, s); n != 0 {
		t.Errorf("the spool holds %d messages", n)
	}
}

// The idle timeout inside DATA is for silence, not for the whole
// message: a slow but steady client (one byte every 500 ms, for twice
// smtp_timeout) keeps its connection and its message is queued.
func TestSecuritySlowSteadyDataAccepted(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: `smtp_timeout = "2s"` + "\n"})
	c := secStartData(t, s, demoUser)
	c.write("Subject: slow\r\n\r\n")
	secDribble(t, c, "dribbled")
	c.write("\r\n.\r\n")
	c.expectReply("end of the slow message", 250, "2.0.0")
	if got := string(s.WaitForMail(demoUser, 1, 10*time.Second)[0]); got != "Return-Path: <someone@remote.test>\nSubject: slow\n\ndribbled\n" {
		t.Errorf("delivered %q", got)
	}
}

// secDribble sends text one byte every 500 ms, and fails, with what the
// server said, if the server hangs up meanwhile.
func secDribble(t *testing.T, c *secConn, text string) {
	t.Helper()
	start := time.Now()
	for i := range len(text) {
		time.Sleep(500 * time.Millisecond)
		if _, err := c.conn.Write([]byte{text[i]}); err != nil {
			said := c.hangup("dribbling", time.Second)
			t.Fatalf("the server hung up after %v of one byte every 500 ms (%v), having said %q",
				time.Since(start).Round(100*time.Millisecond), err, said)
		}
	}
}

// secHasLine reports whether the multi-line reply text has the line.
func secHasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// The same holds after a refusal inside DATA: the server reads on to the
// end of the data before it answers 552, and a client still sending,
// slowly but steadily, must get that 552 (a permanent refusal, so its
// queue gives up) rather than a 421 that makes it send the refused
// message again and again.
func TestSecuritySlowSteadyAfterRefusal(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: `smtp_timeout = "2s"` + "\n", Limits: "max_line_length = 5000\n"})
	c := secStartData(t, s, demoUser)
	c.write("Subject: long\r\n\r\n" + strings.Repeat("x", 5001) + "\r\n")
	secDribble(t, c, "dribbled")
	c.write("\r\n.\r\n")
	c.expectReply("end of the refused message", 552, "5.3.4")
	c.expect("NOOP", 250, "2.0.0")
	secWantQueued(t, s, 0)
}

package e2e

// The security tests speak SMTP byte by byte: go-smtp's client (like any
// good client) would normalize bare line ends, refuse long lines and
// pipeline only what it may, so it cannot send what an attacker sends.
// Helper names start with "sec" so that they never clash with the shared
// harness.

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secConn is one raw SMTP connection: bytes go out exactly as given,
// replies are read one at a time.
type secConn struct {
	t    *testing.T
	conn net.Conn
	r    *textproto.Reader
}

// secTLS is the client side of every TLS handshake in these tests: the
// stack's certificate is self-signed.
func secTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test"}
}

// secDial connects to addr from the local address from ("" for any) and
// reads the 220 greeting.
func secDial(t *testing.T, from, addr string) *secConn {
	t.Helper()
	c := secConnect(t, from, addr)
	c.expectReply("greeting", 220, "")
	return c
}

// secConnect connects to addr from the local address from ("" for any)
// and reads nothing.
func secConnect(t *testing.T, from, addr string) *secConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return secWrap(t, conn)
}

// secDialTLS connects to an implicit-TLS port (RFC 8314) and reads the greeting.
func secDialTLS(t *testing.T, addr string) *secConn {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, secTLS())
	if err != nil {
		t.Fatal(err)
	}
	c := secWrap(t, conn)
	c.expectReply("greeting", 220, "")
	return c
}

func secWrap(t *testing.T, conn net.Conn) *secConn {
	t.Cleanup(func() { conn.Close() })
	return &secConn{t: t, conn: conn, r: textproto.NewReader(bufio.NewReader(conn))}
}

// write sends s as it is, in one write.
func (c *secConn) write(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %.40q: %v", s, err)
	}
}

// reply reads one (possibly multi-line) reply. text is its lines joined
// by "\n", each without the code; the last one starts with the enhanced
// status code.
func (c *secConn) reply() (code int, text string, err error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c.r.ReadResponse(0)
}

// expectReply reads one reply and checks its code and enhanced code
// (enh "" checks the code only). It returns the text.
func (c *secConn) expectReply(what string, code int, enh string) string {
	c.t.Helper()
	got, text, err := c.reply()
	if err != nil {
		c.t.Fatalf("%s: no reply: %v", what, err)
	}
	last := text[strings.LastIndexByte(text, '\n')+1:]
	if got != code || enh != "" && !strings.HasPrefix(last, enh+" ") {
		c.t.Errorf("%s: got %d %q, want %d %s", what, got, text, code, enh)
	}
	return text
}

// expect sends one command line and checks the reply.
func (c *secConn) expect(line string, code int, enh string) string {
	c.t.Helper()
	c.write(line + "\r\n")
	return c.expectReply(secShort(line), code, enh)
}

// startTLS upgrades the connection after EHLO; RFC 3207 §4.2 requires a
// new EHLO afterwards, which is left to the caller.
func (c *secConn) startTLS(cfg *tls.Config) error {
	c.t.Helper()
	c.expect("STARTTLS", 220, "2.0.0")
	return c.handshake(cfg)
}

// handshake starts TLS on the connection as it is; replies buffered
// before it are dropped, as RFC 3207 §4.2 wants of both sides.
func (c *secConn) handshake(cfg *tls.Config) error {
	tc := tls.Client(c.conn, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	c.conn, c.r = tc, textproto.NewReader(bufio.NewReader(tc))
	return nil
}

// auth sends AUTH PLAIN with an initial response (RFC 4954 §4) and
// returns the reply.
func (c *secConn) auth(user, pass string) (int, string) {
	c.t.Helper()
	c.write("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + "\r\n")
	code, text, err := c.reply()
	if err != nil {
		c.t.Fatalf("AUTH: no reply: %v", err)
	}
	return code, text
}

// expectClosed reads until the server closes the connection and fails if
// that takes longer than within or if any reply comes first.
func (c *secConn) expectClosed(what string, within time.Duration) {
	c.t.Helper()
	if b := c.hangup(what, within); len(b) > 0 {
		c.t.Errorf("%s: got %q before the connection closed", what, b)
	}
}

// hangup reads until the server closes the connection (EOF or reset)
// and returns what came before; it fails if that takes longer than within.
func (c *secConn) hangup(what string, within time.Duration) []byte {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(c.r.R)
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		c.t.Errorf("%s: connection still open after %v", what, within)
	}
	return b
}

func secShort(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// secStartData opens a connection to the MTA port and starts a
// transaction from a remote sender to rcpt, up to the 354 of DATA.
func secStartData(t *testing.T, s *Stack, rcpt string) *secConn {
	t.Helper()
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	c.expect("MAIL FROM:<someone@remote.test>", 250, "2.1.0")
	c.expect("RCPT TO:<"+rcpt+">", 250, "2.1.5")
	c.expect("DATA", 354, "")
	return c
}

// secLogin opens a submission connection: STARTTLS, then AUTH as the
// demo user, which must be answered 235 2.7.0 Authentication successful.
func secLogin(t *testing.T, s *Stack) *secConn {
	t.Helper()
	c := secDial(t, "", s.Submission)
	c.expect("EHLO client.example.net", 250, "")
	if err := c.startTLS(secTLS()); err != nil {
		t.Fatal(err)
	}
	c.expect("EHLO client.example.net", 250, "")
	if code, text := c.auth(demoUser, demoPassword); code != 235 || text != "2.7.0 Authentication successful" {
		t.Fatalf("AUTH: %d %s", code, text)
	}
	return c
}

// secSubmitData opens a submission connection (STARTTLS, AUTH as the
// demo user) and starts a transaction from demo to rcpt up to the 354 of
// DATA.
func secSubmitData(t *testing.T, s *Stack, rcpt string) *secConn {
	t.Helper()
	c := secLogin(t, s)
	c.expect("MAIL FROM:<"+demoUser+">", 250, "2.1.0")
	c.expect("RCPT TO:<"+rcpt+">", 250, "2.1.5")
	c.expect("DATA", 354, "")
	return c
}

// secSettle is how long the tests give a message that should not be
// queued to show up before they conclude that nothing (more) was. It is
// not for the log to catch up: the MTA writes "queued" before its 250,
// and a line written is in the log at once (see stackLog).
const secSettle = 300 * time.Millisecond

// secWantQueued waits secSettle and checks that the MTA has queued want
// messages in all since the stack started.
func secWantQueued(t *testing.T, s *Stack, want int) {
	t.Helper()
	time.Sleep(secSettle)
	if got := strings.Count(s.Log(), `"message":"queued"`); got != want {
		t.Errorf("the MTA queued %d messages, want %d", got, want)
	}
}

// secSpool counts the envelopes in the MTA's spool: messages queued and
// not yet delivered.
func secSpool(t *testing.T, s *Stack) int {
	t.Helper()
	return len(queuedEnvelopes(t, s))
}

// secMail counts the messages in address's Maildir new/ (0 if there is
// no Maildir yet).
func secMail(s *Stack, address string) int {
	entries, _ := os.ReadDir(filepath.Join(s.Mailbox(address), "new"))
	return len(entries)
}

// secWantMail checks that address's Maildir holds exactly want messages;
// call it once the wanted messages arrived (Stack.WaitForMail) and the
// queue manager had time for more.
func secWantMail(t *testing.T, s *Stack, address string, want int) {
	t.Helper()
	if got := secMail(s, address); got != want {
		t.Errorf("%s has %d messages, want %d", address, got, want)
	}
}

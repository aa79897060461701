package e2e

import (
	"crypto/tls"
	"errors"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// wantReply fails unless err is an SMTP reply with code and enhanced code.
func wantReply(t *testing.T, what string, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) {
		t.Fatalf("%s: got %v, want %d %v", what, err, code, enh)
	}
	if serr.Code != code || serr.EnhancedCode != enh {
		t.Errorf("%s: got %d %v %q, want %d %v", what, serr.Code, serr.EnhancedCode, serr.Message, code, enh)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	msg := "Subject: x\r\n\r\nx\r\n"

	_, err := s.Submit(Submission{Pass: "wrong", To: []string{demoUser}, Body: msg})
	wantReply(t, "wrong password", err, 535, smtp.EnhancedCode{5, 7, 8})

	_, err = s.Submit(Submission{User: "nobody@example.test", Pass: "x", To: []string{demoUser}, Body: msg})
	wantReply(t, "unknown user's login", err, 535, smtp.EnhancedCode{5, 7, 8})

	_, err = s.Submit(Submission{From: "other@example.test", To: []string{demoUser}, Body: msg})
	wantReply(t, "foreign sender", err, 553, smtp.EnhancedCode{5, 7, 1})

	_, err = s.Submit(Submission{To: []string{"nobody@example.test"}, Body: msg})
	wantReply(t, "unknown local recipient via MSA", err, 550, smtp.EnhancedCode{5, 1, 1})

	c := dialMTA(t, s)
	if err := c.Mail("someone@elsewhere.test", nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "relay via MTA", c.Rcpt("victim@elsewhere.test", nil), 554, smtp.EnhancedCode{5, 7, 1})
	wantReply(t, "unknown user via MTA", c.Rcpt("nobody@example.test", nil), 550, smtp.EnhancedCode{5, 1, 1})
	if err := c.Rcpt("postmaster@example.test", nil); err != nil {
		t.Errorf("postmaster@ refused: %v", err)
	}
}

func dialMTA(t *testing.T, s *Stack) *smtp.Client {
	t.Helper()
	return dialMTAHelo(t, s, "client.example.net")
}

// dialMTAHelo connects to the MTA's public port and greets it as helo.
func dialMTAHelo(t *testing.T, s *Stack, helo string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(s.MTA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello(helo); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMailBeforeAuth(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c, err := smtp.DialStartTLS(s.Submission, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantReply(t, "MAIL before AUTH", c.Mail(demoUser, nil), 530, smtp.EnhancedCode{5, 7, 0})
	// After a successful AUTH the same connection may send.
	if err := c.Auth(sasl.NewPlainClient("", demoUser, demoPassword)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(demoUser, nil); err != nil {
		t.Fatal(err)
	}
}

// Before STARTTLS, AUTH is neither advertised nor accepted (RFC 4954 §4),
// so a password never crosses the network in clear.
func TestNoAuthBeforeTLS(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	conn, err := textproto.Dial("tcp", s.Submission)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, _, err := conn.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	id, _ := conn.Cmd("EHLO client.example.net")
	conn.StartResponse(id)
	_, ehlo, err := conn.ReadResponse(250)
	conn.EndResponse(id)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(ehlo, "STARTTLS") || contains(ehlo, "AUTH") {
		t.Errorf("EHLO before TLS: %q; want STARTTLS and no AUTH", ehlo)
	}
	id, _ = conn.Cmd("AUTH PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AGRlbW8tcGFzc3dvcmQ=")
	conn.StartResponse(id)
	code, text, _ := conn.ReadResponse(0)
	conn.EndResponse(id)
	if code != 530 || text != "5.7.0 Must issue a STARTTLS command first" {
		t.Errorf("AUTH before TLS: %d %q; want 530 5.7.0", code, text)
	}
}

func contains(ehlo, ext string) bool {
	for _, line := range strings.Split(ehlo, "\n") {
		if line == ext || strings.HasPrefix(line, ext+" ") {
			return true
		}
	}
	return false
}

// RFC 5321 §4.5.1: "RCPT TO:<Postmaster>" without a domain must be
// accepted; it reaches postmaster at the first local domain.
func TestBarePostmaster(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	body := "Subject: to postmaster\r\nMessage-ID: <pm-1@example.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n\r\nhello\r\n"
	c := dialMTA(t, s)
	if err := c.SendMail("someone@remote.test", []string{"Postmaster"}, strings.NewReader(body)); err != nil {
		t.Fatalf("inbound to <Postmaster>: %v", err)
	}
	if _, err := s.Submit(Submission{To: []string{"postmaster"}, Body: body}); err != nil {
		t.Fatalf("submission to <postmaster>: %v", err)
	}
	for _, got := range s.WaitForMail("postmaster@example.test", 2, 10*time.Second) {
		// One from each sender, in either order.
		if g := string(got); g != string(withReturnPath("someone@remote.test", body)) && g != string(withReturnPath(demoUser, body)) {
			t.Errorf("got %q", got)
		}
	}
}

// Refused recipients count as errors (Postfix's smtpd_hard_error_limit):
// a client probing for addresses is cut off with 421 4.7.0.
func TestAddressProbingIsCutOff(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Limits: "max_errors = 3\n"})
	c := dialMTA(t, s)
	if err := c.Mail("prober@remote.test", nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "1st unknown", c.Rcpt("a@example.test", nil), 550, smtp.EnhancedCode{5, 1, 1})
	wantReply(t, "2nd unknown", c.Rcpt("b@example.test", nil), 550, smtp.EnhancedCode{5, 1, 1})
	wantReply(t, "3rd unknown", c.Rcpt("c@example.test", nil), 421, smtp.EnhancedCode{4, 7, 0})
	if err := c.Noop(); err == nil {
		t.Error("connection still open after 421")
	}
}

// RFC 5321 §6.3: a message with more Received: fields than mta.hop_limit
// is in a loop and is refused with 554 5.4.6, never queued.
func TestHopLimitStopsLoops(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{MTA: "hop_limit = 3\n"})
	hops := strings.Repeat("Received: from a.example by b.example; Sun, 22 Nov 2026 06:00:00 +0000\r\n", 4)
	c := dialMTA(t, s)
	err := c.SendMail("someone@remote.test", []string{demoUser}, strings.NewReader(hops+"Subject: loop\r\n\r\nx\r\n"))
	wantReply(t, "4 hops", err, 554, smtp.EnhancedCode{5, 4, 6})
	ok := strings.Repeat("Received: from a.example by b.example; Sun, 22 Nov 2026 06:00:00 +0000\r\n", 3)
	if err := c.SendMail("someone@remote.test", []string{demoUser}, strings.NewReader(ok+"Subject: fine\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("3 hops: %v", err)
	}
	if got := s.WaitForMail(demoUser, 1, 10*time.Second); !strings.Contains(string(got[0]), "Subject: fine") {
		t.Errorf("delivered %q", got[0])
	}
}

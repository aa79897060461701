package e2e

// AUTH before TLS (530 5.7.0, not even advertised) is TestNoAuthBeforeTLS
// in refusal_test.go; a wrong password's 535 is in TestRefusals. These
// tests cover what makes guessing passwords slow and then futile.

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Each failure delays the 535 5.7.8 (RFC 4954 §6) by one more second,
// up to msa.auth_max_delay: online guessing gets slower with each try,
// whichever mechanism it uses.
func TestSecurityAuthFailureDelay(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{MSA: `auth_max_delay = "2s"` + "\n"})
	c := secSubmitReady(t, s, "")
	var took []time.Duration
	for i, login := range []bool{false, true, false} { // PLAIN, LOGIN, PLAIN
		start := time.Now()
		code, text := c.authWith(login, demoUser, "wrong-password")
		took = append(took, time.Since(start))
		if code != 535 || !strings.HasPrefix(text, "5.7.8 ") {
			t.Errorf("failure %d: %d %q, want 535 5.7.8", i+1, code, text)
		}
	}
	t.Logf("535 replies took %v", took)
	// Slack below: timers; above: bcrypt on a busy machine.
	if took[0] < 900*time.Millisecond || took[0] > 1800*time.Millisecond {
		t.Errorf("first failure answered after %v, want about 1s", took[0])
	}
	if took[1] < 1900*time.Millisecond {
		t.Errorf("second failure answered after %v, want about 2s", took[1])
	}
	if took[2] > 2800*time.Millisecond {
		t.Errorf("third failure answered after %v, want the 2s of auth_max_delay at most", took[2])
	}
	// The right password still works: three failures are below the lockout.
	if code, text := c.auth(demoUser, demoPassword); code != 235 {
		t.Errorf("right password: %d %q, want 235", code, text)
	}
}

// msa.auth_failures_per_account failures lock the account out for every
// client, on any connection and from any address, even with the right
// password (454 4.7.0, RFC 4954 §6: temporary failure); other accounts
// are not affected. The log tells fail2ban which address and account.
func TestSecurityAuthLockoutPerAccount(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{MSA: "auth_failures_per_account = 3\nauth_max_delay = \"0s\"\n"})
	s.Postline("bob-password\n", "user", "add", "bob@example.test")
	guesser := secSubmitReady(t, s, "127.0.0.1")
	for i := range 3 {
		if code, text := guesser.auth(demoUser, "guess"); code != 535 {
			t.Fatalf("guess %d: %d %q, want 535", i+1, code, text)
		}
	}
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		c := secSubmitReady(t, s, from)
		if code, text := c.auth(demoUser, demoPassword); code != 454 || !strings.HasPrefix(text, "4.7.0 ") {
			t.Errorf("right password from %s after the lockout: %d %q, want 454 4.7.0", from, code, text)
		}
		// Another account on the same connection is not locked.
		if code, text := c.auth("bob@example.test", "bob-password"); code != 235 {
			t.Errorf("other account from %s: %d %q, want 235", from, code, text)
		}
	}
	secWantLogLine(t, s, "authentication lockout started", "127.0.0.1", demoUser)
}

// msa.auth_failures_per_ip failures from one address, here each on
// another account, lock that address out for every account; a client
// at another address logs in as before.
func TestSecurityAuthLockoutPerIP(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{MSA: "auth_failures_per_ip = 3\nauth_max_delay = \"0s\"\n"})
	guesser := secSubmitReady(t, s, "127.0.0.3")
	for _, user := range []string{"alice@example.test", "bob@example.test", "carol@example.test"} {
		if code, text := guesser.auth(user, "guess"); code != 535 {
			t.Fatalf("guess for %s: %d %q, want 535", user, code, text)
		}
	}
	if code, text := guesser.auth(demoUser, demoPassword); code != 454 || !strings.HasPrefix(text, "4.7.0 ") {
		t.Errorf("fourth account from the guessing address: %d %q, want 454 4.7.0", code, text)
	}
	if code, text := secSubmitReady(t, s, "127.0.0.3").auth(demoUser, demoPassword); code != 454 {
		t.Errorf("new connection from the guessing address: %d %q, want 454", code, text)
	}
	if code, text := secSubmitReady(t, s, "127.0.0.4").auth(demoUser, demoPassword); code != 235 {
		t.Errorf("login from another address: %d %q, want 235", code, text)
	}
	secWantLogLine(t, s, "authentication lockout started", "127.0.0.3", "carol@example.test")
}

// secSubmitReady connects to the submission port from the local address
// from ("" for any), starts TLS and greets: ready for AUTH.
func secSubmitReady(t *testing.T, s *Stack, from string) *secConn {
	t.Helper()
	c := secDial(t, from, s.Submission)
	c.expect("EHLO client.example.net", 250, "")
	if err := c.startTLS(secTLS()); err != nil {
		t.Fatal(err)
	}
	c.expect("EHLO client.example.net", 250, "")
	return c
}

// authWith logs in with AUTH LOGIN (the server asks "Username:" then
// "Password:") if login is set, else with AUTH PLAIN.
func (c *secConn) authWith(login bool, user, pass string) (int, string) {
	c.t.Helper()
	if !login {
		return c.auth(user, pass)
	}
	b64 := base64.StdEncoding.EncodeToString
	c.expect("AUTH LOGIN", 334, "")
	c.expect(b64([]byte(user)), 334, "")
	c.write(b64([]byte(pass)) + "\r\n")
	code, text, err := c.reply()
	if err != nil {
		c.t.Fatalf("AUTH LOGIN: %v", err)
	}
	return code, text
}

// secWantLogLine waits for a JSON log line with message msg whose "ip"
// and "user" fields are ip and user.
func secWantLogLine(t *testing.T, s *Stack, msg, ip, user string) {
	t.Helper()
	waitLogEvent(t, s, msg, func(ev map[string]any) bool { return ev["ip"] == ip && ev["user"] == user })
}

// With msa.check_header_from, the sender rule of MAIL FROM (553 5.7.1,
// RFC 6409 §6.1 lets the MSA enforce it) also holds for the From: header
// that recipients see: a user cannot sign as someone else, neither alone,
// nor among several authors, nor on a folded line, nor in a second
// From field. The refusal comes at
// the end of DATA and nothing is queued. The user's own address passes
// with a display name and in any case.
func TestSecurityHeaderFromChecked(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{MSA: "check_header_from = true\n"})
	for _, from := range []string{
		"Mallory <other@example.test>",
		"demo@example.test, other@example.test",
		"Demo\r\n <other@example.test>",
		"\"demo@example.test\" <other@example.test>",
		"demo@example.test\r\nFrom: other@example.test", // RFC 5322 §3.6: one From field only
	} {
		_, err := s.Submit(Submission{To: []string{demoUser}, Body: "From: " + from + "\r\nSubject: forged\r\n\r\nx\r\n"})
		wantReply(t, "From: "+from, err, 553, smtp.EnhancedCode{5, 7, 1})
	}
	mine := "From: \"Demo User\" <Demo@Example.TEST>\r\nSubject: mine\r\n\r\nx\r\n"
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: mine}); err != nil {
		t.Fatalf("own From: header refused: %v", err)
	}
	if got := string(s.WaitForMail(demoUser, 1, 10*time.Second)[0]); !strings.Contains(got, "Subject: mine\n") {
		t.Errorf("delivered %q, want the message with the user's own From:", got)
	}
	secWantQueued(t, s, 1)
	secWantMail(t, s, demoUser, 1)
}

// Without the option (the default) the From: header is the user's
// business, as with most MSAs: mailing lists and "on behalf of" mail
// need it.
func TestSecurityHeaderFromUnchecked(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	body := "From: Someone Else <other@example.test>\r\nSubject: on behalf\r\n\r\nx\r\n"
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: body}); err != nil {
		t.Fatalf("foreign From: header refused without check_header_from: %v", err)
	}
	got := string(s.WaitForMail(demoUser, 1, 10*time.Second)[0])
	if !strings.Contains(got, "From: Someone Else <other@example.test>\n") {
		t.Errorf("delivered %q", got)
	}
}

package e2e

// Outbound relay with the real binaries: demo submits to other domains,
// the MTA finds their MX hosts in the test's DNS and delivers to SMTP
// sinks that accept, refuse or defer each recipient as scripted; what
// fails comes back to demo as an RFC 3464 bounce, read from the Maildir.

import (
	"bytes"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// RFC 5321 §5.1: MX hosts are tried by preference. One that refuses the
// connection, or drops it before its greeting, hands the message to the
// next; a host behind one that works never hears of it.
func TestRelayMXOrderAndFallback(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	dropping := n.Sink(sinkOptions{CloseAtConnect: true})
	backup := n.Sink(sinkOptions{})
	best, second := n.Sink(sinkOptions{}), n.Sink(sinkOptions{})
	n.DNS.Add(t,
		"fallback.test. MX 10 mx1.fallback.test.", "mx1.fallback.test. A "+n.DeadAddr(),
		"fallback.test. MX 20 mx2.fallback.test.", "mx2.fallback.test. A "+dropping.IP,
		"fallback.test. MX 30 mx3.fallback.test.", "mx3.fallback.test. A "+backup.IP,
		"preferred.test. MX 20 mx2.preferred.test.", "mx2.preferred.test. A "+second.IP,
		"preferred.test. MX 10 mx1.preferred.test.", "mx1.preferred.test. A "+best.IP)
	s := n.Stack(relayConfig{})

	msg := relayMessage("mx order", "user@fallback.test", "user@preferred.test")
	id := submitRelay(t, s, msg, "user@fallback.test", "user@preferred.test")
	got := backup.WaitMessages(t, 1, 10*time.Second)[0]
	checkRelayed(t, got, []string{"user@fallback.test"}, msg)
	checkRelayed(t, best.WaitMessages(t, 1, 10*time.Second)[0], []string{"user@preferred.test"}, msg)
	waitSpoolEmpty(t, s, 5*time.Second)

	if dropping.Conns() != 1 {
		t.Errorf("MX 20 (drops connections) had %d connections, want 1", dropping.Conns())
	}
	if second.Conns() != 0 {
		t.Errorf("MX 20 of preferred.test had %d connections, want none: MX 10 took the message", second.Conns())
	}
	// Wait for both lines, not for what else happened (log_test.go).
	events := waitEvents(t, s, "host not usable, trying the next",
		func(evs []map[string]any) bool { return len(fieldOf(evs, id, "host")) >= 2 })
	if unusable := fieldOf(events, id, "host"); !slices.Equal(unusable, []string{"mx1.fallback.test", "mx2.fallback.test"}) {
		t.Errorf("hosts logged as not usable: %v, want mx1 (refused), then mx2 (dropped) of fallback.test", unusable)
	}
}

// checkRelayed checks one message a sink accepted: demo's envelope, the
// recipients wanted, EHLO with the configured hostname, and the
// submitted header and body in the data.
func checkRelayed(t *testing.T, got sinkMsg, rcpts []string, msg string) {
	t.Helper()
	if got.From != demoUser || !slices.Equal(got.To, rcpts) {
		t.Errorf("envelope MAIL FROM:<%s> RCPT TO:%v, want <%s> %v", got.From, got.To, demoUser, rcpts)
	}
	if got.Helo != "mail.example.test" {
		t.Errorf("EHLO %q, want the configured hostname mail.example.test", got.Helo)
	}
	header, body, _ := strings.Cut(msg, "\r\n\r\n")
	for _, line := range strings.Split(header, "\r\n") {
		if !bytes.Contains(got.Data, []byte(line+"\r\n")) {
			t.Errorf("relayed message lacks %q:\n%s", line, got.Data)
		}
	}
	if !bytes.HasSuffix(got.Data, []byte("\r\n\r\n"+body)) {
		t.Errorf("relayed message does not end with the body %q:\n%s", body, got.Data)
	}
	if !bytes.Contains(got.Data, []byte("Message-ID: ")) {
		t.Errorf("relayed message has no Message-ID (the MSA adds one):\n%s", got.Data)
	}
}

// RFC 5321 §5.1: a domain without MX records is its own mail host
// (implicit MX), reached through its A record.
func TestRelayImplicitMX(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	host := n.Sink(sinkOptions{})
	n.DNS.Add(t, "nomx.test. A "+host.IP, "nomx.test. TXT \"v=spf1 -all\"")
	s := n.Stack(relayConfig{})

	msg := relayMessage("implicit mx", "user@nomx.test")
	submitRelay(t, s, msg, "user@nomx.test")
	checkRelayed(t, host.WaitMessages(t, 1, 10*time.Second)[0], []string{"user@nomx.test"}, msg)
	waitSpoolEmpty(t, s, 5*time.Second)
}

// A DNS server that fails (SERVFAIL) says nothing about the domain: the
// recipient waits (4.4.3) and gets the message once DNS answers again.
func TestRelayDNSFailureDefers(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	host := n.Sink(sinkOptions{})
	n.DNS.Add(t, "flaky.test. MX 10 mx.flaky.test.", "mx.flaky.test. A "+host.IP)
	n.DNS.Fail("flaky.test", dns.RcodeServerFailure)
	s := n.Stack(relayConfig{})

	id := submitRelay(t, s, relayMessage("dns failure", "user@flaky.test"), "user@flaky.test")
	if env := waitEnvelope(t, s, id, attempted); !strings.HasPrefix(env.Recipients[0].LastError, "451 4.4.3 ") {
		t.Errorf("last error %q, want 451 4.4.3 (DNS failure)", env.Recipients[0].LastError)
	}
	n.DNS.Fail("flaky.test", dns.RcodeSuccess)
	host.WaitMessages(t, 1, 10*time.Second)
	waitSpoolEmpty(t, s, 5*time.Second)
	secWantMail(t, s, demoUser, 0)
}

// RFC 7505: "MX 0 ." says a domain takes no mail. The recipient bounces
// at once with 5.1.10, and the bounce is checked field by field.
func TestRelayNullMXBounces(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	n.DNS.Add(t, "nomail.test. MX 0 .")
	s := n.Stack(relayConfig{})

	subject := "to a domain without mail"
	start := time.Now()
	submitRelay(t, s, relayMessage(subject, "user@nomail.test"), "user@nomail.test")
	raw := s.WaitForMail(demoUser, 1, 10*time.Second)[0]
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("bounce took %v: a null MX must fail at the first attempt", d)
	}
	b := parseBounce(t, raw)
	checkBounceEnvelope(t, b, raw, subject)
	if len(b.Recipients) != 1 {
		t.Fatalf("bounce reports %d recipients, want 1", len(b.Recipients))
	}
	r := b.Recipient(t, "user@nomail.test")
	wantFields(t, r, map[string]string{"Action": "failed", "Status": "5.1.10", "Remote-MTA": ""})
	if !strings.Contains(r.Get("Diagnostic-Code"), "null MX") {
		t.Errorf("Diagnostic-Code %q does not name the null MX", r.Get("Diagnostic-Code"))
	}
	if !strings.Contains(b.Text, "<user@nomail.test>") {
		t.Errorf("the text part does not name the recipient:\n%s", b.Text)
	}
	waitSpoolEmpty(t, s, 5*time.Second)
}

// wantFields checks fields of one field group; "" wants the field absent.
func wantFields(t *testing.T, h textproto.MIMEHeader, want map[string]string) {
	t.Helper()
	for name, value := range want {
		if got := h.Get(name); got != value {
			t.Errorf("%s: %q, want %q", name, got, value)
		}
	}
}

// A domain that does not exist (NXDOMAIN) bounces at once with 5.1.2.
func TestRelayNXDOMAINBounces(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	n.DNS.Add(t, "exists.test. MX 10 mx.exists.test.")
	s := n.Stack(relayConfig{})

	subject := "to a domain that does not exist"
	submitRelay(t, s, relayMessage(subject, "user@nowhere.test"), "user@nowhere.test")
	raw := s.WaitForMail(demoUser, 1, 10*time.Second)[0]
	b := parseBounce(t, raw)
	checkBounceEnvelope(t, b, raw, subject)
	r := b.Recipient(t, "user@nowhere.test")
	wantFields(t, r, map[string]string{"Action": "failed", "Status": "5.1.2", "Remote-MTA": ""})
	if !strings.Contains(r.Get("Diagnostic-Code"), "NXDOMAIN") {
		t.Errorf("Diagnostic-Code %q does not say NXDOMAIN", r.Get("Diagnostic-Code"))
	}
}

// One transaction, three answers: a accepted, b refused for good, c
// deferred. Only a gets the message at first; b bounces with the
// server's own words; c gets it on the retry.
func TestRelayMixedRecipientResults(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: func(rcpt string, try int) sinkReply {
		switch {
		case rcpt == "b@mixed.test":
			return rcptRefuse(550, "5.1.1", "b@mixed.test: no such user here")
		case rcpt == "c@mixed.test" && try == 1:
			return rcptRefuse(451, "4.2.1", "c@mixed.test: mailbox busy, try later")
		}
		return rcptOK
	}})
	n.DNS.Add(t, "mixed.test. MX 10 mx.mixed.test.", "mx.mixed.test. A "+mx.IP)
	s := n.Stack(relayConfig{})

	subject := "three recipients, three answers"
	rcpts := []string{"a@mixed.test", "b@mixed.test", "c@mixed.test"}
	msg := relayMessage(subject, rcpts...)
	id := submitRelay(t, s, msg, rcpts...)

	got := mx.WaitMessages(t, 2, 10*time.Second)
	checkRelayed(t, got[0], []string{"a@mixed.test"}, msg)
	checkRelayed(t, got[1], []string{"c@mixed.test"}, msg)
	raw := s.WaitForMail(demoUser, 1, 10*time.Second)[0]
	waitSpoolEmpty(t, s, 5*time.Second)
	for rcpt, want := range map[string]int{"a@mixed.test": 1, "b@mixed.test": 1, "c@mixed.test": 2} {
		if got := mx.Tries(rcpt); got != want {
			t.Errorf("the MX saw RCPT TO:<%s> %d times, want %d", rcpt, got, want)
		}
	}

	b := parseBounce(t, raw)
	checkBounceEnvelope(t, b, raw, subject)
	if len(b.Recipients) != 1 {
		t.Fatalf("bounce reports %d recipients, want only b", len(b.Recipients))
	}
	r := b.Recipient(t, "b@mixed.test")
	wantFields(t, r, map[string]string{"Action": "failed", "Status": "5.1.1", "Remote-MTA": "dns; mx.mixed.test"})
	if d := r.Get("Diagnostic-Code"); d != "smtp; 550 5.1.1 b@mixed.test: no such user here" {
		t.Errorf("Diagnostic-Code %q, want the server's reply", d)
	}
	if text := strings.Join(strings.Fields(b.Text), " "); !strings.Contains(text,
		"<b@mixed.test>: host mx.mixed.test said: 550 5.1.1 b@mixed.test: no such user here") {
		t.Errorf("the text part does not quote the server:\n%s", b.Text)
	}
	if strings.Contains(b.Text, "<a@mixed.test>") || strings.Contains(b.Text, "<c@mixed.test>") {
		t.Errorf("the bounce reports delivered recipients:\n%s", b.Text)
	}
	// Wait for both lines, not for what else happened (log_test.go).
	events := waitEvents(t, s, "delivered",
		func(evs []map[string]any) bool { return len(fieldOf(evs, id, "rcpt")) >= 2 })
	if delivered := fieldOf(events, id, "rcpt"); !slices.Equal(delivered, []string{"a@mixed.test", "c@mixed.test"}) {
		t.Errorf("recipients of %s logged as delivered: %v, want a, then c", id, delivered)
	}
}

// A 4xx defers the recipient; the retry after retry_min delivers.
func TestRelayRetryAfter4xx(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: firstTry(rcptRefuse(451, "4.3.0", "not now"))})
	n.DNS.Add(t, "later.test. MX 10 mx.later.test.", "mx.later.test. A "+mx.IP)
	s := n.Stack(relayConfig{RetryMin: "1s"})

	start := time.Now()
	msg := relayMessage("retry after 4xx", "user@later.test")
	submitRelay(t, s, msg, "user@later.test")
	checkRelayed(t, mx.WaitMessages(t, 1, 10*time.Second)[0], []string{"user@later.test"}, msg)
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("delivered after %v, want about retry_min (1s) after the first try", d)
	}
	if tries := mx.Tries("user@later.test"); tries != 2 {
		t.Errorf("the MX saw the recipient %d times, want 2", tries)
	}
	waitSpoolEmpty(t, s, 5*time.Second)
	secWantMail(t, s, demoUser, 0)
}

// firstTry gives reply to each recipient's first RCPT, then accepts.
func firstTry(reply sinkReply) sinkScript {
	return func(_ string, try int) sinkReply {
		if try == 1 {
			return reply
		}
		return rcptOK
	}
}

// `postline queue flush` retries a deferred recipient now, long before
// its next attempt.
func TestRelayRetryAfterQueueFlush(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: firstTry(rcptRefuse(451, "4.3.0", "not now"))})
	n.DNS.Add(t, "later.test. MX 10 mx.later.test.", "mx.later.test. A "+mx.IP)
	s := n.Stack(relayConfig{RetryMin: "1h", RetryMax: "2h"})

	msg := relayMessage("retry after flush", "user@later.test")
	id := submitRelay(t, s, msg, "user@later.test")
	next := waitEnvelope(t, s, id, attempted).Recipients[0].NextAttempt
	if until := time.Until(next); until < 50*time.Minute {
		t.Fatalf("next attempt in %v, want about retry_min (1h)", until)
	}
	out, err := runPostline(s.Config, "", "queue", "flush")
	if err != nil && strings.Contains(out, `unknown command "queue"`) {
		t.Skipf("`postline queue flush` does not exist yet (cmd/postline/queue.go): %s", firstLine(out))
	}
	if err != nil {
		t.Fatalf("postline queue flush: %v\n%s", err, out)
	}
	start := time.Now()
	checkRelayed(t, mx.WaitMessages(t, 1, 10*time.Second)[0], []string{"user@later.test"}, msg)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("delivered %v after the flush", d)
	}
	waitSpoolEmpty(t, s, 5*time.Second)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// A recipient still deferred when the queue lifetime is over bounces
// with 4.4.7 (delivery time expired) and the last reply it got.
func TestRelayExpiryBounce(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: always(rcptRefuse(451, "4.7.1", "greylisted, come back later"))})
	n.DNS.Add(t, "slow.test. MX 10 mx.slow.test.", "mx.slow.test. A "+mx.IP)
	s := n.Stack(relayConfig{RetryMin: "1s", RetryMax: "1s", QueueLifetime: "2s"})

	subject := "never accepted"
	start := time.Now()
	submitRelay(t, s, relayMessage(subject, "user@slow.test"), "user@slow.test")
	raw := s.WaitForMail(demoUser, 1, 15*time.Second)[0]
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("bounced after %v, before the queue lifetime (2s)", d)
	}
	if tries := mx.Tries("user@slow.test"); tries < 2 {
		t.Errorf("the MX saw the recipient %d times, want the first try and retries", tries)
	}
	b := parseBounce(t, raw)
	checkBounceEnvelope(t, b, raw, subject)
	r := b.Recipient(t, "user@slow.test")
	wantFields(t, r, map[string]string{"Action": "failed", "Status": "4.4.7", "Remote-MTA": "dns; mx.slow.test"})
	if d := r.Get("Diagnostic-Code"); d != "smtp; 451 4.7.1 greylisted, come back later" {
		t.Errorf("Diagnostic-Code %q, want the last reply", d)
	}
	waitSpoolEmpty(t, s, 5*time.Second)
	if got := len(mx.Messages()); got != 0 {
		t.Errorf("the MX accepted %d messages", got)
	}
}

// always gives the same reply to every recipient.
func always(r sinkReply) sinkScript { return func(string, int) sinkReply { return r } }

// RFC 5321 §4.5.5, RFC 3464 §2: a message from the null sender is never
// bounced, so two failing systems cannot bounce mail to each other for
// ever. A message submitted with MAIL FROM:<> that the remote refuses
// is logged and dropped; demo's own refused message bounces once, to
// demo; and a bounce that itself fails (demo was deleted meanwhile) is
// dropped too.
func TestRelayNoBounceForNullSender(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	gate := make(chan struct{})
	var once sync.Once
	openGate := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(openGate) // never leave the sink waiting
	mx := n.Sink(sinkOptions{Script: func(rcpt string, _ int) sinkReply {
		if rcpt == "gated@refusing.test" {
			<-gate // until the test has deleted demo
		}
		return rcptRefuse(550, "5.7.1", "we do not want it")
	}})
	n.DNS.Add(t, "refusing.test. MX 10 mx.refusing.test.", "mx.refusing.test. A "+mx.IP)
	s := n.Stack(relayConfig{})
	const dropped = "failure of a message from <> dropped, not bounced"

	nullID := submitNullSender(t, s, relayMessage("auto-reply", "user@refusing.test"), "user@refusing.test")
	s.WaitLog(`"message":"`+dropped+`"`, 1, 10*time.Second)
	waitSpoolEmpty(t, s, 5*time.Second)

	demoID := submitRelay(t, s, relayMessage("refused for good", "user@refusing.test"), "user@refusing.test")
	raw := s.WaitForMail(demoUser, 1, 10*time.Second)[0]
	waitSpoolEmpty(t, s, 5*time.Second)
	b := parseBounce(t, raw)
	wantFields(t, b.Recipient(t, "user@refusing.test"), map[string]string{"Status": "5.7.1"})

	gatedID := submitRelay(t, s, relayMessage("bounce to a deleted user", "gated@refusing.test"), "gated@refusing.test")
	for deadline := time.Now().Add(10 * time.Second); mx.Tries("gated@refusing.test") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the MX never saw gated@refusing.test")
		}
	}
	s.Postline("", "user", "del", demoUser)
	openGate()
	s.WaitLog(`"message":"`+dropped+`"`, 2, 10*time.Second)
	// The spool is empty: every bounce was queued, logged and tried.
	waitSpoolEmpty(t, s, 5*time.Second)

	queued := waitEvents(t, s, "bounce queued", func(evs []map[string]any) bool { return len(evs) >= 2 })
	if len(queued) != 2 || queued[0]["queue_id"] != demoID || queued[1]["queue_id"] != gatedID {
		t.Fatalf("bounces queued: %v, want one for %s, one for %s", queued, demoID, gatedID)
	}
	drops := logEvents(s, dropped)
	if len(drops) != 2 || drops[0]["queue_id"] != nullID || drops[1]["queue_id"] != queued[1]["bounce_id"] {
		t.Errorf("dropped failures: %v, want one for %s, one for the bounce %s", drops, nullID, queued[1]["bounce_id"])
	}
	secWantMail(t, s, demoUser, 1)
	secWantMail(t, s, "postmaster@example.test", 0)
	if got := len(mx.Messages()); got != 0 {
		t.Errorf("the MX accepted %d messages", got)
	}
}

// The next attempt time lives in the envelope on disk: an MTA killed
// and restarted keeps the schedule instead of retrying at once.
func TestRelayScheduleSurvivesRestart(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: always(rcptRefuse(451, "4.3.2", "system not accepting mail now"))})
	n.DNS.Add(t, "down.test. MX 10 mx.down.test.", "mx.down.test. A "+mx.IP)
	s := n.Stack(relayConfig{RetryMin: "1h", RetryMax: "2h"})

	id := submitRelay(t, s, relayMessage("keep the schedule", "user@down.test"), "user@down.test")
	before := waitEnvelope(t, s, id, attempted).Recipients[0]
	if before.Attempts != 1 || time.Until(before.NextAttempt) < 50*time.Minute {
		t.Fatalf("after the first try: %d attempts, next in %v; want 1, about 1h", before.Attempts, time.Until(before.NextAttempt))
	}

	pid := s.ChildPID("mta")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(`"message":"child restarted"`, 1, 10*time.Second)
	s.WaitLog(`"message":"queue recovered"`, 2, 10*time.Second)
	if s.ChildPID("mta") == pid {
		t.Fatal("the MTA was not restarted")
	}
	recovered := logEvents(s, "queue recovered")
	if m := recovered[len(recovered)-1]["messages"]; m != float64(1) {
		t.Errorf("the restarted MTA recovered %v messages, want 1", m)
	}
	time.Sleep(2 * time.Second)
	if c, tries := mx.Conns(), mx.Tries("user@down.test"); c != 1 || tries != 1 {
		t.Errorf("the MX had %d connections and saw the recipient %d times, want 1 and 1: the restart must not retry early", c, tries)
	}
	after := readEnvelope(t, s, id).Recipients[0]
	if !after.NextAttempt.Equal(before.NextAttempt) || after.Attempts != 1 || after.State != "pending" {
		t.Errorf("after the restart: %+v, want the schedule of before the restart: %+v", after, before)
	}
}

// Opportunistic TLS: STARTTLS whenever offered, with a self-signed
// certificate logged as untrusted; a host without STARTTLS still gets
// the mail in plaintext.
func TestRelayOpportunisticTLS(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	secure := n.Sink(sinkOptions{StartTLS: true})
	plain := n.Sink(sinkOptions{})
	n.DNS.Add(t, "tls.test. MX 10 mx.tls.test.", "mx.tls.test. A "+secure.IP,
		"plain.test. MX 10 mx.plain.test.", "mx.plain.test. A "+plain.IP)
	s := n.Stack(relayConfig{})

	msg := relayMessage("opportunistic tls", "user@tls.test", "user@plain.test")
	submitRelay(t, s, msg, "user@tls.test", "user@plain.test")
	overTLS := secure.WaitMessages(t, 1, 10*time.Second)[0]
	inPlain := plain.WaitMessages(t, 1, 10*time.Second)[0]
	checkRelayed(t, overTLS, []string{"user@tls.test"}, msg)
	checkRelayed(t, inPlain, []string{"user@plain.test"}, msg)
	if overTLS.TLS == nil || !overTLS.TLS.HandshakeComplete {
		t.Error("the STARTTLS sink got the message in plaintext")
	}
	if inPlain.TLS != nil {
		t.Error("the plaintext sink reports TLS")
	}
	waitSpoolEmpty(t, s, 5*time.Second)

	conns := map[string]map[string]any{}
	waitEvents(t, s, "connected", func(evs []map[string]any) bool {
		for _, ev := range evs {
			conns[fmt.Sprint(ev["host"])] = ev
		}
		return conns["mx.tls.test"] != nil && conns["mx.plain.test"] != nil
	})
	if ev := conns["mx.tls.test"]; ev == nil || ev["tls"] != true || ev["certificate"] != "untrusted" ||
		!strings.HasPrefix(fmt.Sprint(ev["tls_version"]), "TLS 1.") {
		t.Errorf(`"connected" to mx.tls.test: %v; want tls true, certificate "untrusted", a TLS version`, ev)
	}
	if ev := conns["mx.plain.test"]; ev == nil || ev["tls"] != false || ev["certificate"] != nil {
		t.Errorf(`"connected" to mx.plain.test: %v; want tls false, no certificate`, ev)
	}
}

// RFC 5321 §5.1: when this host is the best MX of a domain it does not
// serve, by address or by name, the recipient bounces (5.4.6) instead of
// the MTA connecting to itself; as a backup MX behind another host it
// is merely skipped.
func TestRelayLoopToSelfBounces(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	s := n.Stack(relayConfig{})
	self, _, _ := net.SplitHostPort(s.MTA)
	mirror := n.SinkAt(self, sinkOptions{}) // this host's own address, at the port MX hosts are dialled on
	decoy := n.Sink(sinkOptions{})
	primary := n.Sink(sinkOptions{})
	n.DNS.Add(t,
		"loop.test. MX 10 mx.loop.test.", "mx.loop.test. A "+self,
		"named.test. MX 10 mail.example.test.", "mail.example.test. A "+decoy.IP,
		"backup.test. MX 10 mx1.backup.test.", "mx1.backup.test. A "+primary.IP,
		"backup.test. MX 20 mx2.backup.test.", "mx2.backup.test. A "+self)

	subject := "mail that would loop"
	rcpts := []string{"user@loop.test", "user@named.test", "user@backup.test"}
	msg := relayMessage(subject, rcpts...)
	submitRelay(t, s, msg, rcpts...)
	raw := s.WaitForMail(demoUser, 1, 10*time.Second)[0]
	checkRelayed(t, primary.WaitMessages(t, 1, 10*time.Second)[0], []string{"user@backup.test"}, msg)
	waitSpoolEmpty(t, s, 5*time.Second)

	b := parseBounce(t, raw)
	checkBounceEnvelope(t, b, raw, subject)
	if len(b.Recipients) != 2 {
		t.Errorf("bounce reports %d recipients, want 2 (loop.test, named.test)", len(b.Recipients))
	}
	for _, rcpt := range []string{"user@loop.test", "user@named.test"} {
		wantFields(t, b.Recipient(t, rcpt), map[string]string{"Action": "failed", "Status": "5.4.6", "Remote-MTA": ""})
	}
	if c := mirror.Conns() + decoy.Conns(); c != 0 {
		t.Errorf("%d connections to this host's own address or name, want none", c)
	}
}

// A server that drops the connection in the middle of the transaction
// leaves its recipients deferred (4.4.2), not bounced; the retry on a
// new connection delivers.
func TestRelayDroppedConnectionDefers(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: firstTry(rcptHangUp)})
	n.DNS.Add(t, "dropping.test. MX 10 mx.dropping.test.", "mx.dropping.test. A "+mx.IP)
	s := n.Stack(relayConfig{})

	msg := relayMessage("connection dropped", "user@dropping.test")
	id := submitRelay(t, s, msg, "user@dropping.test")
	if env := waitEnvelope(t, s, id, attempted); !strings.HasPrefix(env.Recipients[0].LastError, "451 4.4.2 ") {
		t.Errorf("after the dropped connection: last error %q, want 451 4.4.2", env.Recipients[0].LastError)
	}
	checkRelayed(t, mx.WaitMessages(t, 1, 10*time.Second)[0], []string{"user@dropping.test"}, msg)
	waitSpoolEmpty(t, s, 5*time.Second)
	if c := mx.Conns(); c != 2 {
		t.Errorf("the MX had %d connections, want 2 (the broken one is not reused)", c)
	}
	secWantMail(t, s, demoUser, 0)
}

// A server that never answers RCPT holds the delivery, not the MTA: on
// SIGTERM the MTA gives up the transaction without recording a result,
// stops at once, and once restarted delivers the message.
func TestRelayHangingServerAndShutdown(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: firstTry(rcptHang)})
	n.DNS.Add(t, "hanging.test. MX 10 mx.hanging.test.", "mx.hanging.test. A "+mx.IP)
	s := n.Stack(relayConfig{})

	msg := relayMessage("server hangs", "user@hanging.test")
	id := submitRelay(t, s, msg, "user@hanging.test")
	for deadline := time.Now().Add(10 * time.Second); mx.Tries("user@hanging.test") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the MX never saw the recipient")
		}
	}
	stopped := time.Now()
	if err := syscall.Kill(s.ChildPID("mta"), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(`"message":"mta stopped"`, 1, 10*time.Second)
	if d := time.Since(stopped); d > 3*time.Second {
		t.Errorf("the MTA took %v to stop while a server hung", d)
	}
	if env := readEnvelope(t, s, id); env.Recipients[0].Attempts != 0 || env.Recipients[0].State != "pending" {
		t.Errorf("an interrupted attempt was recorded: %+v", env.Recipients[0])
	}
	checkRelayed(t, mx.WaitMessages(t, 1, 15*time.Second)[0], []string{"user@hanging.test"}, msg)
	waitSpoolEmpty(t, s, 5*time.Second)
	secWantMail(t, s, demoUser, 0)
}

// A session kept open for the next message (connection reuse) may
// refuse that message as a whole: here a server takes one message per
// connection and answers the next MAIL with 421 and closes. That says
// nothing about the destination, so the message goes out on a new
// connection at once, not after retry_min.
func TestRelayReusedConnectionRefusedFallsBack(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{MessagesPerConn: 1})
	n.DNS.Add(t, "limited.test. MX 10 mx.limited.test.", "mx.limited.test. A "+mx.IP)
	s := n.Stack(relayConfig{RetryMin: "1h", RetryMax: "2h"})

	first := relayMessage("first on the connection", "one@limited.test")
	submitRelay(t, s, first, "one@limited.test")
	mx.WaitMessages(t, 1, 10*time.Second)
	second := relayMessage("second on the connection", "two@limited.test")
	id := submitRelay(t, s, second, "two@limited.test") // within the 5 s a session is kept
	deadline := time.Now().Add(5 * time.Second)
	for len(mx.Messages()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := mx.Messages(); len(got) != 2 {
		env := readEnvelope(t, s, id)
		t.Fatalf("the second message was not delivered on a new connection: %d connections; "+
			"its recipient: %+v", mx.Conns(), env.Recipients[0])
	}
	checkRelayed(t, mx.Messages()[1], []string{"two@limited.test"}, second)
	if c := mx.Conns(); c != 2 {
		t.Errorf("the MX had %d connections, want 2", c)
	}
}

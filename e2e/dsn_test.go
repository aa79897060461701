package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"postline/queue"
)

// DSN (RFC 3461) through the whole stack: NOTIFY=SUCCESS gets a
// "delivered" report for a local mailbox and a "relayed" one for a next
// hop without DSN, while a next hop that offers DSN is handed the
// request (NOTIFY, ORCPT, RET, ENVID) and reports itself. The report is
// checked field by field (RFC 3464).
func TestDSNSuccessReports(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	plain := n.Sink(sinkOptions{})
	capable := n.Sink(sinkOptions{DSN: true})
	n.DNS.Add(t, "plain.test. MX 10 mx.plain.test.", "mx.plain.test. A "+plain.IP,
		"dsn.test. MX 10 mx.dsn.test.", "mx.dsn.test. A "+capable.IP)
	s := n.Stack(relayConfig{})

	subject := "with delivery notifications"
	mail := &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "QQ314159"}
	rcpt := func(r string) *smtp.RcptOptions {
		o := &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifySuccess}}
		switch r {
		case demoUser:
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, "Demo@Example.test"
		case "user@dsn.test":
			o.Notify = append(o.Notify, smtp.DSNNotifyFailure)
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, "user@dsn.test"
		}
		return o
	}
	id := submitWith(t, s, demoUser, mail, rcpt, relayMessage(subject, demoUser, "user@plain.test", "user@dsn.test"),
		demoUser, "user@plain.test", "user@dsn.test")
	waitSpoolEmpty(t, s, 10*time.Second)

	got := capable.WaitMessages(t, 1, 5*time.Second)[0]
	if got.Mail.Return != smtp.DSNReturnHeaders || got.Mail.EnvelopeID != "QQ314159" {
		t.Errorf("next hop got RET=%q ENVID=%q", got.Mail.Return, got.Mail.EnvelopeID)
	}
	o := got.Rcpt["user@dsn.test"]
	if strings.Join(notifyStrings(o.Notify), ",") != "SUCCESS,FAILURE" || o.OriginalRecipient != "user@dsn.test" {
		t.Errorf("next hop got NOTIFY=%v ORCPT=%s;%s", o.Notify, o.OriginalRecipientType, o.OriginalRecipient)
	}
	b, raw := onlyReport(t, s, 2)
	if s, _ := b.Header.Subject(); s != "Successful Mail Delivery Report" {
		t.Errorf("Subject %q", s)
	}
	wantFields(t, b.PerMessage, map[string]string{"Original-Envelope-Id": "QQ314159",
		"Reporting-MTA": "dns; mail.example.test", "X-Postline-Queue-Id": id})
	if len(b.Recipients) != 2 {
		t.Fatalf("report on %d recipients, want demo and user@plain.test: %v", len(b.Recipients), b.Recipients)
	}
	wantFields(t, b.Recipient(t, demoUser), map[string]string{"Original-Recipient": "rfc822; Demo@Example.test",
		"Action": "delivered", "Status": "2.0.0", "Remote-MTA": ""})
	wantFields(t, b.Recipient(t, "user@plain.test"), map[string]string{"Original-Recipient": "",
		"Action": "relayed", "Status": "2.0.0", "Remote-MTA": "dns; mx.plain.test"})
	if b.PartTypes[2] != "text/rfc822-headers" || strings.Contains(string(raw), "body of "+subject) ||
		!strings.Contains(b.Original, "Subject: "+subject) {
		t.Errorf("a success report returns the header only: parts %v\n%s", b.PartTypes, raw)
	}
}

// NOTIFY=NEVER silences the bounce; RET=FULL returns the whole message
// (message/rfc822) with the ENVID, RET=HDRS the header only.
func TestDSNFailureReports(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: func(string, int) sinkReply { return rcptRefuse(550, "5.1.1", "no such user") }})
	n.DNS.Add(t, "refusing.test. MX 10 mx.refusing.test.", "mx.refusing.test. A "+mx.IP)
	s := n.Stack(relayConfig{})
	to := "user@refusing.test"
	notify := func(v smtp.DSNNotify) func(string) *smtp.RcptOptions {
		return func(string) *smtp.RcptOptions { return &smtp.RcptOptions{Notify: []smtp.DSNNotify{v}} }
	}

	never := submitWith(t, s, demoUser, nil, notify(smtp.DSNNotifyNever), relayMessage("never", to), to)
	ev := waitLogEvent(t, s, "not reported: NOTIFY does not ask for it", nil)
	if ev["queue_id"] != never || ev["action"] != "failed" || ev["notify"] != "NEVER" {
		t.Errorf("log: %v", ev)
	}
	full := submitWith(t, s, demoUser, &smtp.MailOptions{Return: smtp.DSNReturnFull, EnvelopeID: "full+1"},
		nil, relayMessage("returned whole", to), to)
	b, raw := onlyReport(t, s, 1)
	wantFields(t, b.PerMessage, map[string]string{"Original-Envelope-Id": "full+1", "X-Postline-Queue-Id": full})
	wantFields(t, b.Recipient(t, to), map[string]string{"Action": "failed", "Status": "5.1.1"})
	if b.PartTypes[2] != "message/rfc822" || !strings.Contains(b.Original, "body of returned whole") ||
		!strings.Contains(b.Text, "Your message is attached.") {
		t.Errorf("RET=FULL: parts %v\n%s", b.PartTypes, raw)
	}
	clearMailbox(t, s, demoUser)

	submitWith(t, s, demoUser, &smtp.MailOptions{Return: smtp.DSNReturnHeaders}, nil, relayMessage("headers only", to), to)
	b, raw = onlyReport(t, s, 1)
	checkBounceEnvelope(t, b, raw, "headers only")
	wantFields(t, b.PerMessage, map[string]string{"Original-Envelope-Id": ""})
	waitSpoolEmpty(t, s, 5*time.Second)
	if queued := logEvents(s, "bounce queued"); len(queued) != 2 {
		t.Errorf("%d bounces queued, want 2 (none for NOTIFY=NEVER): %v", len(queued), queued)
	}
}

// A recipient still deferred mta.delay_warning after arrival gets one
// "delayed" report, however often it is retried; NOTIFY without DELAY
// gets none. Both are marked warned in the queue, so a restart sends no
// second one.
func TestDSNDelayWarning(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: func(string, int) sinkReply { return rcptRefuse(451, "4.3.0", "try later") }})
	n.DNS.Add(t, "slow.test. MX 10 mx.slow.test.", "mx.slow.test. A "+mx.IP)
	s := n.Stack(relayConfig{RetryMax: "1s", DelayWarning: "2s"})

	warned := submitRelay(t, s, relayMessage("default notify", "a@slow.test"), "a@slow.test")
	quiet := submitWith(t, s, demoUser, nil, func(string) *smtp.RcptOptions {
		return &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure}}
	}, relayMessage("failures only", "b@slow.test"), "b@slow.test")
	for _, id := range []string{warned, quiet} {
		waitEnvelope(t, s, id, func(e *queue.Envelope) bool { return e.Recipients[0].Warned })
	}
	for deadline := time.Now().Add(10 * time.Second); mx.Tries("a@slow.test") < 5; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a@slow.test tried %d times", mx.Tries("a@slow.test"))
		}
	}
	b, raw := onlyReport(t, s, 1)
	if s, _ := b.Header.Subject(); s != "Delayed Mail (still being retried)" {
		t.Errorf("Subject %q", s)
	}
	wantFields(t, b.PerMessage, map[string]string{"X-Postline-Queue-Id": warned})
	r := b.Recipient(t, "a@slow.test")
	wantFields(t, r, map[string]string{"Action": "delayed", "Status": "4.3.0", "Remote-MTA": "dns; mx.slow.test"})
	if r.Get("Will-Retry-Until") == "" || !strings.Contains(r.Get("Diagnostic-Code"), "try later") {
		t.Errorf("delayed recipient: %v", r)
	}
	if strings.Contains(string(raw), "body of default notify") {
		t.Error("a delay warning returns the header only")
	}
	ev := waitLogEvent(t, s, "not reported: NOTIFY does not ask for it", nil)
	if ev["queue_id"] != quiet || ev["action"] != "delayed" {
		t.Errorf("log: %v", ev)
	}
	// `postline queue show` tells the request and the warning.
	for id, want := range map[string]string{warned: "        dsn: delay warning sent\n",
		quiet: "        dsn: NOTIFY=FAILURE delay warning not asked for\n"} {
		if out := s.Postline("", "queue", "show", id); !strings.Contains(out, want) {
			t.Errorf("queue show %s lacks %q:\n%s", id, want, out)
		}
	}
}

// Malformed DSN parameters get 501 5.5.4 on the MTA and the MSA alike
// (RFC 3461 §4; ENVID at most 100 characters, ORCPT 500).
func TestDSNBadParameters(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	mta := secDial(t, "", s.MTA)
	mta.expect("EHLO client.example.net", 250, "")
	msa := secLogin(t, s)
	for name, c := range map[string]*secConn{"mta": mta, "msa": msa} {
		from := "MAIL FROM:<" + demoUser + ">"
		if name == "mta" {
			from = "MAIL FROM:<someone@remote.test>"
		}
		for _, bad := range []string{" RET=SOME", " ENVID=" + strings.Repeat("x", 101), " ENVID=a+2"} {
			c.expect(from+bad, 501, "5.5.4")
		}
		c.expect(from+" RET=HDRS ENVID="+strings.Repeat("x", 100), 250, "2.1.0")
		to := "RCPT TO:<" + demoUser + ">"
		for _, bad := range []string{" NOTIFY=SOMETIMES", " NOTIFY=NEVER,SUCCESS", " ORCPT=bogus",
			" ORCPT=rfc822;" + strings.Repeat("x", 501)} {
			c.expect(to+bad, 501, "5.5.4")
		}
		c.expect(to+" NOTIFY=SUCCESS,DELAY ORCPT=rfc822;"+demoUser, 250, "2.1.5")
		c.expect("RSET", 250, "2.0.0")
	}
}

func notifyStrings(v []smtp.DSNNotify) []string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = string(n)
	}
	return s
}

// onlyReport waits until demo's mailbox holds want messages and returns
// the one report among them, parsed, and its bytes.
func onlyReport(t *testing.T, s *Stack, want int) (*bounceReport, []byte) {
	t.Helper()
	raw := findMessage(t, s.WaitForMail(demoUser, want, 10*time.Second), "report-type=delivery-status")
	return parseBounce(t, raw), raw
}

// clearMailbox deletes what address's new/ holds, as a reader would.
func clearMailbox(t *testing.T, s *Stack, address string) {
	t.Helper()
	dir := filepath.Join(s.Mailbox(address), "new")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

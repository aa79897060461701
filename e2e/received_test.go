package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// receivedField is the Received field the bundled received plugin writes,
// as the MDA stores it (LF line ends): from, by, with, the TLS comment,
// id, and for when there is exactly one recipient.
func receivedField(helo, with string, tls bool, id, rcpt string) *regexp.Regexp {
	re := `^Return-Path: <[^>\n]*>\nReceived: from ` + regexp.QuoteMeta(helo) + ` \([^\s()]+ \[127\.\d+\.\d+\.\d+\]\)\n` +
		`\tby mail\.example\.test with ` + with + `\n`
	if tls {
		re += `\t\(using TLSv1\.[23] with cipher TLS_[A-Z0-9_]+\)\n`
	}
	re += `\tid ` + regexp.QuoteMeta(id) + `\n`
	if rcpt != "" {
		re += `\tfor <` + regexp.QuoteMeta(rcpt) + `>`
	}
	re += `; [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\n[^\t ]`
	return regexp.MustCompile(re)
}

func TestReceivedField(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	body := "Subject: trace\r\nMessage-ID: <t-1@example.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n\r\nhello\r\n"

	// A submission over STARTTLS with AUTH to one recipient: one field,
	// written at the MSA, with the queue ID of the reply and of the logs.
	reply, err := s.Submit(Submission{Helo: "laptop.example.net", To: []string{demoUser}, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	_, id, ok := strings.Cut(reply, "queued as ")
	if !ok || len(id) != 16 {
		t.Fatalf("reply %q names no queue ID", reply)
	}
	got := string(s.WaitForRawMail(demoUser, 1, 10*time.Second)[0])
	if re := receivedField("laptop.example.net", "ESMTPSA", true, id, demoUser); !re.MatchString(got) {
		t.Errorf("delivered:\n%s\nwant it to match %s", got, re)
	}
	if n := strings.Count(got, "Received:"); n != 1 {
		t.Errorf("%d Received fields, want 1 (the MTA adds none for the MSA's socket)", n)
	}
	s.WaitLog(`"message":"delivered"`, 2, 5*time.Second) // the mda's and the mta's
	waitQueueIDLines(t, s, id)
	for _, m := range regexp.MustCompile(`"queue_id":"([^"]*)"`).FindAllStringSubmatch(s.Log(), -1) {
		if m[1] != id {
			t.Errorf("a log line carries queue_id %s, want %s", m[1], id)
		}
	}

	// Two recipients: no "for", so no Bcc recipient is disclosed.
	if _, err := s.Submit(Submission{To: []string{demoUser, "postmaster@example.test"}, Body: body}); err != nil {
		t.Fatal(err)
	}
	second := string(s.WaitForRawMail(demoUser, 2, 10*time.Second)[1])
	if strings.Contains(second, "\tfor <") {
		second = string(s.WaitForRawMail(demoUser, 2, 10*time.Second)[0]) // new/ order is not delivery order
	}
	if strings.Contains(second, "\tfor <") || !strings.Contains(second, "with ESMTPSA") {
		t.Errorf("two recipients, delivered:\n%s", second)
	}

	// Mail from the internet gets its field at the MTA: ESMTP, its own ID.
	c := dialMTA(t, s)
	if err := c.Mail("someone@remote.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("postmaster@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body))
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	_, mtaID, _ := strings.Cut(resp.StatusText, "queued as ")
	if mtaID == "" || mtaID == id {
		t.Fatalf("MTA reply %q", resp.StatusText)
	}
	inbound := waitForOne(t, s, "postmaster@example.test", 2, "someone@remote.test")
	if re := receivedField("client.example.net", "ESMTP", false, mtaID, "postmaster@example.test"); !re.MatchString(inbound) {
		t.Errorf("inbound:\n%s\nwant it to match %s", inbound, re)
	}
}

// waitForOne returns the message of address whose Return-Path is sender,
// once address holds n messages.
func waitForOne(t *testing.T, s *Stack, address string, n int, sender string) string {
	t.Helper()
	for _, m := range s.WaitForRawMail(address, n, 10*time.Second) {
		if strings.HasPrefix(string(m), "Return-Path: <"+sender+">") {
			return string(m)
		}
	}
	t.Fatalf("no message from %s for %s", sender, address)
	return ""
}

// A HELO full of odd characters cannot add a header field or break the
// Received field's structure.
func TestReceivedHeloCannotInject(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c := dialMTAHelo(t, s, "evil\x01(x)[y]<z>;\"q\\")
	if err := c.SendMail("someone@remote.test", []string{demoUser}, strings.NewReader("Subject: odd\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	got := string(s.WaitForRawMail(demoUser, 1, 10*time.Second)[0])
	if !strings.HasPrefix(got, "Return-Path: <someone@remote.test>\nReceived: from evilxyzq (") {
		t.Errorf("delivered:\n%q", got)
	}
	if string(s.WaitForMail(demoUser, 1, time.Second)[0]) != "Return-Path: <someone@remote.test>\nSubject: odd\n\nx\n" {
		t.Errorf("the rest of the message changed:\n%q", got)
	}
}

package e2e

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A body that exercises what breaks naive SMTP code: lines starting with
// dots (dot-stuffing), a lone dot inside a line, 8-bit text, a long line.
var trickyBody = "Subject: tricky\r\nFrom: demo@example.test\r\nTo: demo@example.test\r\n" +
	"Message-ID: <tricky-1@example.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
	".leading dot\r\n..two dots\r\n. \r\nend .\r\n" +
	"Grüße aus Köln — ünïcödé ✓\r\n" +
	strings.Repeat("long line ", 150) + "\r\n" +
	"last line\r\n"

func lf(s string) []byte { return []byte(strings.ReplaceAll(s, "\r\n", "\n")) }

// withReturnPath is msg as the MDA writes it for envelope sender: LF line
// ends, and on top the one Return-Path field that the bundled return-path
// plugin puts there at final delivery (RFC 5321 §4.4).
func withReturnPath(sender, msg string) []byte {
	return append([]byte("Return-Path: <"+sender+">\n"), lf(msg)...)
}

func TestSubmitStartTLSDeliversByteIdentical(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	reply, err := s.Submit(Submission{To: []string{demoUser}, Body: trickyBody})
	if err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`^2\.0\.0 Ok: queued as ([0-9A-Z]{16})$`).FindStringSubmatch(reply)
	if id == nil {
		t.Fatalf("reply %q, want \"Ok: queued as ID\"", reply)
	}
	got := s.WaitForMail(demoUser, 1, 10*time.Second)[0]
	if want := withReturnPath(demoUser, trickyBody); !bytes.Equal(got, want) {
		t.Errorf("delivered message differs from the submitted one\n got: %q\nwant: %q", got, want)
	}
	waitQueueIDLines(t, s, id[1])
}

// waitQueueIDLines waits for a log line of the MSA, of the MTA and of the
// MDA that carries queue ID id: one ID for the message all the way. (The
// MDA logs its copy after writing it, so the Maildir alone is not enough.)
func waitQueueIDLines(t *testing.T, s *Stack, id string) {
	t.Helper()
	for _, svc := range []string{"msa", "mta", "mda"} {
		re := regexp.MustCompile(`"svc":"` + svc + `"[^\n]*"queue_id":"` + id + `"`)
		waitLogFor(t, s, "a "+svc+" line with queue_id "+id, logWait, re.MatchString)
	}
}

func TestSubmitImplicitTLS(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	body := "Subject: implicit\r\nMessage-ID: <i-1@example.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n\r\nhello over TLS\r\n"
	if _, err := s.Submit(Submission{ImplicitTLS: true, To: []string{demoUser}, Body: body}); err != nil {
		t.Fatal(err)
	}
	if got := s.WaitForMail(demoUser, 1, 10*time.Second)[0]; !bytes.Equal(got, withReturnPath(demoUser, body)) {
		t.Errorf("got %q, want %q", got, withReturnPath(demoUser, body))
	}
}

func TestMSAAddsMessageIDAndDate(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	body := "Subject: bare\r\n\r\nno id, no date\r\n"
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: body}); err != nil {
		t.Fatal(err)
	}
	got := string(s.WaitForMail(demoUser, 1, 10*time.Second)[0])
	if !regexp.MustCompile(`(?m)^Message-ID: <[^@>\s]+@mail\.example\.test>$`).MatchString(got) {
		t.Errorf("no Message-ID added:\n%s", got)
	}
	if !regexp.MustCompile(`(?m)^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$`).MatchString(got) {
		t.Errorf("no Date added:\n%s", got)
	}
	if !strings.HasSuffix(got, "Subject: bare\n\nno id, no date\n") {
		t.Errorf("original header or body changed:\n%s", got)
	}
}

func TestSeveralRecipientsAndPostmaster(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	s.Postline("second-password\n", "user", "add", "Bob@Other.Example")
	body := "Subject: many\r\nMessage-ID: <m-1@example.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n\r\nhi all\r\n"
	to := []string{demoUser, "bob@other.example", "postmaster@example.test", "PostMaster@other.example"}
	if _, err := s.Submit(Submission{To: to, Body: body}); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{demoUser, "bob@other.example", "postmaster@example.test", "postmaster@other.example"} {
		if got := s.WaitForMail(rcpt, 1, 10*time.Second)[0]; !bytes.Equal(got, withReturnPath(demoUser, body)) {
			t.Errorf("%s got %q", rcpt, got)
		}
	}
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `postline sendmail -t`, as cron and scripts call sendmail: recipients
// from To and Bcc, Bcc removed, Message-ID and Date added, a lone dot
// ends the input. Through a link named sendmail it takes sendmail's own
// command line, and a link named mailq lists the queue.
func TestSendmail(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	s.Postline("pw-of-second\n", "user", "add", "second@example.test")
	msg := "To: demo@example.test\nBcc: second@example.test\nSubject: from cron\n\nreport\n.\nnot part of it\n"
	if out, err := runPostline(s.Config, msg, "sendmail", "-t"); err != nil {
		t.Fatalf("sendmail -t: %v\n%s", err, out)
	}
	for _, user := range []string{demoUser, "second@example.test"} {
		got := string(s.WaitForMail(user, 1, 10*time.Second)[0])
		if !strings.Contains(got, "Subject: from cron\n") || !strings.HasSuffix(got, "\n\nreport\n") ||
			strings.Contains(got, "Bcc:") || !strings.Contains(got, "Message-ID: <") || !strings.Contains(got, "Date: ") {
			t.Errorf("%s got %q", user, got)
		}
	}

	links := t.TempDir()
	for _, name := range []string{"sendmail", "mailq"} {
		if err := os.Symlink(filepath.Join(binDir, "postline"), filepath.Join(links, name)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(links, "sendmail"), "-oi", "-f", "cron@example.test", "second@example.test")
	cmd.Env = append(os.Environ(), "POSTLINE_CONFIG="+s.Config)
	cmd.Stdin = strings.NewReader("Subject: through the link\n\nx\n.\ny\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail link: %v\n%s", err, out)
	}
	var got string
	for _, m := range s.WaitForMail("second@example.test", 2, 10*time.Second) {
		if strings.Contains(string(m), "Subject: through the link") {
			got = string(m)
		}
	}
	if !strings.HasPrefix(got, "Return-Path: <cron@example.test>\n") || !strings.HasSuffix(got, "\nx\n.\ny\n") {
		t.Errorf("through the link: %q", got)
	}
	cmd = exec.Command(filepath.Join(links, "mailq"))
	cmd.Env = append(os.Environ(), "POSTLINE_CONFIG="+s.Config)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "the queue is empty") {
		t.Errorf("mailq link: %v\n%s", err, out)
	}
	if out, err := runPostline(s.Config, "Subject: nobody\n\nx\n", "sendmail"); err == nil || !strings.Contains(out, "no recipients") {
		t.Errorf("sendmail without recipients: %v\n%s", err, out)
	}
}

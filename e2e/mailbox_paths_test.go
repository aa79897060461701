package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A symlink planted in mail_root in place of a user's Maildir: the
// submission is queued, but the MDA refuses to follow the link, the MTA
// defers the delivery, and the admin reads in the log which path to fix.
func TestSymlinkedMaildirIsNotFollowed(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	maildir := s.Mailbox(demoUser)
	outside := plantSymlink(t, maildir)

	submitAndWaitDeferred(t, s, 1)
	assertNothingIn(t, outside)
	assertMDAErrorNames(t, s, maildir)
}

// The same for a symlink in place of new/ of a Maildir that already
// received mail.
func TestSymlinkedNewFolderIsNotFollowed(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: "Subject: first\r\n\r\nfirst\r\n"}); err != nil {
		t.Fatal(err)
	}
	s.WaitForMail(demoUser, 1, 10*time.Second)
	newDir := filepath.Join(s.Mailbox(demoUser), "new")
	if err := os.RemoveAll(newDir); err != nil {
		t.Fatal(err)
	}
	outside := plantSymlink(t, newDir)

	submitAndWaitDeferred(t, s, 1)
	assertNothingIn(t, outside)
	assertMDAErrorNames(t, s, newDir)
}

// A local part that would climb out of mail_root is refused at RCPT, and
// nothing is created outside mail_root.
func TestEscapingLocalPartIsRefused(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c, err := smtp.Dial(s.MTA)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("someone@elsewhere.test", nil); err != nil {
		t.Fatal(err)
	}
	var serr *smtp.SMTPError
	if err := c.Rcpt("../../etc@example.test", nil); !errors.As(err, &serr) || serr.Code/100 != 5 {
		t.Fatalf("RCPT TO:<../../etc@example.test>: got %v, want a 5xx refusal", err)
	}
	// example.test/../../etc would be <state_dir>/etc, beside mail_root.
	if _, err := os.Lstat(filepath.Join(s.MailRoot, "..", "etc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was created outside mail_root (Lstat: %v)", err)
	}
}

// plantSymlink makes path a symlink to a new, empty folder outside
// mail_root and returns that folder.
func plantSymlink(t *testing.T, path string) string {
	t.Helper()
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, path); err != nil {
		t.Fatal(err)
	}
	return outside
}

// submitAndWaitDeferred submits a message to the demo user, which the MTA
// must accept, and waits for the MTA's n-th deferral.
func submitAndWaitDeferred(t *testing.T, s *Stack, n int) {
	t.Helper()
	reply, err := s.Submit(Submission{To: []string{demoUser}, Body: "Subject: x\r\n\r\nnot for elsewhere\r\n"})
	if err != nil || !strings.Contains(reply, "queued as") {
		t.Fatalf("submission: reply %q, err %v; want it queued", reply, err)
	}
	s.WaitLog(`"message":"delivery deferred"`, n, 10*time.Second)
}

func assertNothingIn(t *testing.T, dir string) {
	t.Helper()
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("%s holds %d entries (err %v); the symlink was followed", dir, len(entries), err)
	}
}

// assertMDAErrorNames waits for the MDA's error line naming path.
func assertMDAErrorNames(t *testing.T, s *Stack, path string) {
	t.Helper()
	waitLogLine(t, s, `"svc":"mda"`, `"level":"error"`, path+" is a symlink")
}

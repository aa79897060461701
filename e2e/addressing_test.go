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

// With recipient_delimiter = "+", demo+news@ reaches demo: in the inbox,
// then in the Maildir++ folder .news once demo has made it; an extension
// of an unknown user is refused 550 5.1.1. A catch-all "@other.example"
// takes any address of its domain; example.test, without one, still
// refuses unknown users.
func TestRecipientDelimiterAndCatchAll(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: "aliases_file = \"aliases\"\nrecipient_delimiter = \"+\"\n", Prepare: func(dir string) {
		os.WriteFile(filepath.Join(dir, "aliases"), []byte("@other.example  demo@example.test\n"), 0o600)
	}})
	send := func(to, subject string) error {
		return sendToMTA(s.MTA, "x@example.org", to, "Subject: "+subject+"\r\n\r\nhi\r\n")
	}
	if err := send("demo+news@example.test", "to the inbox"); err != nil {
		t.Fatal(err)
	}
	if got := s.WaitForMail(demoUser, 1, 10*time.Second); !strings.Contains(string(got[0]), "to the inbox") {
		t.Errorf("demo's inbox holds %q", got[0])
	}
	folder := filepath.Join(s.Mailbox(demoUser), ".news")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(folder, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := send("Demo+news@example.test", "to the folder"); err != nil {
		t.Fatal(err)
	}
	if got := readMaildir(t, filepath.Join(folder, "new"), 1, 10*time.Second); !strings.Contains(string(got[0]), "to the folder") {
		t.Errorf("demo's .news holds %q", got[0])
	}

	var serr *smtp.SMTPError
	if err := send("nobody+news@example.test", "x"); !errors.As(err, &serr) || serr.Code != 550 || serr.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Errorf("an extension of an unknown user: %v, want 550 5.1.1", err)
	}
	if err := send("anyone@other.example", "caught"); err != nil {
		t.Fatalf("mail to a catch-all domain: %v", err)
	}
	if got := s.WaitForMail(demoUser, 2, 10*time.Second); !strings.Contains(string(got[0])+string(got[1]), "caught") {
		t.Errorf("the catch-all's target did not get it: %q", got)
	}
	if err := send("nobody@example.test", "x"); !errors.As(err, &serr) || serr.Code != 550 {
		t.Errorf("an unknown user of a domain without a catch-all: %v, want 550", err)
	}

	// A user may send as an extension of their own address, not of another's.
	if _, err := s.Submit(Submission{From: "demo+news@example.test", To: []string{demoUser}, Body: "Subject: as demo+news\r\n\r\nx\r\n"}); err != nil {
		t.Errorf("sending as demo+news: %v", err)
	}
	_, err := s.Submit(Submission{From: "postmaster+x@example.test", To: []string{demoUser}, Body: "Subject: as postmaster+x\r\n\r\nx\r\n"})
	if !errors.As(err, &serr) || serr.Code != 553 {
		t.Errorf("sending as an extension of another address: %v, want 553", err)
	}
}

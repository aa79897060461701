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

// Mail to an alias reaches each of its targets once; a user may send as
// an alias that reaches it, not as another; a broken aliases file is
// named by `postline check` with its line.
func TestAliases(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{TopLevel: "aliases_file = \"aliases\"\n", Prepare: func(dir string) {
		os.WriteFile(filepath.Join(dir, "aliases"), []byte("team@example.test  demo@example.test, second@example.test\n"+
			"all@example.test   team@example.test demo@example.test\n"), 0o600)
	}})
	s.Postline("pw-of-second\n", "user", "add", "second@example.test")

	if err := sendToMTA(s.MTA, "x@example.org", "all@example.test", "Subject: to all\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("mail to an alias: %v", err)
	}
	for _, user := range []string{demoUser, "second@example.test"} {
		if got := s.WaitForMail(user, 1, 10*time.Second); !strings.Contains(string(got[0]), "Subject: to all") {
			t.Errorf("%s got %q", user, got[0])
		}
	}
	waitSpoolEmpty(t, s, 10*time.Second) // the MTA is done: a second copy would be there by now
	if entries, _ := os.ReadDir(filepath.Join(s.Mailbox(demoUser), "new")); len(entries) != 1 {
		t.Errorf("demo, reached twice through the aliases, holds %d copies", len(entries))
	}

	if _, err := s.Submit(Submission{From: "team@example.test", To: []string{"second@example.test"}, Body: "Subject: as team\r\n\r\nx\r\n"}); err != nil {
		t.Errorf("sending as an alias that reaches the user: %v", err)
	}
	_, err := s.Submit(Submission{From: "nobody@example.test", To: []string{"second@example.test"}, Body: "Subject: as nobody\r\n\r\nx\r\n"})
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 553 {
		t.Errorf("sending as an address the user does not own: %v, want 553", err)
	}

	os.WriteFile(filepath.Join(s.Dir, "aliases"), []byte("team@example.test demo@example.test\nbroken@example.test\n"), 0o600)
	out, err := runPostline(s.Config, "", "check")
	if err == nil || !strings.Contains(out, filepath.Join(s.Dir, "aliases")+":2:") {
		t.Errorf("postline check with a broken aliases file: %v\n%s", err, out)
	}
}

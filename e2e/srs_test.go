package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"postline/srs"
)

// An alias forwarding out of the local domains sends mail from another
// domain on with an SRS sender in the hostname's domain, so SPF passes
// at the destination; a bounce to that address goes back to the
// original sender; a forged or expired one is refused at RCPT (550
// 5.1.1). Mail from a local sender is not rewritten.
func TestSRSForwardAndBounceBack(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	outside := n.Sink(sinkOptions{})
	n.DNS.Add(t, "outside.test. MX 10 mx.outside.test.", "mx.outside.test. A "+outside.IP,
		"sender.test. MX 10 mx.outside.test.")
	s := n.Stack(relayConfig{TopLevel: "aliases_file = \"aliases\"\n", Prepare: func(dir string) {
		os.WriteFile(filepath.Join(dir, "aliases"), []byte("fwd@example.test  friend@outside.test\n"), 0o600)
	}})

	if err := sendToMTA(s.MTA, "alice@sender.test", "fwd@example.test", "Subject: forwarded\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	got := outside.WaitMessages(t, 1, 10*time.Second)[0]
	if !regexp.MustCompile(`^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=sender\.test=alice@example\.test$`).MatchString(got.From) {
		t.Fatalf("forwarded with MAIL FROM:<%s>, want SRS0=HHHH=TT=sender.test=alice@example.test", got.From)
	}
	secret, err := os.ReadFile(filepath.Join(s.Dir, "var", "mta", "srs.secret"))
	if err != nil {
		t.Fatal(err)
	}
	r := &srs.Rewriter{Domain: "example.test", Secret: secret}
	local := strings.TrimSuffix(got.From, "@example.test")
	if orig, err := r.Reverse(local, time.Now()); err != nil || orig != "alice@sender.test" {
		t.Errorf("the SRS address reverses to %q, %v", orig, err)
	}

	// The destination bounces: the bounce reaches alice, from <>.
	if err := sendToMTA(s.MTA, "", got.From, "Subject: Undelivered Mail Returned to Sender\r\n\r\nsorry\r\n"); err != nil {
		t.Fatalf("bounce to the SRS address: %v", err)
	}
	back := outside.WaitMessages(t, 2, 10*time.Second)[1]
	if back.From != "" || strings.Join(back.To, ",") != "alice@sender.test" {
		t.Errorf("the bounce left from <%s> to %v, want from <> to alice@sender.test", back.From, back.To)
	}

	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	c.expect("MAIL FROM:<>", 250, "2.1.0")
	expired, _ := r.Rewrite("alice@sender.test", time.Now().Add(-22*24*time.Hour))
	for _, bad := range []string{
		strings.Replace(got.From, "=sender.test=", "=other.test=", 1), // forged: the hash does not match
		"SRS0=abcd=AA=sender.test=alice@example.test",
		expired,
	} {
		c.expect("RCPT TO:<"+bad+">", 550, "5.1.1")
	}

	// A local sender's mail is ours to send: no rewriting.
	if _, err := s.Submit(Submission{To: []string{"fwd@example.test"}, Body: "Subject: from demo\r\n\r\nhi\r\n"}); err != nil {
		t.Fatal(err)
	}
	if m := outside.WaitMessages(t, 3, 10*time.Second)[2]; m.From != demoUser {
		t.Errorf("mail from %s forwarded from <%s>", demoUser, m.From)
	}
}

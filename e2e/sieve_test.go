package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each user's ~/.dovecot.sieve, home being the Maildir folder, runs at
// delivery (the bundled sieve plugin): folders and flags, copies,
// discard, reject (returned to the sender), redirect (with loop
// control), vacation (once per sender), and a broken script keeps mail.
func TestSieve(t *testing.T) {
	t.Parallel()
	const bob = "bob@example.test"
	s := StartStackWith(t, StackConfig{Plugins: "\n[[plugins]]\nname = \"sieve\"\ndaemon = \"mda\"\n"})
	s.Postline("bob-password\n", "user", "add", bob)
	demo := s.Mailbox(demoUser)
	script := func(t *testing.T, text string) {
		t.Helper()
		os.MkdirAll(demo, 0o700)
		// A new mtime each time: the plugin keeps a script while its file stays the same.
		path := filepath.Join(demo, ".dovecot.sieve")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(path, time.Now(), time.Now().Add(time.Duration(len(text))*time.Second))
	}
	send := func(t *testing.T, from, subject string, extra ...string) {
		t.Helper()
		msg := strings.Join(extra, "") + plainMsg(from, subject, "hello\r\n")
		if _, err := sendFromIP(t, s, internetMail{IP: "127.0.0.1", Helo: "mx.example.test", From: from, To: []string{demoUser}, Data: msg}); err != nil {
			t.Fatalf("send %q: %v", subject, err)
		}
	}

	t.Run("fileinto with flags, and a copy kept", func(t *testing.T) {
		script(t, `require ["fileinto", "imap4flags", "copy", "mailbox"];
if header :contains "subject" "invoice" { fileinto :create :copy :flags "\\Seen" "Accounts/2026"; }`)
		send(t, bob, "sieve invoice 42")
		waitSubject(t, filepath.Join(demo, "new"), "sieve invoice 42")
		waitGlob(t, filepath.Join(demo, ".Accounts.2026", "cur", "*:2,S"))
	})

	t.Run("discard", func(t *testing.T) {
		script(t, `if header :is "subject" "sieve junk" { discard; stop; }`)
		send(t, bob, "sieve junk")
		send(t, bob, "sieve after junk")
		waitSubject(t, filepath.Join(demo, "new"), "sieve after junk")
		wantNotIn(t, filepath.Join(demo, "new"), "sieve junk")
	})

	t.Run("reject returns the message to its sender", func(t *testing.T) {
		script(t, `require "reject"; if address :is "from" "bob@example.test" { reject "not from you, bob"; }`)
		send(t, bob, "sieve rejected")
		bounce := s.WaitForMail(bob, 1, 10*time.Second)[0]
		if !strings.Contains(string(bounce), "not from you, bob") || !strings.Contains(string(bounce), "sieve rejected") {
			t.Errorf("bounce:\n%s", bounce)
		}
		wantNotIn(t, filepath.Join(demo, "new"), "sieve rejected")
	})

	t.Run("redirect, with Delivered-To", func(t *testing.T) {
		script(t, `redirect "bob@example.test";`)
		send(t, "carol@other.test", "sieve redirected")
		got := waitSubject(t, filepath.Join(s.Mailbox(bob), "new"), "sieve redirected")
		if d := got.field(t, "Delivered-To"); d != demoUser {
			t.Errorf("Delivered-To: %q", d)
		}
		wantNotIn(t, filepath.Join(demo, "new"), "sieve redirected")
	})

	// As Dovecot does, a redirect that cannot go (a loop, a refused
	// address) is dropped and the message kept, never lost or bounced.
	t.Run("a redirect loop is kept instead", func(t *testing.T) {
		script(t, `redirect "bob@example.test";`)
		send(t, bob, "sieve looped", "Delivered-To: "+demoUser+"\r\n")
		waitLogLine(t, s, `mail forwarding loop: redirect dropped, kept`)
		waitSubject(t, filepath.Join(demo, "new"), "sieve looped")
	})

	t.Run("a redirect the MTA refuses is kept instead", func(t *testing.T) {
		script(t, `redirect "nobody-here@example.test";`)
		send(t, bob, "sieve refused redirect")
		waitSubject(t, filepath.Join(demo, "new"), "sieve refused redirect")
		waitLogLine(t, s, `redirect refused by the MTA: dropped, kept`)
	})

	t.Run("vacation answers once per sender, never <>", func(t *testing.T) {
		const dave = "dave@example.test"
		s.Postline("dave-password\n", "user", "add", dave)
		script(t, `require "vacation"; vacation :days 1 :subject "away" "I am on holiday.";`)
		send(t, dave, "sieve vacation 1")
		send(t, dave, "sieve vacation 2")
		send(t, "", "sieve vacation from <>")
		waitSubject(t, filepath.Join(demo, "new"), "sieve vacation from <>")
		got := waitSubject(t, filepath.Join(s.Mailbox(dave), "new"), "away")
		if a := got.field(t, "Auto-Submitted"); a != "auto-replied (vacation)" || got.field(t, "Return-Path") != "<>" {
			t.Errorf("reply:\n%s", got.Raw)
		}
		if n := strings.Count(s.Log(), `"plugin's message sent"`); n != 1 {
			t.Errorf("%d replies sent, want 1", n)
		}
	})

	t.Run("a broken script keeps mail, logged with line and column", func(t *testing.T) {
		script(t, "if header :contains \"subject\" \"x\" {\n  fileinto \"Nope\";\n")
		send(t, bob, "sieve broken script")
		waitSubject(t, filepath.Join(demo, "new"), "sieve broken script")
		waitLogLine(t, s, `sieve script does not parse; implicit keep`, `"line":1`, `"column":35`, `block opened here is not closed`)
	})
}

// waitGlob waits until pattern matches a file.
func waitGlob(t *testing.T, pattern string) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m
		}
	}
	t.Fatalf("nothing matches %s", pattern)
	return nil
}

// A Sieve redirect out of the local domains leaves through the MTA as an
// alias's forward does: with an SRS sender, and Delivered-To on top.
func TestSieveRedirectOutUsesSRS(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	outside := n.Sink(sinkOptions{})
	n.DNS.Add(t, "outside.test. MX 10 mx.outside.test.", "mx.outside.test. A "+outside.IP)
	s := n.Stack(relayConfig{Plugins: "\n[[plugins]]\nname = \"sieve\"\ndaemon = \"mda\"\n", Prepare: func(dir string) {
		home := filepath.Join(dir, "var", "mail", "example.test", "demo")
		os.MkdirAll(home, 0o700)
		os.WriteFile(filepath.Join(home, ".dovecot.sieve"), []byte(`redirect "friend@outside.test";`), 0o600)
	}})
	if err := sendToMTA(s.MTA, "alice@sender.test", demoUser, "Subject: redirected out\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	got := outside.WaitMessages(t, 1, 10*time.Second)[0]
	if !strings.HasPrefix(got.From, "SRS0=") || !strings.HasSuffix(got.From, "=sender.test=alice@example.test") {
		t.Errorf("redirected with MAIL FROM:<%s>, want an SRS0 address", got.From)
	}
	if !strings.Contains(string(got.Data), "Delivered-To: "+demoUser) {
		t.Errorf("no Delivered-To:\n%s", got.Data)
	}
}

// BenchmarkSieveStack is inbound mail from 8 clients to the Maildir,
// without and with a 50-rule Sieve script that matches no rule (every
// test runs, then the implicit keep): the difference is Sieve's cost per
// delivery, the plugin's process included (µs-cpu/msg:postline-mda-plugins).
func BenchmarkSieveStack(b *testing.B) {
	var rules strings.Builder
	rules.WriteString(`require ["fileinto", "imap4flags", "body", "relational", "comparator-i;ascii-numeric"];` + "\n")
	for i := range 49 {
		fmt.Fprintf(&rules, "if anyof (header :contains \"subject\" \"lottery%d\", address :domain \"from\" \"spam%d.test\") { fileinto \"Junk%d\"; stop; }\n", i, i, i)
	}
	rules.WriteString(`if body :text :contains "unsubscribe-never" { addflag "\\Flagged"; }` + "\n")
	for _, sieve := range []bool{false, true} {
		b.Run(fmt.Sprintf("sieve=%v", sieve), func(b *testing.B) {
			cfg := StackConfig{}
			if sieve {
				cfg.Plugins = "\n[[plugins]]\nname = \"sieve\"\ndaemon = \"mda\"\n"
				cfg.Prepare = func(dir string) {
					home := filepath.Join(dir, "var", "mail", "example.test", "demo")
					os.MkdirAll(home, 0o700)
					os.WriteFile(filepath.Join(home, ".dovecot.sieve"), []byte(rules.String()), 0o600)
				}
			}
			s := StartStackWith(b, cfg)
			defer s.stop()
			benchStackInbound(b, s, 8)
		})
	}
}

// The MDA's socket to the MTA, which the mda user shares with Dovecot,
// takes the MDA's mail only: a reply from <> or a redirect, never a sender
// without the redirect mark, a submitter (AUTH, EXTERNAL) or the MSA's
// parameters.
func TestMDASocketTakesOnlyRepliesAndRedirects(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	conn, err := net.Dial("unix", filepath.Join(s.Dir, "var", "run", "mta-mda.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c := secWrap(t, conn)
	c.expectReply("greeting", 220, "")
	c.expect("EHLO mda", 250, "")
	c.expect("AUTH EXTERNAL =", 523, "5.7.10")
	c.expect("MAIL FROM:<mallory@example.test>", 550, "5.7.1")
	c.expect("MAIL FROM:<> X-POSTLINE-ID=06K03AGGXD8H8HT5", 500, "5.5.4")
	c.expect("MAIL FROM:<> AUTH=demo@example.test", 250, "")
	c.expect("RCPT TO:<demo@example.test>", 250, "")
	c.expect("DATA", 354, "")
	c.expect("Subject: from the mda socket\r\n\r\nhi\r\n.", 250, "")
	// Queued as nobody's submission: AUTH= from this socket counts for nothing.
	waitLogLine(t, s, `"message":"queued"`, `"from":""`, `"auth":""`)
}

// A vacation reply is DKIM-signed by the MTA with the key of its From's
// domain, as a bounce is: it passes none of the MSA's plugins.
func TestSieveVacationReplyIsSigned(t *testing.T) {
	t.Parallel()
	pub, private, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(private)
	keyFile := filepath.Join(t.TempDir(), "example.test.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	s := StartStackWith(t, StackConfig{Plugins: fmt.Sprintf("\n[[plugins]]\nname = \"sieve\"\ndaemon = \"mda\"\n"+
		"[[plugins]]\nname = \"dkim-sign\"\ndaemon = \"msa\"\nhooks = [\"data\"]\n"+
		"[[plugins.config.keys]]\ndomain = \"example.test\"\nselector = \"mail\"\nkey_file = %q\n", keyFile),
		Prepare: func(dir string) {
			home := filepath.Join(dir, "var", "mail", "example.test", "demo")
			os.MkdirAll(home, 0o700)
			os.WriteFile(filepath.Join(home, ".dovecot.sieve"), []byte(`require "vacation"; vacation "away";`), 0o600)
		}})
	s.Postline("carol-password\n", "user", "add", "carol@example.test")
	if err := sendToMTA(s.MTA, "carol@example.test", demoUser, plainMsg("carol@example.test", "are you there", "hi\r\n")); err != nil {
		t.Fatal(err)
	}
	reply := s.WaitForRawMail("carol@example.test", 1, 10*time.Second)[0]
	verifySigned(t, reply, "mail._domainkey.example.test", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
}

package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"postline/dnstest"
)

// TestAntispam runs the bundled antispam plugin on the MTA's data hook
// of one stack, against a DNS server in the test that publishes SPF,
// DKIM and DMARC records and a DNSBL zone. Internet mail reaches the MTA
// from a loopback address the test picks, so that it knows the IP that
// SPF and the DNSBL judge; every verdict is read in the SMTP reply or in
// the delivered copy (inbox or Maildir++ .Junk).
func TestAntispam(t *testing.T) {
	t.Parallel()
	w := newSpamWorld(t)
	// The MTA asks the same server for its clients' reverse DNS.
	s := StartStackWith(t, StackConfig{MTA: fmt.Sprintf("dns_server = %q\n", w.dns.Addr), Plugins: w.plugin()})
	w.s = s
	inbox := filepath.Join(s.Mailbox(demoUser), "new")
	junk := filepath.Join(s.Mailbox(demoUser), ".Junk", "new")

	t.Run("spf pass", func(t *testing.T) {
		w.send(t, w.cleanIP, "alice@spf-pass.test", plainMsg("alice@spf-pass.test", "antispam spf pass", "hello\r\n"))
		got := waitSubject(t, inbox, "antispam spf pass")
		wantSpamFields(t, got,
			"mail.example.test; spf=pass smtp.mailfrom=alice@spf-pass.test; dkim=none; dmarc=none header.from=spf-pass.test",
			"0.0", "No, score=0.0 required=5.0 tests=none")
	})

	// The sender also forges our verdict; only the plugin's own fields
	// reach the mailbox (wantSpamFields wants each field once).
	t.Run("spf fail files into Junk", func(t *testing.T) {
		forged := "Authentication-Results: mail.example.test; spf=pass smtp.mailfrom=bob@spf-fail.test\r\n" +
			"X-Spam-Status: No, score=-100.0 required=5.0 tests=none\r\nX-Spam-Score: -100.0\r\n"
		w.send(t, w.cleanIP, "bob@spf-fail.test", forged+plainMsg("bob@spf-fail.test", "antispam spf fail", "buy now\r\n"))
		got := waitSubject(t, junk, "antispam spf fail")
		wantSpamFields(t, got,
			"mail.example.test; spf=fail smtp.mailfrom=bob@spf-fail.test; dkim=none; dmarc=none header.from=spf-fail.test",
			"6.0", "Yes, score=6.0 required=5.0 tests=SPF_FAIL")
		wantNotIn(t, inbox, "antispam spf fail")
	})

	t.Run("header rule", func(t *testing.T) {
		w.send(t, w.cleanIP, "alice@spf-pass.test", plainMsg("alice@spf-pass.test", "antispam Lottery winner", "you won\r\n"))
		got := waitSubject(t, inbox, "antispam Lottery winner")
		wantSpamFields(t, got,
			"mail.example.test; spf=pass smtp.mailfrom=alice@spf-pass.test; dkim=none; dmarc=none header.from=spf-pass.test",
			"2.5", "No, score=2.5 required=5.0 tests=SUBJECT_LOTTERY")
	})

	t.Run("dnsbl listing is refused at the end of DATA", func(t *testing.T) {
		_, err := sendFromIP(t, s, internetMail{IP: w.listedIP, Helo: "mx.spf-pass.test", From: "alice@spf-pass.test",
			To: []string{demoUser}, Data: plainMsg("alice@spf-pass.test", "antispam dnsbl refused", "hello\r\n")})
		wantReply(t, "listed client", err, 550, smtp.EnhancedCode{5, 7, 1})
		var serr *smtp.SMTPError
		if errors.As(err, &serr) && serr.Message != "message refused as spam (score 10.0)" {
			t.Errorf("reply text %q", serr.Message)
		}
		// The logs travel their own pipes: they may trail the reply.
		refused := waitLogEvent(t, s, "message refused by plugin", nil)
		if refused["plugin"] != "antispam" || refused["reply"] != "550 5.7.1 message refused as spam (score 10.0)" {
			t.Errorf("the MTA logged %v, want a refusal by antispam", refused)
		}
		scored := waitLogEvent(t, s, "scored", func(ev map[string]any) bool { return ev["queue_id"] == refused["queue_id"] })
		if scored["action"] != "reject" || scored["tests"] != "DNSBL_bl.test" {
			t.Errorf("the plugin logged %v, want action reject and tests DNSBL_bl.test", scored)
		}
	})

	// A negative body rule brings the same listing under junk_score, so
	// the zone shows in the delivered copy's tests=.
	t.Run("dnsbl listing offset by a body rule", func(t *testing.T) {
		body := "news of the week\r\nSent by our own list server\r\n"
		w.send(t, w.listedIP, "alice@spf-pass.test", plainMsg("alice@spf-pass.test", "antispam dnsbl offset", body))
		got := waitSubject(t, inbox, "antispam dnsbl offset")
		wantSpamFields(t, got,
			"mail.example.test; spf=pass smtp.mailfrom=alice@spf-pass.test; dkim=none; dmarc=none header.from=spf-pass.test",
			"4.0", "No, score=4.0 required=5.0 tests=DNSBL_bl.test,OUR_NEWSLETTER")
	})

	// MAIL FROM is a forwarder whose SPF passes but does not align with
	// From: signed.test, so DMARC rests on the DKIM signature alone.
	t.Run("dkim pass aligns dmarc", func(t *testing.T) {
		msg := w.sign(t, "antispam dkim intact", "signed body\r\n")
		w.send(t, w.cleanIP, "list@forwarder.test", msg)
		got := waitSubject(t, inbox, "antispam dkim intact")
		wantSpamFields(t, got,
			"mail.example.test; spf=pass smtp.mailfrom=list@forwarder.test; dkim=pass header.d=signed.test header.i=@signed.test; dmarc=pass header.from=signed.test",
			"0.0", "No, score=0.0 required=5.0 tests=none")
	})

	// dkim_fail 2 + dmarc_reject 4 = 6: Junk, not refused.
	t.Run("dkim body altered fails dmarc p=reject", func(t *testing.T) {
		msg := w.sign(t, "antispam dkim altered", "signed body\r\n")
		msg = strings.Replace(msg, "signed body\r\n", "signed body, then altered\r\n", 1)
		w.send(t, w.cleanIP, "list@forwarder.test", msg)
		got := waitSubject(t, junk, "antispam dkim altered")
		wantSpamFields(t, got,
			`mail.example.test; spf=pass smtp.mailfrom=list@forwarder.test; dkim=fail reason="dkim: body hash did not verify" header.d=signed.test header.i=@signed.test; dmarc=fail header.from=signed.test`,
			"6.0", "Yes, score=6.0 required=5.0 tests=DKIM_FAIL,DMARC_REJECT")
		wantNotIn(t, inbox, "antispam dkim altered")
	})

	// The MTA runs its plugins for internet mail only: what the MSA hands
	// it on the trusted socket is an authenticated user's, and is not
	// scored at all.
	t.Run("authenticated submission is not scored", func(t *testing.T) {
		if _, err := s.Submit(Submission{To: []string{demoUser}, Body: "Subject: antispam submitted\r\n\r\nfrom demo\r\n"}); err != nil {
			t.Fatal(err)
		}
		got := waitSubject(t, inbox, "antispam submitted")
		for _, f := range []string{"X-Spam-Status", "X-Spam-Score", "Authentication-Results"} {
			if got.Header.Get(f) != "" {
				t.Errorf("submitted mail has %s: %q", f, got.Header.Get(f))
			}
		}
		// One "scored" per internet message above, none for this one.
		scored := waitEvents(t, s, "scored", func(evs []map[string]any) bool { return len(evs) >= 7 })
		if n := len(scored); n != 7 {
			t.Errorf("the plugin scored %d messages, want the 7 from the internet", n)
		}
	})

	t.Run("refused message went nowhere", func(t *testing.T) {
		wantNotIn(t, inbox, "antispam dnsbl refused")
		wantNotIn(t, junk, "antispam dnsbl refused")
	})
}

// spamWorld is TestAntispam's internet: its DNS records, the DKIM key
// of signed.test, and two client IPs, one listed in bl.test.
type spamWorld struct {
	s                 *Stack
	dns               *dnstest.Server
	key               ed25519.PrivateKey // selector "sel" of signed.test
	cleanIP, listedIP string
}

func newSpamWorld(t *testing.T) *spamWorld {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w := &spamWorld{dns: dnstest.Start(t), key: key, cleanIP: randomLoopback(), listedIP: randomLoopback()}
	for w.listedIP == w.cleanIP {
		w.listedIP = randomLoopback()
	}
	w.dns.Add(t,
		`spf-pass.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
		`forwarder.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
		`spf-fail.test. 300 IN TXT "v=spf1 -all"`,
		`sel._domainkey.signed.test. 300 IN TXT "v=DKIM1; k=ed25519; p=`+base64.StdEncoding.EncodeToString(pub)+`"`,
		`_dmarc.signed.test. 300 IN TXT "v=DMARC1; p=reject"`,
		// RFC 5782 §2.1: the listing of 127.a.b.c is c.b.a.127.bl.test.
		dnsblName(w.listedIP, "bl.test")+" 300 IN A 127.0.0.2",
	)
	return w
}

// plugin is the [[plugins]] table: SPF fail alone crosses junk_score, a
// DNSBL listing alone reaches reject_score.
func (w *spamWorld) plugin() string {
	return fmt.Sprintf(`
[[plugins]]
name = "antispam"
daemon = "mta"
hooks = ["data"]
[plugins.config]
dns_server = %q
dns_timeout = "1s"
dnsbl_zones = ["bl.test"]
junk_score = 5.0
reject_score = 10.0
spf_fail = 6.0
dkim_fail = 2.0
dmarc_reject = 4.0
dnsbl_score = 10.0
[[plugins.config.rules]]
name = "SUBJECT_LOTTERY"
header = "Subject"
pattern = "(?i)lottery"
score = 2.5
[[plugins.config.rules]]
name = "OUR_NEWSLETTER"
body = "^Sent by our own list server$"
score = -6.0
`, w.dns.Addr)
}

// send sends data from a client at ip with MAIL FROM from to demo, and
// fails unless the MTA queues it.
func (w *spamWorld) send(t *testing.T, ip, from, data string) {
	t.Helper()
	_, domain, _ := strings.Cut(from, "@")
	text, err := sendFromIP(t, w.s, internetMail{IP: ip, Helo: "mx." + domain, From: from, To: []string{demoUser}, Data: data})
	if err != nil {
		t.Fatalf("send from %s at %s: %v", from, ip, err)
	}
	if !strings.HasPrefix(text, "2.0.0 Ok: queued as ") {
		t.Fatalf("reply %q, want queued", text)
	}
}

// sign returns a message from news@signed.test, signed by selector sel.
func (w *spamWorld) sign(t *testing.T, subject, body string) string {
	t.Helper()
	var out bytes.Buffer
	opts := &dkim.SignOptions{Domain: "signed.test", Selector: "sel", Signer: w.key,
		HeaderKeys: []string{"From", "To", "Subject"}}
	if err := dkim.Sign(&out, strings.NewReader(plainMsg("news@signed.test", subject, body)), opts); err != nil {
		t.Fatalf("dkim.Sign: %v", err)
	}
	return out.String()
}

// dnsblName is the name a DNSBL zone lists ip under.
func dnsblName(ip, zone string) string {
	b := netip.MustParseAddr(ip).As4()
	return fmt.Sprintf("%d.%d.%d.%d.%s.", b[3], b[2], b[1], b[0], zone)
}

func plainMsg(from, subject, body string) string {
	return "From: " + from + "\r\nTo: " + demoUser + "\r\nSubject: " + subject + "\r\n\r\n" + body
}

// wantSpamFields checks the three fields the plugin writes, each there once.
func wantSpamFields(t *testing.T, m deliveredMsg, authResults, score, status string) {
	t.Helper()
	if got := m.field(t, "Authentication-Results"); got != authResults {
		t.Errorf("Authentication-Results:\n got %s\nwant %s", got, authResults)
	}
	if got := m.field(t, "X-Spam-Score"); got != score {
		t.Errorf("X-Spam-Score: got %s, want %s", got, score)
	}
	if got := m.field(t, "X-Spam-Status"); got != status {
		t.Errorf("X-Spam-Status:\n got %s\nwant %s", got, status)
	}
}

func wantNotIn(t *testing.T, dir, subject string) {
	t.Helper()
	if _, ok := bySubject(t, dir, subject); ok {
		t.Errorf("%q is in %s", subject, dir)
	}
}

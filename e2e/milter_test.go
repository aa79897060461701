package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"postline/dnstest"
)

// gtube is the GTUBE line, which rspamd rejects whatever else it finds.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"

// rspamd, through the milter bridge on the MTA, rejects GTUBE with its
// own reply, adds its headers to a clean message, and once it is down
// mail is deferred (on_error = "tempfail", Postfix's milter_default_action).
func TestMilterRspamd(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	milter := startRspamd(t, dns.Addr)
	s := StartStackWith(t, StackConfig{MTA: fmt.Sprintf("dns_server = %q\n", dns.Addr), Plugins: milterPlugin("rspamd", "mta", milter.Addr)})
	inbox := filepath.Join(s.Mailbox(demoUser), "new")
	client := randomLoopback()
	send := func(subject, body string) (string, error) {
		return sendFromIP(t, s, internetMail{IP: client, Helo: "mx.sender.test", From: "alice@sender.test",
			To: []string{demoUser}, Data: plainMsg("alice@sender.test", subject, body)})
	}

	t.Run("GTUBE rejected with rspamd's reply", func(t *testing.T) {
		_, err := send("milter gtube", gtube)
		wantSMTPError(t, err, 554, "5.7.1", "Gtube pattern")
		wantNotIn(t, inbox, "milter gtube")
	})

	t.Run("clean message gets rspamd's headers", func(t *testing.T) {
		if _, err := send("milter clean", "hello from a clean sender\r\n"); err != nil {
			t.Fatal(err)
		}
		got := waitSubject(t, inbox, "milter clean")
		if r := got.field(t, "X-Spamd-Result"); !strings.HasPrefix(r, "default: False [") {
			t.Errorf("X-Spamd-Result: %q", r)
		}
		// rspamd counts loopback clients as local whatever its config
		// says, so it checks no SPF or DKIM here: its field says none.
		if ar := got.field(t, "Authentication-Results"); ar != "postline-mta; none" {
			t.Errorf("Authentication-Results: %q in\n%s", ar, got.Raw)
		}
	})

	t.Run("milter down defers", func(t *testing.T) {
		milter.Stop()
		_, err := send("milter down", "hello\r\n")
		wantSMTPError(t, err, 451, "4.7.0", "filter rspamd unavailable")
	})
}

// wantSMTPError fails unless err is the SMTP reply code enhanced text.
func wantSMTPError(t *testing.T, err error, code int, enhanced, text string) {
	t.Helper()
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) {
		t.Fatalf("got %v, want %d %s %s", err, code, enhanced, text)
	}
	got := fmt.Sprintf("%d %d.%d.%d %s", serr.Code, serr.EnhancedCode[0], serr.EnhancedCode[1], serr.EnhancedCode[2], serr.Message)
	if want := fmt.Sprintf("%d %s %s", code, enhanced, text); got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
}

// OpenDKIM, through the milter bridge, signs what users submit on the
// MSA (the signature verifies on the delivered copy) and, on the MTA,
// verifies what comes from the internet and says so in its
// Authentication-Results.
func TestMilterOpenDKIM(t *testing.T) {
	t.Parallel()
	ourKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	theirPub, theirKey, _ := ed25519.GenerateKey(rand.Reader)
	dns := dnstest.Start(t, `sel._domainkey.signed.test. 300 IN TXT "v=DKIM1; k=ed25519; p=`+base64.StdEncoding.EncodeToString(theirPub)+`"`)
	dir := safeTempDir(t)
	keyFile := filepath.Join(dir, "mail.private")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(ourKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	resolver := filepath.Join(dir, "unbound.conf")
	// OpenDKIM asks libunbound, pointed at the test's DNS server.
	writeAt(t, resolver, fmt.Sprintf("server:\n  do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\nforward-zone:\n  name: \".\"\n  forward-addr: %s\n",
		strings.Replace(dns.Addr, ":", "@", 1)))
	milter := startOpenDKIM(t, fmt.Sprintf("Mode sv\nDomain example.test\nSelector mail\nKeyFile %s\n"+
		"Canonicalization relaxed/simple\nAuthservID mail.example.test\nResolverConfiguration %s\n", keyFile, resolver))
	s := StartStackWith(t, StackConfig{MTA: fmt.Sprintf("dns_server = %q\n", dns.Addr),
		Plugins: milterPlugin("opendkim-sign", "msa", milter.Addr) + milterPlugin("opendkim-verify", "mta", milter.Addr)})
	inbox := filepath.Join(s.Mailbox(demoUser), "new")

	t.Run("signs a submission", func(t *testing.T) {
		body := "From: Demo <demo@example.test>\r\nTo: demo@example.test\r\nSubject: opendkim signed\r\n\r\nhello\r\n"
		if _, err := s.Submit(Submission{To: []string{demoUser}, Body: body}); err != nil {
			t.Fatal(err)
		}
		got := waitSubject(t, inbox, "opendkim signed")
		der, _ := x509.MarshalPKIXPublicKey(&ourKey.PublicKey)
		verifySigned(t, got.Raw, "mail._domainkey.example.test", "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(der))
	})

	t.Run("verifies an inbound signature", func(t *testing.T) {
		var signed bytes.Buffer
		opts := &dkim.SignOptions{Domain: "signed.test", Selector: "sel", Signer: theirKey, HeaderKeys: []string{"From", "To", "Subject"}}
		if err := dkim.Sign(&signed, strings.NewReader(plainMsg("news@signed.test", "opendkim verified", "news\r\n")), opts); err != nil {
			t.Fatal(err)
		}
		_, err := sendFromIP(t, s, internetMail{IP: randomLoopback(), Helo: "mx.signed.test", From: "news@signed.test",
			To: []string{demoUser}, Data: signed.String()})
		if err != nil {
			t.Fatal(err)
		}
		got := waitSubject(t, inbox, "opendkim verified")
		if ar := got.field(t, "Authentication-Results"); !strings.HasPrefix(ar, "mail.example.test; dkim=pass") || !strings.Contains(ar, "header.d=signed.test") {
			t.Errorf("Authentication-Results: %q; DNS queries %q", ar, dns.Queries())
		}
	})
}

// BenchmarkMilterRspamd is inbound mail from 8 clients to the Maildir,
// without rspamd, with it through the milter bridge at every hook, and at
// the data hook only (one call per message instead of four): the bridge's
// process's CPU per message (µs-cpu/msg:postline-mta-plugins; the
// received filter runs inside the MTA) against rspamd's own
// (µs-cpu/msg:rspamd).
func BenchmarkMilterRspamd(b *testing.B) {
	for _, hooks := range []string{"none", "all", "data"} {
		b.Run("hooks="+hooks, func(b *testing.B) {
			dns := dnstest.Start(b)
			cfg := StackConfig{MTA: fmt.Sprintf("dns_server = %q\n", dns.Addr)}
			var rspamd *milterDaemon
			if hooks != "none" {
				rspamd = startRspamd(b, dns.Addr)
				cfg.Plugins = milterPlugin("rspamd", "mta", rspamd.Addr)
				if hooks == "data" {
					cfg.Plugins = strings.Replace(cfg.Plugins, "daemon = \"mta\"\n", "daemon = \"mta\"\nhooks = [\"data\"]\n", 1)
				}
			}
			s := StartStackWith(b, cfg)
			defer s.stop()
			var before time.Duration
			if rspamd != nil {
				before = rspamd.CPU()
			}
			benchStackInbound(b, s, 8)
			if rspamd != nil {
				b.ReportMetric(float64((rspamd.CPU()-before).Microseconds())/float64(b.N), "µs-cpu/msg:rspamd")
			}
		})
	}
}

// A "milter" that speaks garbage (an HTTP server's answer) fails the
// hook call: the client is told to try later, nothing is queued, and the
// next client gets the same, not a pass unfiltered.
func TestMilterSpeakingGarbage(t *testing.T) {
	t.Parallel()
	l := listenFree(t)
	t.Cleanup(func() { l.Close() }) // ends the accept loop
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
		}
	}()
	s := StartStackWith(t, StackConfig{Plugins: milterPlugin("garbage", "mta", "inet:"+l.Addr().String())})
	for i := range 2 {
		_, err := sendFromIP(t, s, internetMail{IP: "127.0.0.1", Helo: "mx.sender.test", From: "alice@sender.test",
			To: []string{demoUser}, Data: plainMsg("alice@sender.test", fmt.Sprintf("garbage %d", i), "hi\r\n")})
		wantSMTPError(t, err, 451, "4.7.0", "filter garbage unavailable")
	}
	if strings.Contains(s.Log(), `"message":"queued"`) {
		t.Error("a message was queued")
	}
}

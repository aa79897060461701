package e2e

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"postline/queue"
)

// REQUIRETLS (RFC 8689): offered after STARTTLS only, refused on a
// plaintext session (530 5.7.10); a message sent with it is relayed
// only over verified TLS to a next hop that offers REQUIRETLS, which is
// passed on, and bounces without a plaintext attempt otherwise (5.7.30
// for a host without the extension, 5.7.10 for one whose certificate
// does not verify). The envelope keeps the requirement.
func TestREQUIRETLS(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	ca := newTestCA(t)
	withCert := func(name string, offer bool) *sink {
		return n.Sink(sinkOptions{RequireTLS: offer, TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, name)}}})
	}
	mx := map[string]*sink{"capable.test": withCert("mx.capable.test", true),
		"incapable.test": withCert("mx.incapable.test", false),
		"untrusted.test": n.Sink(sinkOptions{StartTLS: true, RequireTLS: true})}
	for d, s := range mx {
		n.DNS.Add(t, d+". MX 10 mx."+d+".", "mx."+d+". A "+s.IP)
	}
	n.DNS.Add(t, "down.test. MX 10 mx.down.test.", "mx.down.test. A "+n.DeadAddr())
	s := n.Stack(relayConfig{MTA: "tls_roots = \"" + ca.File + "\"\n"})
	requireTLS := &smtp.MailOptions{RequireTLS: true}

	submitWith(t, s, demoUser, requireTLS, nil, relayMessage("must be private", "user@capable.test"), "user@capable.test")
	got := mx["capable.test"].WaitMessages(t, 1, 10*time.Second)[0]
	if !got.Mail.RequireTLS || got.TLS == nil {
		t.Errorf("capable.test got REQUIRETLS %v over TLS %v", got.Mail.RequireTLS, got.TLS != nil)
	}
	for i, tc := range []struct{ domain, status string }{{"incapable.test", "5.7.30"}, {"untrusted.test", "5.7.10"}} {
		to := "user@" + tc.domain
		submitWith(t, s, demoUser, requireTLS, nil, relayMessage("to "+tc.domain, to), to)
		msgs := s.WaitForMail(demoUser, i+1, 10*time.Second)
		b := parseBounce(t, findMessage(t, msgs, "Subject: to "+tc.domain))
		wantFields(t, b.Recipient(t, to), map[string]string{"Action": "failed", "Status": tc.status})
		if got := len(mx[tc.domain].Messages()); got != 0 {
			t.Errorf("%s took %d messages", tc.domain, got)
		}
	}

	down := submitWith(t, s, demoUser, requireTLS, nil, relayMessage("kept", "user@down.test"), "user@down.test")
	if env := waitEnvelope(t, s, down, attempted); !env.RequireTLS || env.Recipients[0].State != queue.Pending {
		t.Errorf("the queue lost REQUIRETLS or gave up: %+v", env)
	}
	if out := s.Postline("", "queue", "show", down); !strings.Contains(out, "requiretls  yes") {
		t.Errorf("queue show:\n%s", out)
	}

	c := secDial(t, "", s.MTA)
	if ehlo := c.expect("EHLO client.example.net", 250, ""); strings.Contains(ehlo, "REQUIRETLS") {
		t.Errorf("REQUIRETLS offered before STARTTLS:\n%s", ehlo)
	}
	c.expect("MAIL FROM:<someone@remote.test> REQUIRETLS", 530, "5.7.10")
	if err := c.startTLS(secTLS()); err != nil {
		t.Fatal(err)
	}
	if ehlo := c.expect("EHLO client.example.net", 250, ""); !strings.Contains(ehlo, "REQUIRETLS") {
		t.Errorf("REQUIRETLS not offered after STARTTLS:\n%s", ehlo)
	}
	c.expect("MAIL FROM:<someone@remote.test> REQUIRETLS", 250, "2.1.0")
}

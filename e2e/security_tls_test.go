package e2e

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// Every TLS listener speaks TLS 1.2 and 1.3 only: RFC 8996 forbids TLS
// 1.0 and 1.1. A client that offers no more than 1.1 must fail its
// handshake with the server's protocol_version alert, not fall back.
func TestSecurityTLSVersions(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	listeners := []struct {
		name, addr string
		implicit   bool
	}{
		{"msa starttls", s.Submission, false},
		{"msa implicit tls", s.Submissions, true},
		{"mta starttls", s.MTA, false},
	}
	versions := []struct {
		name    string
		version uint16
		ok      bool
	}{
		{"TLS 1.0", tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, true},
	}
	for _, l := range listeners {
		for _, v := range versions {
			cfg := secTLS()
			cfg.MinVersion, cfg.MaxVersion = v.version, v.version
			version, err := secHandshakeOn(t, l.addr, l.implicit, cfg)
			switch {
			case v.ok && err != nil:
				t.Errorf("%s, %s: handshake failed: %v", l.name, v.name, err)
			case v.ok && version != v.version:
				t.Errorf("%s, %s: negotiated %s", l.name, v.name, tls.VersionName(version))
			case !v.ok && err == nil:
				t.Errorf("%s, %s: handshake succeeded, want it refused", l.name, v.name)
			case !v.ok && !strings.Contains(err.Error(), "remote error: tls: protocol version not supported"):
				t.Errorf("%s, %s: handshake failed with %v, want the server's protocol_version alert", l.name, v.name, err)
			}
		}
	}
}

// secHandshakeOn connects to addr, starts TLS (implicitly or with
// STARTTLS), checks that the session answers EHLO, and returns the
// negotiated version or the handshake error.
func secHandshakeOn(t *testing.T, addr string, implicit bool, cfg *tls.Config) (uint16, error) {
	t.Helper()
	var c *secConn
	if implicit {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return 0, err
		}
		c = secWrap(t, conn)
		c.expectReply("greeting over TLS", 220, "")
	} else {
		c = secDial(t, "", addr)
		c.expect("EHLO client.example.net", 250, "")
		if err := c.startTLS(cfg); err != nil {
			c.conn.Close()
			return 0, err
		}
	}
	c.expect("EHLO client.example.net", 250, "")
	version := c.conn.(*tls.Conn).ConnectionState().Version
	c.expect("QUIT", 221, "2.0.0")
	return version, nil
}

// CVE-2011-0411: a man in the middle appends a command to the client's
// STARTTLS in the same packet. The appended command arrives in clear
// text; a server that kept it in its input buffer would run it inside
// the TLS session as if the client had sent it there. RFC 3207 §4.2: the
// server must discard what it read before the handshake. So the first
// reply over TLS must be the one to the client's own EHLO, and no reply
// to the injected RSET may follow.
func TestSecuritySTARTTLSInjection(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	for _, port := range []struct{ name, addr string }{{"msa", s.Submission}, {"mta", s.MTA}} {
		c := secDial(t, "", port.addr)
		c.expect("EHLO client.example.net", 250, "")
		c.write("STARTTLS\r\nRSET\r\n") // one write: one TCP segment
		c.expectReply(port.name+": STARTTLS", 220, "2.0.0")
		if err := c.handshake(secTLS()); err != nil {
			t.Fatalf("%s: handshake: %v", port.name, err)
		}
		c.write("EHLO client.example.net\r\n")
		if text := c.expectReply(port.name+": EHLO over TLS", 250, ""); !strings.HasPrefix(text, "Hello client.example.net\n") {
			t.Errorf("%s: first reply over TLS is %q, not the EHLO's: the injected RSET ran", port.name, text)
		}
		// Had RSET been kept, its 250 would come before VRFY's 252.
		c.expect("VRFY postmaster", 252, "2.0.0")
	}
}

// RFC 3207 §4.2: after the handshake "the server MUST discard any
// knowledge obtained from the client", the MAIL FROM given in clear text
// included; a man in the middle could otherwise choose the sender of a
// transaction the client completes over TLS. go-smtp answers a RCPT
// without MAIL with 502 5.5.1 (RFC 5321 §4.2.4: bad sequence).
func TestSecuritySTARTTLSResetsSession(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c := secDial(t, "", s.MTA)
	c.expect("EHLO client.example.net", 250, "")
	c.expect("MAIL FROM:<injected@remote.test>", 250, "2.1.0")
	if err := c.startTLS(secTLS()); err != nil {
		t.Fatal(err)
	}
	c.expect("EHLO client.example.net", 250, "")
	c.expect("RCPT TO:<"+demoUser+">", 502, "5.5.1")
	c.expect("DATA", 502, "5.5.1")
	c.expect("STARTTLS", 502, "5.5.1") // once is enough
	// A transaction started over TLS works.
	c.expect("MAIL FROM:<someone@remote.test>", 250, "2.1.0")
	c.expect("RCPT TO:<"+demoUser+">", 250, "2.1.5")
	c.expect("DATA", 354, "")
	c.write("Subject: over TLS\r\n\r\nhello\r\n.\r\n")
	c.expectReply("end of data", 250, "2.0.0")
	got := s.WaitForMail(demoUser, 1, 10*time.Second)[0]
	if string(got) != "Return-Path: <someone@remote.test>\nSubject: over TLS\n\nhello\n" {
		t.Errorf("delivered %q", got)
	}
}

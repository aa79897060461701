package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"postline/dnstest"
)

// testCA signs server certificates that postline trusts through
// mta.tls_roots.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	File string // its certificate, PEM
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "postline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, File: filepath.Join(t.TempDir(), "ca.pem")}
	os.WriteFile(ca.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return ca
}

// issue makes a server certificate for names: host names or IPs.
func (ca *testCA) issue(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// smarthost is a provider's submission server: AUTH PLAIN only over
// TLS, with one account, recording logins and messages.
type smarthost struct {
	Addr string

	mu       sync.Mutex
	logins   []string // "user:password" tried
	insecure int      // AUTH commands over plaintext
	msgs     []sinkMsg
}

type smarthostOptions struct {
	cert     *tls.Certificate // nil: no TLS at all
	implicit bool             // TLS from the first byte, no STARTTLS
}

const smarthostUser, smarthostPassword = "me@provider.test", "provider secret"

func startSmarthost(t *testing.T, ip string, opts smarthostOptions) *smarthost {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	h := &smarthost{Addr: l.Addr().String()}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smarthostSession{h: h, c: c}, nil
	}))
	srv.Domain, srv.ReadTimeout, srv.WriteTimeout = "relay.test", 30*time.Second, 30*time.Second
	srv.AllowInsecureAuth = true // to see whether postline would log in in the clear
	if opts.cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*opts.cert}}
	}
	if opts.implicit {
		l = tls.NewListener(l, srv.TLSConfig)
		srv.TLSConfig = nil // no STARTTLS inside TLS
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return h
}

type smarthostSession struct {
	h    *smarthost
	c    *smtp.Conn
	user string
	from string
	to   []string
}

func (s *smarthostSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smarthostSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		s.h.mu.Lock()
		defer s.h.mu.Unlock()
		s.h.logins = append(s.h.logins, user+":"+password)
		if _, isTLS := s.c.TLSConnectionState(); !isTLS {
			s.h.insecure++
		}
		if user != smarthostUser || password != smarthostPassword {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *smarthostSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	s.from = from
	return nil
}

func (s *smarthostSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *smarthostSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.h.mu.Lock()
	s.h.msgs = append(s.h.msgs, sinkMsg{From: s.from, To: s.to, Data: data})
	s.h.mu.Unlock()
	return nil
}

func (s *smarthostSession) Reset()        { s.from, s.to = "", nil }
func (s *smarthostSession) Logout() error { return nil }

func (h *smarthost) state() (logins []string, insecure int, msgs []sinkMsg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.logins...), h.insecure, append([]sinkMsg(nil), h.msgs...)
}

// smarthostStack starts postline relaying through relayhost, with the
// credentials in a 0600 file and the test CA trusted; dns names
// relay.test.
func smarthostStack(t *testing.T, dns *dnstest.Server, ca *testCA, relayhost, password, extra string) *Stack {
	t.Helper()
	auth := filepath.Join(t.TempDir(), "relayhost-auth")
	os.WriteFile(auth, []byte(smarthostUser+" "+password+"\n"), 0o600)
	return StartStackWith(t, StackConfig{MTA: fmt.Sprintf("dns_server = %q\nrelayhost = %q\nrelayhost_auth = %q\n"+
		"tls_roots = %q\nretry_min = \"1s\"\nretry_max = \"2s\"\n%s", dns.Addr, relayhost, auth, ca.File, extra)})
}

// With a relayhost, mail for other domains goes to it over verified TLS
// (STARTTLS, or implicit TLS with relayhost_tls) and AUTH, not to their
// MX hosts.
func TestSmarthostRelays(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cert := ca.issue(t, "relay.test")
	for _, implicit := range []bool{false, true} {
		ip := randomLoopback()
		host := startSmarthost(t, ip, smarthostOptions{cert: &cert, implicit: implicit})
		dns := dnstest.Start(t, "relay.test. 300 IN A "+ip)
		_, port, _ := net.SplitHostPort(host.Addr)
		extra := ""
		if implicit {
			extra = "relayhost_tls = \"implicit\"\n"
		}
		s := smarthostStack(t, dns, ca, "[relay.test]:"+port, smarthostPassword, extra)
		submitRelay(t, s, relayMessage("via the smarthost", "friend@elsewhere.example"), "friend@elsewhere.example")
		waitSpoolEmpty(t, s, 20*time.Second)
		logins, insecure, msgs := host.state()
		if len(msgs) != 1 || insecure != 0 || len(logins) != 1 || logins[0] != smarthostUser+":"+smarthostPassword {
			t.Fatalf("implicit %v: the smarthost got %d messages, logins %q (%d in plaintext)", implicit, len(msgs), logins, insecure)
		}
		if msgs[0].From != "demo@example.test" || msgs[0].To[0] != "friend@elsewhere.example" {
			t.Errorf("implicit %v: relayed %+v", implicit, msgs[0])
		}
	}
}

// A relayhost that refuses the password, offers no TLS, or presents a
// certificate not valid for its name gets no mail and no password in
// the clear: the mail is deferred, and `postline queue` says why.
func TestSmarthostRefusalsDefer(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	good, wrongName := ca.issue(t, "relay.test"), ca.issue(t, "other.test")
	for _, c := range []struct {
		name     string
		opts     smarthostOptions
		password string
		why      string
	}{
		{"wrong password", smarthostOptions{cert: &good}, "wrong", "refused AUTH as " + smarthostUser + ": 535"},
		{"no TLS", smarthostOptions{}, smarthostPassword, "TLS required, and the server offers no STARTTLS"},
		{"certificate for another name", smarthostOptions{cert: &wrongName}, smarthostPassword, "certificate not valid for relay.test"},
	} {
		ip := randomLoopback()
		host := startSmarthost(t, ip, c.opts)
		_, port, _ := net.SplitHostPort(host.Addr)
		s := smarthostStack(t, dnstest.Start(t, "relay.test. 300 IN A "+ip), ca, "[relay.test]:"+port, c.password, "")
		id := submitRelay(t, s, relayMessage(c.name, "friend@elsewhere.example"), "friend@elsewhere.example")
		env := waitEnvelope(t, s, id, attempted)
		if r := env.Recipients[0]; r.State != "deferred" && r.State != "pending" || !strings.Contains(r.LastError, c.why) {
			t.Errorf("%s: recipient %s, last error %q; want deferred with %q", c.name, r.State, r.LastError, c.why)
		}
		if out := s.Postline("", "queue"); !strings.Contains(out, c.why) {
			t.Errorf("%s: postline queue does not say %q:\n%s", c.name, c.why, out)
		}
		logins, insecure, msgs := host.state()
		if len(msgs) != 0 || insecure != 0 || c.name != "wrong password" && len(logins) != 0 {
			t.Errorf("%s: the smarthost got %d messages and logins %q (%d in plaintext)", c.name, len(msgs), logins, insecure)
		}
	}
}

// A route sends one domain's mail to its own next hop (no AUTH: as to
// an MX host), the rest to the relayhost.
func TestRouteBeforeRelayhost(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cert := ca.issue(t, "relay.test")
	ip := randomLoopback()
	host := startSmarthost(t, ip, smarthostOptions{cert: &cert})
	n := newRelayNet(t)
	inside := n.Sink(sinkOptions{})
	_, port, _ := net.SplitHostPort(host.Addr)
	n.DNS.Add(t, "relay.test. 300 IN A "+ip)
	s := smarthostStack(t, n.DNS, ca, "[relay.test]:"+port, smarthostPassword,
		fmt.Sprintf("[[mta.route]]\ndomains = [\"inside.example\"]\nnext_hop = %q\n", "["+inside.IP+"]:"+fmt.Sprint(n.Port)))
	submitRelay(t, s, relayMessage("routed", "colleague@inside.example"), "colleague@inside.example")
	submitRelay(t, s, relayMessage("relayed", "friend@elsewhere.example"), "friend@elsewhere.example")
	waitSpoolEmpty(t, s, 20*time.Second)
	if got := inside.Messages(); len(got) != 1 || got[0].To[0] != "colleague@inside.example" {
		t.Errorf("the route's host got %+v", got)
	}
	if _, _, msgs := host.state(); len(msgs) != 1 || msgs[0].To[0] != "friend@elsewhere.example" {
		t.Errorf("the relayhost got %+v, want the other one", msgs)
	}
}

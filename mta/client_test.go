package mta

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const (
	testHostname = "mail.example.org" // our EHLO name
	testMX       = "mx.example.net"   // the remote host's name
)

// listenLoopback listens on a random 127.x.y.z address, so that no
// other test's server can be reached by mistake.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	for range 20 {
		ip := fmt.Sprintf("127.%d.%d.%d", 1+mrand.IntN(254), mrand.IntN(256), 1+mrand.IntN(254))
		if l, err := net.Listen("tcp", ip+":0"); err == nil {
			return l
		}
	}
	t.Fatal("no free loopback address")
	return nil
}

// selfSigned makes a certificate for name, signed by itself.
func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, cert
}

// remoteMTA is a go-smtp server standing for another MTA. A recipient's
// local part decides its reply: "reject..." 550, "later..." 451, else 250.
type remoteMTA struct {
	addr   string
	mu     sync.Mutex
	greets []string // the EHLO name of each new session (before and after STARTTLS)
	hellos []string // the EHLO name the server knew at each MAIL
	tls    []bool   // whether each MAIL came over TLS
	mails  []smtp.MailOptions
	rcpts  []string // accepted
	bodies []string
	conns  int
	// hang, when set, makes Data wait for it to close: without reading
	// the body (hangBeforeRead), or after it (the reply never comes).
	hang           chan struct{}
	hangBeforeRead bool
}

func startRemote(t *testing.T, configure func(s *smtp.Server, r *remoteMTA)) *remoteMTA {
	t.Helper()
	r := &remoteMTA{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		r.mu.Lock()
		r.greets = append(r.greets, c.Hostname())
		r.mu.Unlock()
		return &remoteSession{r: r, c: c}, nil
	}))
	s.Domain = testMX
	s.ErrorLog = nopLogger{}
	if configure != nil {
		configure(s, r)
	}
	l := listenLoopback(t)
	r.addr = l.Addr().String()
	go s.Serve(countConns{l, r})
	t.Cleanup(func() { s.Close() })
	if r.hang != nil {
		t.Cleanup(func() { close(r.hang) }) // runs first: lets Data return
	}
	return r
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

type countConns struct {
	net.Listener
	r *remoteMTA
}

func (l countConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.r.mu.Lock()
		l.r.conns++
		l.r.mu.Unlock()
	}
	return c, err
}

type remoteSession struct {
	r *remoteMTA
	c *smtp.Conn
}

func (s *remoteSession) Reset()        {}
func (s *remoteSession) Logout() error { return nil }

func (s *remoteSession) Mail(from string, opts *smtp.MailOptions) error {
	_, isTLS := s.c.TLSConnectionState()
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.hellos, s.r.tls, s.r.mails = append(s.r.hellos, s.c.Hostname()), append(s.r.tls, isTLS), append(s.r.mails, *opts)
	return nil
}

func (s *remoteSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "reject"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	case strings.HasPrefix(to, "later"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "try later"}
	}
	s.r.mu.Lock()
	s.r.rcpts = append(s.r.rcpts, to)
	s.r.mu.Unlock()
	return nil
}

func (s *remoteSession) Data(r io.Reader) error {
	if s.r.hang != nil && s.r.hangBeforeRead {
		<-s.r.hang
		return nil
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.bodies = append(s.r.bodies, string(b))
	s.r.mu.Unlock()
	if s.r.hang != nil {
		<-s.r.hang
	}
	return nil
}

func (r *remoteMTA) snapshot() remoteMTA {
	r.mu.Lock()
	defer r.mu.Unlock()
	return remoteMTA{greets: r.greets, hellos: r.hellos, tls: r.tls, mails: r.mails, rcpts: r.rcpts, bodies: r.bodies, conns: r.conns}
}

func testDialer() *Dialer {
	return &Dialer{Hostname: testHostname, Timeouts: Timeouts{Connect: time.Second, Greeting: 2 * time.Second,
		Command: 2 * time.Second, DataBlock: 2 * time.Second, DataDone: 2 * time.Second}}
}

func dialRemote(t *testing.T, d *Dialer, addr string) *Conn {
	t.Helper()
	c, err := d.Dial(context.Background(), testMX, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const testMessage = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"

// sendOK sends testMessage to rcpts and wants them all accepted.
func sendOK(t *testing.T, c *Conn, rcpts ...string) {
	t.Helper()
	res, err := Send(context.Background(), c, "alice@example.org", rcpts, strings.NewReader(testMessage), SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rcpts {
		if reply, ok := res[r]; !ok || reply != nil {
			t.Fatalf("%s: %v (answered: %v)", r, reply, ok)
		}
	}
}

func TestDialUsesSTARTTLS(t *testing.T) {
	cert, x := selfSigned(t, testMX)
	r := startRemote(t, func(s *smtp.Server, _ *remoteMTA) { s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} })
	c := dialRemote(t, testDialer(), r.addr)
	if !c.TLS || c.TLSVersion != "TLS 1.3" || c.Verified || c.VerifyError == nil || c.TLSFallback != nil {
		t.Fatalf("TLS %v %q verified %v (%v) fallback %v; want TLS 1.3, untrusted", c.TLS, c.TLSVersion, c.Verified, c.VerifyError, c.TLSFallback)
	}
	if !strings.Contains(c.Greeting, testMX) {
		t.Errorf("greeting %q", c.Greeting)
	}
	sendOK(t, c, "bob@example.net")
	got := r.snapshot()
	if len(got.tls) != 1 || !got.tls[0] || got.bodies[0] != testMessage {
		t.Fatalf("server saw TLS %v, bodies %q", got.tls, got.bodies)
	}

	// With the certificate as a trusted root, the same server verifies.
	d := testDialer()
	d.RootCAs = x509.NewCertPool()
	d.RootCAs.AddCert(x)
	if c := dialRemote(t, d, r.addr); !c.TLS || !c.Verified || c.VerifyError != nil {
		t.Fatalf("TLS %v verified %v (%v), want verified", c.TLS, c.Verified, c.VerifyError)
	}
}

func TestDialWithoutSTARTTLS(t *testing.T) {
	r := startRemote(t, nil)
	c := dialRemote(t, testDialer(), r.addr)
	if c.TLS || c.TLSFallback != nil {
		t.Fatalf("TLS %v fallback %v, want plaintext from the start", c.TLS, c.TLSFallback)
	}
	sendOK(t, c, "bob@example.net")
	if got := r.snapshot(); len(got.bodies) != 1 || got.bodies[0] != testMessage || got.conns != 1 {
		t.Fatalf("server got %q over %d connections", got.bodies, got.conns)
	}
}

func TestDialFallsBackToPlaintextWhenHandshakeFails(t *testing.T) {
	r := startRemote(t, func(s *smtp.Server, _ *remoteMTA) {
		s.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("no certificate today")
		}}
	})
	c := dialRemote(t, testDialer(), r.addr)
	if c.TLS || c.TLSFallback == nil {
		t.Fatalf("TLS %v fallback %v, want plaintext after a failed handshake", c.TLS, c.TLSFallback)
	}
	sendOK(t, c, "bob@example.net")
	got := r.snapshot()
	if got.conns != 2 || len(got.bodies) != 1 || got.tls[0] {
		t.Fatalf("%d connections, bodies %q, TLS %v; want the second, plaintext one to deliver", got.conns, got.bodies, got.tls)
	}
}

func TestEHLONameIsHostname(t *testing.T) {
	cert, _ := selfSigned(t, testMX)
	for _, withTLS := range []bool{false, true} {
		r := startRemote(t, func(s *smtp.Server, _ *remoteMTA) {
			if withTLS {
				s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			}
		})
		sendOK(t, dialRemote(t, testDialer(), r.addr), "bob@example.net")
		got := r.snapshot()
		if len(got.hellos) != 1 || got.hellos[0] != testHostname {
			t.Fatalf("TLS %v: server saw EHLO %q at MAIL, want %q", withTLS, got.hellos, testHostname)
		}
		// With TLS the pre-TLS EHLO (go-smtp's own would say "localhost")
		// started a session of its own.
		want := []string{testHostname}
		if withTLS {
			want = append(want, testHostname)
		}
		if strings.Join(got.greets, " ") != strings.Join(want, " ") {
			t.Fatalf("TLS %v: sessions greeted as %q, want %q", withTLS, got.greets, want)
		}
	}
}

func TestSendMixedRecipientResults(t *testing.T) {
	r := startRemote(t, nil)
	c := dialRemote(t, testDialer(), r.addr)
	rcpts := []string{"bob@example.net", "reject-carol@example.net", "later-dave@example.net"}
	res, err := Send(context.Background(), c, "alice@example.org", rcpts, strings.NewReader(testMessage), SendOptions{Size: int64(len(testMessage))})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res["bob@example.net"] != nil {
		t.Fatalf("results %v", res)
	}
	if e := res["reject-carol@example.net"]; e == nil || e.Code != 550 || e.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) || e.Temporary() {
		t.Errorf("rejected recipient: %v", e)
	}
	if e := res["later-dave@example.net"]; e == nil || e.Code != 451 || !e.Temporary() {
		t.Errorf("deferred recipient: %v", e)
	}
	got := r.snapshot()
	if strings.Join(got.rcpts, ",") != "bob@example.net" || len(got.bodies) != 1 || got.mails[0].Size != int64(len(testMessage)) {
		t.Fatalf("server: rcpts %v, %d bodies, mail %+v", got.rcpts, len(got.bodies), got.mails)
	}
	sendOK(t, c, "bob@example.net") // the session is still good for the next message
}

func TestSendAllRecipientsRefusedResets(t *testing.T) {
	r := startRemote(t, nil)
	c := dialRemote(t, testDialer(), r.addr)
	res, err := Send(context.Background(), c, "alice@example.org", []string{"reject-x@example.net"}, strings.NewReader(testMessage), SendOptions{})
	if err != nil || res["reject-x@example.net"] == nil {
		t.Fatalf("results %v, %v", res, err)
	}
	if got := r.snapshot(); len(got.bodies) != 0 {
		t.Fatal("DATA sent with no recipient")
	}
	sendOK(t, c, "bob@example.net")
}

func TestSendNeedsSMTPUTF8(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		r := startRemote(t, func(s *smtp.Server, _ *remoteMTA) { s.EnableSMTPUTF8 = enabled })
		c := dialRemote(t, testDialer(), r.addr)
		rcpts := []string{"jörg@example.net", "bob@example.net"}
		res, err := Send(context.Background(), c, "alice@example.org", rcpts, strings.NewReader(testMessage), SendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := r.snapshot()
		if !enabled {
			for _, rcpt := range rcpts {
				if e := res[rcpt]; e == nil || e.EnhancedCode != (smtp.EnhancedCode{5, 6, 7}) || e.Temporary() {
					t.Errorf("%s: %v, want a permanent 5.6.7", rcpt, e)
				}
			}
			if len(got.mails) != 0 {
				t.Errorf("MAIL was sent to a server without SMTPUTF8")
			}
			continue
		}
		if res["jörg@example.net"] != nil || len(got.mails) != 1 || !got.mails[0].UTF8 {
			t.Errorf("with SMTPUTF8 offered: results %v, MAIL %+v", res, got.mails)
		}
	}
}

func TestSendRefusesMessageOverRemoteSize(t *testing.T) {
	r := startRemote(t, func(s *smtp.Server, _ *remoteMTA) { s.MaxMessageBytes = 1000 })
	c := dialRemote(t, testDialer(), r.addr)
	res, err := Send(context.Background(), c, "alice@example.org", []string{"bob@example.net"}, strings.NewReader(testMessage), SendOptions{Size: 5000})
	if e := res["bob@example.net"]; err != nil || e == nil || e.Code != 552 || e.EnhancedCode != (smtp.EnhancedCode{5, 3, 4}) {
		t.Fatalf("result %v, %v; want 552 5.3.4", e, err)
	}
	if got := r.snapshot(); len(got.mails) != 0 {
		t.Error("MAIL sent for a message the server said it cannot take")
	}
}

// TestSendServerStopsReading: the server takes DATA, then reads
// nothing; the write deadline must end the attempt.
func TestSendServerStopsReading(t *testing.T) {
	r := startRemote(t, func(_ *smtp.Server, r *remoteMTA) { r.hang, r.hangBeforeRead = make(chan struct{}), true })
	d := testDialer()
	d.Timeouts.DataBlock = 100 * time.Millisecond
	c := dialRemote(t, d, r.addr)
	body := io.LimitReader(neverEnding('x'), 64<<20) // far more than the socket buffers hold
	wantDeferredAfterData(t, c, body)
}

// TestSendNoReplyAfterData: the server reads the body but never replies.
func TestSendNoReplyAfterData(t *testing.T) {
	r := startRemote(t, func(_ *smtp.Server, r *remoteMTA) { r.hang = make(chan struct{}) })
	d := testDialer()
	d.Timeouts.DataDone = 100 * time.Millisecond
	wantDeferredAfterData(t, dialRemote(t, d, r.addr), strings.NewReader(testMessage))
}

// TestSendCancelled: cancelling the context ends a hung transaction.
func TestSendCancelled(t *testing.T) {
	r := startRemote(t, func(_ *smtp.Server, r *remoteMTA) { r.hang = make(chan struct{}) })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	wantDeferredAfterDataCtx(t, ctx, dialRemote(t, testDialer(), r.addr), strings.NewReader(testMessage))
}

func wantDeferredAfterData(t *testing.T, c *Conn, body io.Reader) {
	t.Helper()
	wantDeferredAfterDataCtx(t, context.Background(), c, body)
}

func wantDeferredAfterDataCtx(t *testing.T, ctx context.Context, c *Conn, body io.Reader) {
	t.Helper()
	start := time.Now()
	res, err := Send(ctx, c, "alice@example.org", []string{"bob@example.net"}, body, SendOptions{})
	if err == nil {
		t.Fatal("no error from a hung server")
	}
	if e := res["bob@example.net"]; e == nil || !e.Temporary() {
		t.Fatalf("result %v, want a temporary failure", e)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %v with a 100ms timeout", took)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestDialConnectionRefused(t *testing.T) {
	l := listenLoopback(t)
	addr := l.Addr().String()
	l.Close()
	_, err := testDialer().Dial(context.Background(), testMX, addr)
	if e := ErrorReply(err); err == nil || !e.Temporary() || e.EnhancedCode != (smtp.EnhancedCode{4, 4, 1}) {
		t.Fatalf("error %v (reply %v), want a temporary 4.4.1", err, e)
	}
}

// scripted is a raw SMTP server for what go-smtp's server will not do:
// answer sets a reply per command ("" = the usual), and "close" hangs
// up. It is asked first with cmd "": a reply then replaces the greeting
// and ends the connection.
type scripted struct {
	addr string
	mu   sync.Mutex
	log  []string // commands, "conn N: CMD", and "DATA body"
}

func startScripted(t *testing.T, answer func(conn int, cmd string) string) *scripted {
	t.Helper()
	s := &scripted{}
	l := listenLoopback(t)
	s.addr = l.Addr().String()
	t.Cleanup(func() { l.Close() })
	go func() {
		for n := 1; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c, n, answer)
		}
	}()
	return s
}

func (s *scripted) serve(c net.Conn, n int, answer func(int, string) string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if greeting := answer(n, ""); greeting != "" { // "": the greeting's turn
		io.WriteString(c, greeting)
		return
	}
	io.WriteString(c, "220 "+testMX+" ESMTP scripted\r\n")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.log = append(s.log, fmt.Sprintf("conn %d: %s", n, cmd))
		s.mu.Unlock()
		reply := answer(n, cmd)
		verb := strings.ToUpper(strings.Fields(cmd + " x")[0])
		switch {
		case reply == "close":
			return
		case reply != "":
		case verb == "EHLO":
			reply = "250-" + testMX + "\r\n250 8BITMIME\r\n"
		case verb == "DATA":
			io.WriteString(c, "354 go on\r\n")
			for line, err := br.ReadString('\n'); err == nil && line != ".\r\n"; line, err = br.ReadString('\n') {
			}
			reply = "250 2.0.0 queued\r\n"
		case verb == "QUIT":
			io.WriteString(c, "221 bye\r\n")
			return
		default:
			reply = "250 ok\r\n"
		}
		io.WriteString(c, reply)
	}
}

func (s *scripted) commands() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, "\n")
}

func TestDialFallsBackToHELO(t *testing.T) {
	s := startScripted(t, func(_ int, cmd string) string {
		if strings.HasPrefix(cmd, "EHLO") {
			return "502 5.5.1 EHLO? never heard of it\r\n"
		}
		return ""
	})
	c := dialRemote(t, testDialer(), s.addr)
	sendOK(t, c, "bob@example.net")
	if log := s.commands(); !strings.Contains(log, "conn 1: EHLO "+testHostname+"\nconn 1: HELO "+testHostname) || c.TLS {
		t.Fatalf("commands:\n%s", log)
	}
}

func TestDialSTARTTLSRefusedGoesOnInPlaintext(t *testing.T) {
	s := startScripted(t, func(_ int, cmd string) string {
		switch cmd {
		case "EHLO " + testHostname:
			return "250-" + testMX + "\r\n250 STARTTLS\r\n"
		case "STARTTLS":
			return "454 4.7.0 TLS not available\r\n"
		}
		return ""
	})
	c := dialRemote(t, testDialer(), s.addr)
	sendOK(t, c, "bob@example.net")
	if log := s.commands(); c.TLS || c.TLSFallback != nil || strings.Contains(log, "conn 2") {
		t.Fatalf("TLS %v fallback %v; want the same connection in plaintext:\n%s", c.TLS, c.TLSFallback, log)
	}
}

func TestDialRefusesSTARTTLSResponseInjection(t *testing.T) {
	s := startScripted(t, func(conn int, cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			return "250-" + testMX + "\r\n250 STARTTLS\r\n"
		case cmd == "STARTTLS":
			return "220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n"
		}
		return ""
	})
	c := dialRemote(t, testDialer(), s.addr)
	if c.TLS || c.TLSFallback == nil || !strings.Contains(c.TLSFallback.Error(), "after its 220") {
		t.Fatalf("TLS %v fallback %v, want a plaintext retry for the injection", c.TLS, c.TLSFallback)
	}
	sendOK(t, c, "bob@example.net")
	if log := s.commands(); !strings.HasPrefix(log, "conn 1: EHLO "+testHostname+"\n") ||
		strings.Contains(log, "conn 2: STARTTLS") || !strings.Contains(log, "conn 2: DATA") {
		t.Fatalf("commands:\n%s", log)
	}
}

func TestSendConnectionLostDefersPendingRecipients(t *testing.T) {
	s := startScripted(t, func(_ int, cmd string) string {
		if strings.Contains(cmd, "<drop@") {
			return "close"
		}
		if strings.Contains(cmd, "<reject@") {
			return "550 5.1.1 no\r\n"
		}
		return ""
	})
	c := dialRemote(t, testDialer(), s.addr)
	rcpts := []string{"bob@example.net", "reject@example.net", "drop@example.net", "zed@example.net"}
	res, err := Send(context.Background(), c, "alice@example.org", rcpts, strings.NewReader(testMessage), SendOptions{})
	if err == nil {
		t.Fatal("no error for a lost connection")
	}
	if e := res["reject@example.net"]; e == nil || e.Code != 550 {
		t.Errorf("the 550 answered before the loss must stay: %v", e)
	}
	for _, r := range []string{"bob@example.net", "drop@example.net", "zed@example.net"} {
		if e := res[r]; e == nil || !e.Temporary() {
			t.Errorf("%s: %v, want a temporary failure", r, e)
		}
	}
}

func TestDialReplyErrors(t *testing.T) {
	tests := []struct {
		name   string
		answer func(int, string) string
		code   int
		enh    smtp.EnhancedCode
	}{
		{"greeting refused", func(_ int, cmd string) string {
			if cmd == "" {
				return "554 5.7.1 go away\r\n"
			}
			return ""
		}, 554, smtp.EnhancedCode{5, 7, 1}},
		{"EHLO answered 421", func(_ int, cmd string) string {
			if strings.HasPrefix(cmd, "EHLO") {
				return "421 4.3.2 shutting down\r\n"
			}
			return ""
		}, 421, smtp.EnhancedCode{4, 3, 2}},
		{"no enhanced code", func(_ int, cmd string) string {
			if cmd == "" {
				return "554 no service\r\n"
			}
			return ""
		}, 554, smtp.EnhancedCode{}},
	}
	for _, tt := range tests {
		s := startScripted(t, tt.answer)
		_, err := testDialer().Dial(context.Background(), testMX, s.addr)
		if e := ErrorReply(err); err == nil || e.Code != tt.code || e.EnhancedCode != tt.enh {
			t.Errorf("%s: error %v, reply %+v; want %d %v", tt.name, err, e, tt.code, tt.enh)
		}
	}
}

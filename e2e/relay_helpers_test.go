package e2e

// The other side of outbound relay, inside the test process: a DNS
// server the MTA asks (mta.dns_server) and SMTP sinks standing in for
// other domains' MX hosts. Every MX host of one test listens on the same
// port, the one the MTA dials (mta.remote_port), each on its own random
// 127.x.y.z address, so that parallel tests never meet.

import (
	"bufio"
	"bytes"
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
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"postline/dnstest"
	"postline/queue"
)

// relayNet is one test's outside world: its DNS zone and the port all
// its MX hosts listen on.
type relayNet struct {
	t    *testing.T
	DNS  *dnstest.Server
	Port int
}

func newRelayNet(t *testing.T) *relayNet {
	t.Helper()
	return &relayNet{t: t, DNS: dnstest.Start(t), Port: 10000 + mrand.IntN(20000)}
}

// relayConfig is the [mta] part of a relay test's stack; empty fields
// keep the defaults written here (retries after 1 s, then 2 s).
type relayConfig struct {
	RetryMin, RetryMax, QueueLifetime, DelayWarning string
	// MSA, MTA, TopLevel, Plugins and Prepare go to the stack as in StackConfig.
	MSA, MTA, TopLevel, Plugins string
	Prepare                     func(dir string)
}

// Stack starts a postline whose MTA asks this DNS and dials this port.
func (n *relayNet) Stack(c relayConfig) *Stack {
	n.t.Helper()
	mta := fmt.Sprintf("dns_server = %q\nremote_port = %d\nretry_min = %q\nretry_max = %q\n",
		n.DNS.Addr, n.Port, orDefault(c.RetryMin, "1s"), orDefault(c.RetryMax, "2s"))
	if c.QueueLifetime != "" {
		mta += fmt.Sprintf("queue_lifetime = %q\n", c.QueueLifetime)
	}
	if c.DelayWarning != "" {
		mta += fmt.Sprintf("delay_warning = %q\n", c.DelayWarning)
	}
	return StartStackWith(n.t, StackConfig{MSA: c.MSA, MTA: mta + c.MTA, TopLevel: c.TopLevel, Plugins: c.Plugins, Prepare: c.Prepare})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// randomLoopback returns a random address in 127.0.0.0/8 other than
// the usual 127.0.0.1.
func randomLoopback() string {
	return fmt.Sprintf("127.%d.%d.%d", 1+mrand.IntN(254), mrand.IntN(256), 1+mrand.IntN(254))
}

// DeadAddr returns an IP where nothing listens on the test's port: a
// connection to it is refused at once.
func (n *relayNet) DeadAddr() string {
	n.t.Helper()
	for range 100 {
		ip := randomLoopback()
		if l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(n.Port))); err == nil {
			l.Close()
			return ip
		}
	}
	n.t.Fatal("no free loopback address")
	return ""
}

// Sink starts an SMTP sink on a random IP at the test's port.
func (n *relayNet) Sink(opts sinkOptions) *sink {
	n.t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(randomLoopback(), strconv.Itoa(n.Port)))
		if err == nil {
			return serveSink(n.t, l, opts)
		}
	}
	n.t.Fatal("no free loopback address for a sink")
	return nil
}

// SinkAt starts an SMTP sink on ip at the test's port.
func (n *relayNet) SinkAt(ip string, opts sinkOptions) *sink {
	n.t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(n.Port)))
	if err != nil {
		n.t.Fatalf("sink on %s: %v", ip, err)
	}
	return serveSink(n.t, l, opts)
}

// sinkReply is what a sink does on one RCPT.
type sinkReply struct {
	action sinkAction
	err    *smtp.SMTPError
}

type sinkAction int

const (
	sinkAccept sinkAction = iota
	sinkRefuse            // reply with err
	sinkClose             // drop the connection without a reply
	sinkHang              // never reply, until the test ends
)

var (
	rcptOK     = sinkReply{}
	rcptHangUp = sinkReply{action: sinkClose}
	rcptHang   = sinkReply{action: sinkHang}
)

// rcptRefuse replies "code enh text", e.g. rcptRefuse(550, "5.1.1", "no such user").
func rcptRefuse(code int, enh, text string) sinkReply {
	var e smtp.EnhancedCode
	fmt.Sscanf(enh, "%d.%d.%d", &e[0], &e[1], &e[2])
	return sinkReply{action: sinkRefuse, err: &smtp.SMTPError{Code: code, EnhancedCode: e, Message: text}}
}

// sinkScript picks the reply to RCPT TO:<rcpt>, the try-th time (from
// 1) this sink sees that recipient.
type sinkScript func(rcpt string, try int) sinkReply

func acceptAll(string, int) sinkReply { return rcptOK }

type sinkOptions struct {
	StartTLS bool // offer STARTTLS with a self-signed certificate
	// TLS, when set, is offered with STARTTLS instead (e.g. a certificate
	// of a test CA).
	TLS    *tls.Config
	Script sinkScript // nil accepts everyone
	// CloseAtConnect drops every connection before the greeting.
	CloseAtConnect bool
	// MessagesPerConn, when set, answers the next MAIL on a connection
	// that has had that many with 421 and closes it, as big providers do.
	MessagesPerConn int
	// DSN offers the DSN extension (RFC 3461), RequireTLS REQUIRETLS
	// (RFC 8689, after STARTTLS).
	DSN, RequireTLS bool
}

// sink is an SMTP server standing in for another domain's MX host. It
// records every connection and every message it accepted.
type sink struct {
	Addr string // "ip:port"
	IP   string

	opts    sinkOptions
	closing chan struct{}

	mu    sync.Mutex
	conns int
	tries map[string]int
	msgs  []sinkMsg
}

// sinkMsg is one accepted transaction.
type sinkMsg struct {
	From string
	To   []string
	Data []byte
	Helo string
	TLS  *tls.ConnectionState // nil in plaintext
	// The DSN parameters (with sinkOptions.DSN): MAIL's, and each
	// accepted recipient's.
	Mail smtp.MailOptions
	Rcpt map[string]smtp.RcptOptions
}

func serveSink(t *testing.T, l net.Listener, opts sinkOptions) *sink {
	if opts.Script == nil {
		opts.Script = acceptAll
	}
	s := &sink{Addr: l.Addr().String(), opts: opts, closing: make(chan struct{}), tries: map[string]int{}}
	s.IP, _, _ = net.SplitHostPort(s.Addr)
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, c: c}, nil
	}))
	srv.Domain = "sink.remote.test"
	srv.EnableDSN = opts.DSN
	srv.EnableREQUIRETLS = opts.RequireTLS
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.EnableSMTPUTF8 = true
	if opts.StartTLS {
		srv.TLSConfig = sinkTLSConfig(t)
	}
	if opts.TLS != nil {
		srv.TLSConfig = opts.TLS
	}
	go srv.Serve(&countingListener{Listener: l, s: s})
	t.Cleanup(func() { close(s.closing); srv.Close() })
	return s
}

// countingListener counts connections before go-smtp sees them.
type countingListener struct {
	net.Listener
	s *sink
}

func (l *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		l.s.conns++
		l.s.mu.Unlock()
		if !l.s.opts.CloseAtConnect {
			return c, nil
		}
		c.Close()
	}
}

// Conns returns how many connections the sink has had.
func (s *sink) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Tries returns how many times the sink has seen RCPT TO:<rcpt>.
func (s *sink) Tries(rcpt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries[rcpt]
}

// Messages returns the transactions accepted so far.
func (s *sink) Messages() []sinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMsg(nil), s.msgs...)
}

// WaitMessages waits until the sink has accepted n transactions.
func (s *sink) WaitMessages(t *testing.T, n int, timeout time.Duration) []sinkMsg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink %s accepted %d messages in %v, want %d", s.Addr, len(msgs), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sink) reply(rcpt string) sinkReply {
	s.mu.Lock()
	s.tries[rcpt]++
	try := s.tries[rcpt]
	s.mu.Unlock()
	return s.opts.Script(rcpt, try)
}

type sinkSession struct {
	s     *sink
	c     *smtp.Conn
	from  string
	to    []string
	mails int
	mail  smtp.MailOptions
	rcpt  map[string]smtp.RcptOptions
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.from, ss.to, ss.mail, ss.rcpt = from, nil, *opts, map[string]smtp.RcptOptions{}
	if ss.mails++; ss.s.opts.MessagesPerConn > 0 && ss.mails > ss.s.opts.MessagesPerConn {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
			Message: "too many messages on this connection, closing"} // go-smtp (patched) closes after a 421
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	r := ss.s.reply(to)
	switch r.action {
	case sinkRefuse:
		return r.err
	case sinkClose:
		ss.c.Conn().Close()
		return errors.New("connection closed")
	case sinkHang:
		<-ss.s.closing
		return errors.New("test over")
	}
	ss.to = append(ss.to, to)
	ss.rcpt[to] = *opts
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := sinkMsg{From: ss.from, To: ss.to, Data: b, Helo: ss.c.Hostname(), Mail: ss.mail, Rcpt: ss.rcpt}
	if state, ok := ss.c.TLSConnectionState(); ok {
		m.TLS = &state
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, m)
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

var (
	sinkCertOnce sync.Once
	sinkCert     tls.Certificate
	sinkCertErr  error
)

// sinkTLSConfig holds a self-signed certificate, which postline uses
// anyway (opportunistic TLS) and logs as untrusted.
func sinkTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	sinkCertOnce.Do(func() { sinkCert, sinkCertErr = selfSigned("sink.remote.test") })
	if sinkCertErr != nil {
		t.Fatal(sinkCertErr)
	}
	return &tls.Config{Certificates: []tls.Certificate{sinkCert}}
}

// selfSigned makes a certificate and key for name.
func selfSigned(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// relayMessage is a message from demo with a subject and a body line
// that name it, so that a bounce can be checked for what it must and
// must not carry.
func relayMessage(subject string, to ...string) string {
	return "From: demo@example.test\r\nTo: " + strings.Join(to, ", ") + "\r\n" +
		"Subject: " + subject + "\r\n\r\n" +
		"body of " + subject + ": only the header may come back\r\n"
}

var queuedAs = regexp.MustCompile(`queued as ([0-9A-Z]+)`)

// submitRelay submits msg from demo to rcpts and returns its queue ID.
func submitRelay(t *testing.T, s *Stack, msg string, rcpts ...string) string {
	t.Helper()
	reply, err := s.Submit(Submission{To: rcpts, Body: msg})
	if err != nil {
		t.Fatalf("submit to %v: %v", rcpts, err)
	}
	m := queuedAs.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no queue ID in %q", reply)
	}
	return m[1]
}

// submitNullSender submits msg through the MSA with MAIL FROM:<>, as an
// auto-replier would, and returns its queue ID.
func submitNullSender(t *testing.T, s *Stack, msg string, rcpts ...string) string {
	t.Helper()
	return submitWith(t, s, "", nil, nil, msg, rcpts...)
}

// submitWith submits msg as demo from from with MAIL options mail and
// each recipient's options rcpt(r) (nil: none), and returns its queue ID.
func submitWith(t *testing.T, s *Stack, from string, mail *smtp.MailOptions,
	rcpt func(string) *smtp.RcptOptions, msg string, rcpts ...string) string {
	t.Helper()
	c, err := smtp.DialStartTLS(s.Submission, &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", demoUser, demoPassword)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, mail); err != nil {
		t.Fatalf("MAIL FROM:<%s>: %v", from, err)
	}
	for _, r := range rcpts {
		var opts *smtp.RcptOptions
		if rcpt != nil {
			opts = rcpt(r)
		}
		if err := c.Rcpt(r, opts); err != nil {
			t.Fatalf("RCPT TO:<%s>: %v", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, msg)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	c.Quit()
	m := queuedAs.FindStringSubmatch(resp.StatusText)
	if m == nil {
		t.Fatalf("no queue ID in %q", resp.StatusText)
	}
	return m[1]
}

// readEnvelope reads message id's envelope from the MTA's queue.
func readEnvelope(t *testing.T, s *Stack, id string) *queue.Envelope {
	t.Helper()
	env := queuedEnvelopes(t, s)[id]
	if env == nil {
		t.Fatalf("message %s is not queued", id)
	}
	return env
}

// waitEnvelope waits until message id's envelope on disk satisfies ok
// (the MTA logs a result just before it writes it) and returns it.
func waitEnvelope(t *testing.T, s *Stack, id string, ok func(*queue.Envelope) bool) *queue.Envelope {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		env := readEnvelope(t, s, id)
		if ok(env) {
			return env
		}
		if time.Now().After(deadline) {
			t.Fatalf("envelope of %s never got there: %+v", id, env)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// attempted says the first recipient has been tried at least once.
func attempted(env *queue.Envelope) bool { return env.Recipients[0].Attempts > 0 }

// waitSpoolEmpty waits until the MTA's queue holds no message.
func waitSpoolEmpty(t *testing.T, s *Stack, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for secSpool(t, s) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d messages after %v", secSpool(t, s), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bounceReport is a delivery status notification (RFC 3464) taken apart.
type bounceReport struct {
	Header     mail.Header
	Params     map[string]string // of the top-level Content-Type
	MediaType  string
	PartTypes  []string
	Text       string               // the text/plain part
	PerMessage textproto.MIMEHeader // the report's first field group
	Recipients []textproto.MIMEHeader
	Original   string // the text/rfc822-headers (or message/rfc822) part
}

// parseBounce parses a bounce as delivered to the Maildir.
func parseBounce(t *testing.T, raw []byte) *bounceReport {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("bounce does not parse: %v\n%s", err, raw)
	}
	b := &bounceReport{Header: mail.Header{Header: e.Header}}
	b.MediaType, b.Params, _ = e.Header.ContentType()
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("bounce is not multipart:\n%s", raw)
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("bounce part: %v\n%s", err, raw)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		ctype, _, _ := p.Header.ContentType()
		b.PartTypes = append(b.PartTypes, ctype)
		switch ctype {
		case "text/plain":
			b.Text = string(body)
		case "message/delivery-status":
			groups := parseFieldGroups(t, string(body))
			if len(groups) < 2 {
				t.Fatalf("delivery-status has %d field groups, want 2 or more:\n%s", len(groups), body)
			}
			b.PerMessage, b.Recipients = groups[0], groups[1:]
		case "text/rfc822-headers", "message/rfc822":
			b.Original = string(body)
		}
	}
	return b
}

// parseFieldGroups splits a message/delivery-status body into its
// blank-line separated groups of fields (RFC 3464 §2.1).
func parseFieldGroups(t *testing.T, body string) []textproto.MIMEHeader {
	t.Helper()
	var groups []textproto.MIMEHeader
	body = strings.ReplaceAll(body, "\r\n", "\n")
	for _, block := range strings.Split(strings.TrimSpace(body), "\n\n") {
		r := textproto.NewReader(bufio.NewReader(strings.NewReader(block + "\n\n")))
		h, err := r.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("delivery-status group %q: %v", block, err)
		}
		groups = append(groups, h)
	}
	return groups
}

// Recipient returns the field group whose Final-Recipient is addr.
func (b *bounceReport) Recipient(t *testing.T, addr string) textproto.MIMEHeader {
	t.Helper()
	for _, r := range b.Recipients {
		if r.Get("Final-Recipient") == "rfc822; "+addr {
			return r
		}
	}
	t.Fatalf("bounce has no Final-Recipient rfc822; %s (it has %v)", addr, b.Recipients)
	return nil
}

// checkBounceEnvelope checks what every bounce to demo must be: from
// MAILER-DAEMON to demo, a multipart/report with its three parts, the
// original subject in the returned header and not the original body.
func checkBounceEnvelope(t *testing.T, b *bounceReport, raw []byte, subject string) {
	t.Helper()
	from, err := b.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "MAILER-DAEMON@mail.example.test" {
		t.Errorf("From = %v (%v), want MAILER-DAEMON@mail.example.test", from, err)
	}
	to, err := b.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != demoUser {
		t.Errorf("To = %v (%v), want %s", to, err, demoUser)
	}
	if got, _ := b.Header.Subject(); got != "Undelivered Mail Returned to Sender" {
		t.Errorf("Subject = %q", got)
	}
	if got := b.Header.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted = %q, want auto-replied", got)
	}
	if b.MediaType != "multipart/report" || b.Params["report-type"] != "delivery-status" {
		t.Errorf("Content-Type = %s %v, want multipart/report; report-type=delivery-status", b.MediaType, b.Params)
	}
	want := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	if strings.Join(b.PartTypes, " ") != strings.Join(want, " ") {
		t.Errorf("parts = %v, want %v", b.PartTypes, want)
	}
	if got := b.PerMessage.Get("Reporting-MTA"); got != "dns; mail.example.test" {
		t.Errorf("Reporting-MTA = %q, want dns; mail.example.test", got)
	}
	if b.PerMessage.Get("Arrival-Date") == "" {
		t.Error("no Arrival-Date")
	}
	if !strings.Contains(b.Original, "Subject: "+subject+"\r\n") && !strings.Contains(b.Original, "Subject: "+subject+"\n") {
		t.Errorf("returned header lacks the original Subject %q:\n%s", subject, b.Original)
	}
	if bytes.Contains(raw, []byte("body of "+subject)) {
		t.Errorf("bounce carries the original body:\n%s", raw)
	}
}

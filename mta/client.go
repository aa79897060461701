package mta

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"postline/address"
	"postline/tlsrpt"
)

// Dialer opens SMTP sessions to other MTAs, with STARTTLS whenever the
// server offers it (opportunistic TLS, like Postfix's "may" level).
type Dialer struct {
	Hostname string // sent in EHLO: the configured hostname
	Timeouts Timeouts
	// RootCAs verifies server certificates, only to report the result;
	// nil means the system roots.
	RootCAs *x509.CertPool

	// verifier checks a chain instead of the WebPKI (DialDANE's copy).
	verifier func(chain []*x509.Certificate, host string) error
}

// Timeouts bound each step of a session; a zero field takes the value
// RFC 5321 §4.5.3.2 suggests (Connect: Postfix's smtp_connect_timeout).
type Timeouts struct {
	Connect   time.Duration // TCP connect: 30s
	Greeting  time.Duration // the 220 banner: 5m
	Command   time.Duration // the reply to EHLO, STARTTLS, MAIL, RCPT, DATA: 5m
	DataBlock time.Duration // each write of the message body: 3m
	DataDone  time.Duration // the reply after the final dot: 10m
}

func (t Timeouts) withDefaults() Timeouts {
	return Timeouts{
		Connect: cmp.Or(t.Connect, 30*time.Second), Greeting: cmp.Or(t.Greeting, 5*time.Minute),
		Command: cmp.Or(t.Command, 5*time.Minute), DataBlock: cmp.Or(t.DataBlock, 3*time.Minute),
		DataDone: cmp.Or(t.DataDone, 10*time.Minute),
	}
}

// Conn is an open session with a remote MTA, greeted with EHLO (or
// HELO) and ready for a transaction. go-smtp's Client.TLSConnectionState
// does not see the TLS of a Conn: use the fields.
type Conn struct {
	*smtp.Client
	Host       string // the MX host name dialled (for logs, Remote-MTA, SNI)
	Addr       string // its address, "ip:port"
	Greeting   string // the text of the server's 220 banner
	TLS        bool
	TLSVersion string // e.g. "TLS 1.3"
	// Verified says the certificate chain verified for Host. TLS is used
	// either way (RFC 7435 opportunistic security): log an unverified
	// one as "untrusted", with VerifyError.
	Verified    bool
	VerifyError error
	// TLSFallback is why TLS failed on a first connection, when this one
	// is its plaintext retry.
	TLSFallback error

	wire *wireConn
}

// errTLS marks a failure of the STARTTLS step, after which the same
// host is tried again in plaintext.
type errTLS struct{ err error }

func (e *errTLS) Error() string { return "STARTTLS: " + e.err.Error() }
func (e *errTLS) Unwrap() error { return e.err }

// Dial connects to addr ("ip:port") of the MX host named host, greets
// it and starts TLS when offered. When the TLS handshake fails, it
// dials again without STARTTLS, as Postfix does at its "may" level:
// an attacker who can break the handshake could as well have hidden
// STARTTLS, so the plaintext retry costs no security that was there.
// Errors carry the reply or a temporary one: see ErrorReply.
func (d *Dialer) Dial(ctx context.Context, host, addr string) (*Conn, error) {
	c, err := d.dial(ctx, host, addr, tlsMay)
	var tlsErr *errTLS
	if errors.As(err, &tlsErr) {
		if c, err = d.dial(ctx, host, addr, tlsNone); c != nil {
			c.TLSFallback = tlsErr.err
		}
	}
	if err != nil {
		return nil, fmt.Errorf("mta: %s[%s]: %w", host, addr, err)
	}
	return c, nil
}

// tlsMode is how a session uses TLS.
type tlsMode int

const (
	tlsNone     tlsMode = iota // plaintext: the retry after a failed handshake
	tlsMay                     // STARTTLS when offered, any certificate (RFC 7435)
	tlsVerify                  // STARTTLS required, the certificate verified for the host
	tlsImplicit                // TLS from the first byte, verified (port 465, RFC 8314)
)

func (d *Dialer) dial(ctx context.Context, host, addr string, mode tlsMode) (*Conn, error) {
	t := d.Timeouts.withDefaults()
	raw, err := (&net.Dialer{Timeout: t.Connect}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
			Message: "connect: " + err.Error()}
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() }) // cancelling ctx aborts the setup
	c, err := d.setup(ctx, raw, host, mode, t)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	c.Addr = addr
	return c, nil
}

// setup reads the greeting, says EHLO and does STARTTLS itself, on the
// raw connection: go-smtp's client cannot do opportunistic STARTTLS and
// would say "EHLO localhost" before TLS (../shared/LIBRARIES.md §1).
// Then go-smtp takes over, first reading a replayed 220 greeting.
func (d *Dialer) setup(ctx context.Context, raw net.Conn, host string, mode tlsMode, t Timeouts) (*Conn, error) {
	c := &Conn{Host: host}
	raw.SetDeadline(time.Now().Add(t.Greeting))
	if mode == tlsImplicit {
		tc, err := d.handshake(ctx, c, raw, mode)
		if err != nil {
			return nil, err
		}
		raw = tc
	}
	text := textproto.NewConn(raw)
	_, greeting, err := text.ReadResponse(220)
	if err != nil {
		return nil, fmt.Errorf("greeting: %w", asReply(err))
	}
	c.Greeting = greeting
	var wire net.Conn = raw
	if mode == tlsMay || mode == tlsVerify {
		raw.SetDeadline(time.Now().Add(t.Command))
		if wire, err = d.startTLS(ctx, c, text, raw, mode); err != nil {
			return nil, err
		}
	}
	raw.SetDeadline(time.Time{})
	pending := []byte("220 " + host + " greeting already read\r\n")
	if wire == raw { // plaintext: go-smtp gets whatever the reader holds
		buffered, _ := text.R.Peek(text.R.Buffered())
		pending = append(pending, buffered...)
	}
	c.wire = &wireConn{Conn: wire, pending: pending, writeTimeout: t.DataBlock}
	c.Client = smtp.NewClient(c.wire)
	c.Client.CommandTimeout, c.Client.SubmissionTimeout = t.Command, t.DataDone
	// RFC 3207 §4.2: after TLS, forget what the server said and EHLO again.
	if err := c.Client.Hello(d.Hostname); err != nil {
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return c, nil
}

// startTLS says EHLO and, when STARTTLS is offered, upgrades raw; it
// returns the connection to go on with. A refused STARTTLS (e.g. 454)
// goes on in plaintext on the same connection (RFC 3207 §4).
func (d *Dialer) startTLS(ctx context.Context, c *Conn, text *textproto.Conn, raw net.Conn, mode tlsMode) (net.Conn, error) {
	ext, err := ehlo(text, d.Hostname)
	if err != nil {
		return nil, err
	}
	if !ext["STARTTLS"] {
		if mode == tlsVerify {
			return nil, errTLSRequired("offers no STARTTLS", tlsrpt.StartTLSNotSupported)
		}
		return raw, nil
	}
	if err := text.PrintfLine("STARTTLS"); err != nil {
		return nil, &errTLS{err}
	}
	if _, _, err := text.ReadResponse(220); err != nil {
		var perr *textproto.Error
		if errors.As(err, &perr) && mode == tlsVerify {
			return nil, errTLSRequired("refused STARTTLS: "+perr.Error(), tlsrpt.StartTLSNotSupported)
		}
		if errors.As(err, &perr) {
			return raw, nil
		}
		return nil, &errTLS{err}
	}
	if text.R.Buffered() > 0 {
		// STARTTLS response injection (the client's side of the plaintext
		// injection of CVE-2011-0411): bytes that came before the
		// handshake must not be read as if they came over TLS.
		return nil, &errTLS{errors.New("server sent data after its 220 reply to STARTTLS")}
	}
	return d.handshake(ctx, c, raw, mode)
}

// handshake runs the TLS handshake on raw. At tlsMay verification is
// separate and only reported: an unverified certificate still beats
// plaintext. Otherwise a certificate not valid for the host fails it.
func (d *Dialer) handshake(ctx context.Context, c *Conn, raw net.Conn, mode tlsMode) (*tls.Conn, error) {
	tc := tls.Client(raw, &tls.Config{ServerName: c.Host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		if mode != tlsMay {
			return nil, errTLSRequired("failed the TLS handshake: "+err.Error(), handshakeFailure(err))
		}
		return nil, &errTLS{err}
	}
	state := tc.ConnectionState()
	c.TLS, c.TLSVersion = true, tls.VersionName(state.Version)
	if d.verifier != nil {
		c.VerifyError = d.verifier(state.PeerCertificates, c.Host)
	} else {
		c.VerifyError = verify(state.PeerCertificates, c.Host, d.RootCAs)
	}
	c.Verified = c.VerifyError == nil
	if mode != tlsMay && !c.Verified {
		return nil, errTLSRequired("presents a certificate not valid for "+c.Host+": "+c.VerifyError.Error(),
			certificateFailure(c.VerifyError))
	}
	return tc, nil
}

// errTLSRequired defers: a host that must be reached over verified TLS
// (a next hop that gets a password, an MX under DANE or MTA-STS) cannot
// be reached so now (RFC 3463 X.7.10, encryption needed). resultType is
// the failure as a TLS report names it (RFC 8460 §4.3).
func errTLSRequired(why, resultType string) error {
	return &tlsFailure{resultType: resultType,
		reply: routeError(451, 4, 7, 10, "TLS required, and the server %s", why)}
}

// handshakeFailure is the result type of a failed handshake: "" for a
// network failure (a timeout, a reset), which says nothing of the
// server's TLS and may pass; validation-failure for the rest (an alert,
// no shared protocol version or cipher).
func handshakeFailure(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.Canceled) {
		return ""
	}
	return tlsrpt.ValidationFailure
}

// tlsFailure is a TLS requirement a host failed: the reply that defers
// the mail, and the result type for TLS reports ("" for a network
// failure during the handshake, which may pass).
type tlsFailure struct {
	reply      *smtp.SMTPError
	resultType string
}

func (e *tlsFailure) Error() string { return e.reply.Error() }
func (e *tlsFailure) Unwrap() error { return e.reply }

// certificateFailure names a verification error as RFC 8460 §4.3 does.
func certificateFailure(err error) string {
	var host x509.HostnameError
	var authority x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &host):
		return tlsrpt.CertificateHostMismatch
	case errors.As(err, &authority):
		return tlsrpt.CertificateNotTrusted
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return tlsrpt.CertificateExpired
	}
	return tlsrpt.ValidationFailure
}

// ehlo greets with EHLO, or HELO when the server does not know EHLO
// (RFC 5321 §3.2), and returns the extension keywords offered.
func ehlo(text *textproto.Conn, hostname string) (map[string]bool, error) {
	if err := text.PrintfLine("EHLO %s", hostname); err != nil {
		return nil, err
	}
	_, msg, err := text.ReadResponse(250)
	var perr *textproto.Error
	if errors.As(err, &perr) && (perr.Code == 500 || perr.Code == 502) {
		if err := text.PrintfLine("HELO %s", hostname); err != nil {
			return nil, err
		}
		if _, _, err := text.ReadResponse(250); err != nil {
			return nil, fmt.Errorf("HELO: %w", asReply(err))
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("EHLO: %w", asReply(err))
	}
	ext := map[string]bool{}
	for _, line := range strings.Split(msg, "\n")[1:] {
		if kw, _, _ := strings.Cut(line, " "); kw != "" {
			ext[strings.ToUpper(kw)] = true
		}
	}
	return ext, nil
}

func verify(chain []*x509.Certificate, host string, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	return err
}

// asReply turns a server's reply read by net/textproto into the
// *smtp.SMTPError go-smtp's client would have returned.
func asReply(err error) error {
	var perr *textproto.Error
	if !errors.As(err, &perr) {
		return err
	}
	reply := &smtp.SMTPError{Code: perr.Code, Message: perr.Msg}
	first, rest, _ := strings.Cut(perr.Msg, " ")
	var e smtp.EnhancedCode
	if n, _ := fmt.Sscanf(first, "%d.%d.%d", &e[0], &e[1], &e[2]); n == 3 {
		reply.EnhancedCode, reply.Message = e, rest
	}
	return reply
}

// wireConn is the connection go-smtp's client talks through. It
// replays the greeting setup already read, and gives every write its
// own deadline: go-smtp sets none while the body is written, so a
// server that stops reading would otherwise hang the delivery forever.
type wireConn struct {
	net.Conn
	pending      []byte
	writeTimeout time.Duration
}

func (w *wireConn) Read(p []byte) (int, error) {
	if len(w.pending) > 0 {
		n := copy(p, w.pending)
		w.pending = w.pending[n:]
		return n, nil
	}
	return w.Conn.Read(p)
}

func (w *wireConn) Write(p []byte) (int, error) {
	w.Conn.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	return w.Conn.Write(p)
}

// SendOptions describe the message for MAIL FROM's parameters.
// go-smtp's client declares BODY=8BITMIME whenever the server offers it
// (harmless for a 7-bit body); an 8-bit body to a server without it is
// sent as it is, as Postfix does by default.
type SendOptions struct {
	Size int64 // bytes; sent as SIZE= when offered (RFC 1870); 0 = unknown
	// SMTPUTF8 says the message needs SMTPUTF8 (RFC 6531): the envelope's
	// flag. Non-ASCII envelope addresses set it here too.
	SMTPUTF8 bool
	// DSN parameters (RFC 3461 §5.2), sent when the server offers DSN:
	// RET and ENVID on MAIL, each recipient's NOTIFY and ORCPT on RCPT.
	Return      smtp.DSNReturn
	EnvID       string
	RcptOptions map[string]*smtp.RcptOptions
	// RequireTLS passes REQUIRETLS on (RFC 8689 §4.2.1); the session was
	// checked to offer it.
	RequireTLS bool
}

// Result holds each recipient's outcome: nil when the server accepted
// the message for it, otherwise the reply (or a temporary one).
type Result map[string]*smtp.SMTPError

var errNeedsUTF8 = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
	Message: "SMTPUTF8 is required, but was not offered by the remote server"}

// Send runs one transaction on c for rcpts. The result always has every
// recipient; the error only says the session broke, was closed by the
// server (421) or by cancelling ctx: then close c and do not reuse it.
func Send(ctx context.Context, c *Conn, from string, rcpts []string, data io.Reader, opts SendOptions) (Result, error) {
	stop := context.AfterFunc(ctx, func() { c.wire.Close() })
	res, err := transact(c, from, rcpts, data, opts)
	if !stop() && err == nil {
		err = ctx.Err() // closed under a transaction that had just ended
	}
	if err != nil {
		return res, fmt.Errorf("mta: %s[%s]: %w", c.Host, c.Addr, err)
	}
	return res, nil
}

func transact(c *Conn, from string, rcpts []string, data io.Reader, opts SendOptions) (Result, error) {
	res := make(Result, len(rcpts))
	if reply := checkLimits(c, from, rcpts, &opts); reply != nil {
		return fillResult(res, rcpts, reply), nil // nothing sent; c is still fine
	}
	mail := &smtp.MailOptions{Size: opts.Size, UTF8: opts.SMTPUTF8, Return: opts.Return, EnvelopeID: opts.EnvID,
		RequireTLS: opts.RequireTLS}
	if err := c.Mail(from, mail); err != nil {
		return fillResult(res, rcpts, ErrorReply(err)), brokenSession(err)
	}
	var accepted []string
	for i, rcpt := range rcpts {
		err := c.Rcpt(rcpt, opts.RcptOptions[rcpt])
		if err == nil {
			accepted = append(accepted, rcpt)
			continue
		}
		res[rcpt] = ErrorReply(err)
		if err := brokenSession(err); err != nil { // every recipient not yet answered waits
			return fillResult(res, append(accepted, rcpts[i+1:]...), ErrorReply(err)), err
		}
	}
	if len(accepted) == 0 {
		return res, brokenSession(c.Reset())
	}
	return fillResult(res, accepted, nil), sendData(c, accepted, data, res)
}

// checkLimits refuses, before MAIL, what the server said it cannot take.
func checkLimits(c *Conn, from string, rcpts []string, opts *SendOptions) *smtp.SMTPError {
	opts.SMTPUTF8 = opts.SMTPUTF8 || !address.IsASCII(from) || !address.IsASCII(strings.Join(rcpts, ""))
	if ok, _ := c.Extension("SMTPUTF8"); opts.SMTPUTF8 && !ok {
		return errNeedsUTF8 // RFC 6531: never to a server without SMTPUTF8; no downgrade here
	}
	if limit, ok := c.MaxMessageSize(); ok && limit > 0 && opts.Size > int64(limit) {
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("message size %d exceeds the remote server's limit of %d", opts.Size, limit)}
	}
	return nil
}

// sendData sends the body to the accepted recipients and sets their
// results from the one reply after the final dot.
func sendData(c *Conn, accepted []string, data io.Reader, res Result) error {
	w, err := c.Data()
	if err != nil {
		fillResult(res, accepted, ErrorReply(err))
		return brokenSession(err)
	}
	if _, err := io.Copy(w, data); err != nil {
		// Half a body cannot be taken back: only closing the session
		// keeps the server from delivering it.
		fillResult(res, accepted, ErrorReply(err))
		return fmt.Errorf("sending the message: %w", err)
	}
	if _, err := w.CloseWithResponse(); err != nil {
		fillResult(res, accepted, ErrorReply(err))
		return brokenSession(err)
	}
	return nil
}

func fillResult(res Result, rcpts []string, reply *smtp.SMTPError) Result {
	for _, r := range rcpts {
		res[r] = reply
	}
	return res
}

// brokenSession returns err when it leaves the session unusable: any
// error that is not a server reply, or a 421 (RFC 5321 §3.8: the
// server is closing the session).
func brokenSession(err error) error {
	var reply *smtp.SMTPError
	if err == nil || errors.As(err, &reply) && reply.Code != 421 {
		return nil
	}
	return err
}

// ErrorReply is the SMTP reply an error of Dial or Send stands for: the
// server's own, or a temporary 451 4.4.2 (bad connection) for one that
// failed or broke, so every failure can be deferred or bounced alike.
func ErrorReply(err error) *smtp.SMTPError {
	var reply *smtp.SMTPError
	if errors.As(err, &reply) {
		return reply
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: err.Error()}
}

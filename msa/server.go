// Package msa is postline's submission agent (RFC 6409): it lets
// authenticated users submit mail over TLS, checks that the sender is
// theirs, completes missing Message-ID and Date, and passes the
// transaction to the MTA over its trusted socket, answering the client
// with the MTA's own reply, so a 250 means the message is queued.
//
// msa never stores a message itself and never talks to other hosts.
package msa

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/address"
	"postline/config"
	"postline/dsn"
	"postline/guard"
	"postline/plugins/host"
	"postline/queue"
	"postline/reply"
	"postline/users"
)

// Backend is the go-smtp backend for the submission listeners.
type Backend struct {
	Config *config.Config
	Users  *users.DB
	// Aliases that reach a user are addresses the user may send as.
	Aliases *users.Aliases
	Log     zerolog.Logger
	// DialMTA opens a connection to the MTA's trusted socket.
	DialMTA func() (*smtp.Client, error)
	Policy  guard.DataPolicy
	// Plugins is the msa's chain (nil: none); its data hook sees each
	// message before it goes to the MTA.
	Plugins *host.Chain
	// SpillDir holds an unlinked copy of a message while plugins read its
	// body ("": the system's temporary folder).
	SpillDir string
	Metrics  *Metrics // nil: none
	// ReverseDNS looks up a client's verified PTR name ("" when none);
	// nil skips the look-up.
	ReverseDNS func(ip string) string
	limiter    *authLimiter
}

// NewBackend returns the submission backend for cfg.
func NewBackend(cfg *config.Config, db *users.DB, log zerolog.Logger, dialMTA func() (*smtp.Client, error)) *Backend {
	m := cfg.MSA
	return &Backend{Config: cfg, Users: db, Log: log, DialMTA: dialMTA, Policy: guard.Policy(cfg),
		limiter: newAuthLimiter(m.AuthFailuresPerIP, m.AuthFailuresPerAcc, m.AuthLockout.D(), m.AuthMaxDelay.D())}
}

// NewSession implements smtp.Backend. go-smtp calls it at EHLO and again
// after STARTTLS, so a session never carries state across the TLS start,
// and the connect hook sees the connection before and after TLS starts,
// never with a user yet.
func (b *Backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	remote := c.Conn().RemoteAddr().String()
	ip, _, _ := net.SplitHostPort(remote)
	log := b.Log.With().Str("remote", remote).Logger()
	s := &session{b: b, tls: isTLS, conn: c.Conn(), client: host.NewClient(c, b.ReverseDNS), ip: ip, log: log, txlog: log,
		hooks: host.Session{Chain: b.Plugins}}
	if reply := s.hooks.Connect(s.connInfo(), log); reply != nil {
		return nil, reply
	}
	return s, nil
}

type session struct {
	b      *Backend
	tls    bool
	conn   net.Conn
	client connDescriber // what the plugins are told of the connection
	ip     string
	user   string // authenticated address, "" before AUTH
	log    zerolog.Logger

	from    string
	rcpts   []string
	rcptDSN []*smtp.RcptOptions // each recipient's DSN parameters, passed on
	mta     *smtp.Client        // open from MAIL until the end of the transaction
	mtaMail smtp.MailOptions    // what MAIL FROM gave the MTA, for a new start
	queueID string              // allocated at MAIL FROM, passed to the MTA
	txlog   zerolog.Logger      // log with the transaction's queue_id
	hooks   host.Session        // the plugins' hooks and what they decided
}

func (s *session) Reset() {
	if s.mta != nil {
		s.mta.Close()
		s.mta = nil
	}
	s.from, s.rcpts, s.rcptDSN, s.queueID = "", nil, nil, ""
	s.txlog = s.log
	s.hooks.Reset()
}

func (s *session) Logout() error {
	s.Reset()
	s.hooks.Disconnect(s.connInfo)
	return nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.Reset()
	if s.user == "" {
		return reply.NeedAuth
	}
	// RFC 6409 §6.1 lets the MSA refuse senders the user may not use. The
	// null sender is allowed, as Postfix's reject_sender_login_mismatch
	// does, for auto-replies that must not bounce.
	if from != "" && !s.owns(from) {
		s.txlog.Warn().Str("from", sanitize(from)).Msg("sender refused")
		return reply.SenderNotOwned
	}
	// The queue ID is allocated here, once per message: the MTA keeps it
	// (queue.IDParam), so the reply, the trace field and every log line
	// of the message carry the same ID.
	s.queueID = queue.NewID(time.Now())
	s.txlog = s.log.With().Str("queue_id", s.queueID).Logger()
	if reply := s.hooks.Mail(host.MailInfo{Conn: s.connInfo(), Sender: from, Params: host.MailParams(opts)}, s.txlog); reply != nil {
		return reply
	}
	if p := dsn.CheckMail(opts); p != "" {
		return reply.BadParam(p)
	}
	s.mtaMail = smtp.MailOptions{Auth: &s.user, Params: map[string]string{queue.IDParam: s.queueID}}
	if opts != nil {
		s.mtaMail.Body, s.mtaMail.UTF8, s.mtaMail.Size = opts.Body, opts.UTF8, opts.Size
		s.mtaMail.Return, s.mtaMail.EnvelopeID = opts.Return, opts.EnvelopeID
		if opts.RequireTLS { // the session is TLS: AUTH needs it
			s.mtaMail.Params[queue.RequireTLSParam] = "yes"
		}
	}
	s.from = from
	return s.openMTA()
}

// openMTA starts the transaction with the MTA, and when it is started
// anew (for a folder chosen at the end of DATA) gives the recipients again.
func (s *session) openMTA() error {
	if s.mta != nil {
		s.mta.Close()
		s.mta = nil
	}
	c, err := s.b.DialMTA()
	if err != nil {
		s.txlog.Error().Err(err).Msg("cannot reach mta")
		return reply.MTAUnavailable
	}
	if err := c.Mail(s.from, &s.mtaMail); err != nil {
		c.Close()
		return s.mtaError("MAIL", err)
	}
	for i, rcpt := range s.rcpts {
		if err := c.Rcpt(rcpt, s.rcptDSN[i]); err != nil {
			c.Close()
			return s.mtaError("RCPT", err)
		}
	}
	s.mta = c
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.mta == nil { // the MTA connection broke earlier in this transaction
		return reply.MTAUnavailable
	}
	if p := dsn.CheckRcpt(opts); p != "" {
		return reply.BadParam(p)
	}
	if reply := s.hooks.Rcpt(host.RcptInfo{Conn: s.connInfo(), Sender: s.from, Recipient: to}, s.txlog); reply != nil {
		return reply
	}
	if err := s.mta.Rcpt(to, opts); err != nil {
		return s.mtaError("RCPT", err)
	}
	s.rcpts, s.rcptDSN = append(s.rcpts, to), append(s.rcptDSN, opts)
	return nil
}

// Data streams the message to the MTA, adding Message-ID and Date if the
// client left them out, and answers with the MTA's reply.
func (s *session) Data(r io.Reader) error {
	reply := s.data(r)
	s.b.Metrics.submitted(reply)
	return reply
}

func (s *session) data(r io.Reader) error {
	if s.mta == nil {
		return reply.MTAUnavailable
	}
	br := bufio.NewReader(guard.NewDataReader(r, s.conn, s.b.Policy))
	h, err := scanHeader(br)
	if err == nil && s.b.Config.MSA.CheckHeaderFrom {
		err = s.checkHeaderFrom(h.from)
	}
	if err != nil {
		s.Reset()
		return dataError(err)
	}
	tx := host.TxInfo{Conn: s.connInfo(), Sender: s.from, Recipients: s.rcpts}
	f, err := s.hooks.Filter(tx, h.message(h.block(s.b.Config.Hostname), br), s.b.SpillDir, s.txlog)
	if err != nil {
		s.Reset() // closes the MTA transaction: nothing is queued
		return dataError(err)
	}
	defer f.Close()
	if err := s.passOutcome(f.Result.Envelope); err != nil {
		return err
	}
	w, err := s.mta.Data()
	if err != nil {
		return s.mtaError("DATA", err)
	}
	if _, err := io.Copy(w, f.Message); err != nil {
		s.Reset() // the MTA must not queue a truncated message
		var serr *smtp.SMTPError
		if errors.As(err, &serr) {
			return serr
		}
		s.txlog.Error().Err(err).Msg("cannot pass message to mta")
		return reply.MTAUnavailable
	}
	resp, err := w.CloseWithResponse()
	var text string
	switch {
	case err == nil:
		text = stripEnhancedCode(resp.StatusText)
	case s.confirmQueued(err):
		text = reply.Queued(s.queueID).Message
	default:
		return s.mtaError("end of DATA", err)
	}
	log := s.txlog
	if id := queuedAs(text); id != s.queueID {
		log = log.With().Str("mta_queue_id", id).Logger()
	}
	log.Info().Str("from", s.from).Strs("rcpt", s.rcpts).Msg("submitted")
	return reply.New(250, 2, 0, 0, text)
}

// passOutcome hands the MTA a folder the plugins chose, which it learns
// with MAIL FROM, and their envelope changes: the transaction is started
// again with them.
func (s *session) passOutcome(changes []host.EnvelopeChange) error {
	if s.hooks.Tx.Folder == "" && len(changes) == 0 {
		return nil
	}
	if s.hooks.Tx.Folder != "" {
		s.mtaMail.Params[queue.FolderParam] = s.hooks.Tx.Folder
	}
	if len(changes) > 0 {
		s.changeEnvelope(changes)
	}
	return s.openMTA()
}

// changeEnvelope applies the plugins' envelope changes; recipients that
// stay keep their DSN parameters, added ones have none. The sender rule
// is not applied again: a plugin is the admin's.
func (s *session) changeEnvelope(changes []host.EnvelopeChange) {
	from, rcpts := host.ApplyEnvelope(changes, s.from, s.rcpts)
	params := make([]*smtp.RcptOptions, len(rcpts))
	for i, r := range rcpts {
		if j := slices.Index(s.rcpts, r); j >= 0 {
			params[i] = s.rcptDSN[j]
		}
	}
	s.txlog.Info().Str("from", from).Strs("rcpt", rcpts).Msg("envelope changed by plugin")
	s.from, s.rcpts, s.rcptDSN = from, rcpts, params
}

// owns reports whether the authenticated user may use addr as a sender:
// its own address, and each alias whose mail reaches it.
func (s *session) owns(addr string) bool {
	a, err := address.Parse(addr)
	if err != nil {
		return false
	}
	if key := a.Key(); key == s.user || s.b.Aliases.Reaches(key, s.user) {
		return true
	}
	// user+ext@ is the user's too (recipient_delimiter), and so is an
	// extension of an alias that reaches the user.
	base, _, ok := users.SplitExtension(a.Key(), s.b.Config.RecipientDelimiter)
	return ok && (base == s.user || s.b.Aliases.Reaches(base, s.user))
}

// checkHeaderFrom applies the sender rule to the From: header as well
// (msa.check_header_from), so a user cannot sign as someone else there.
func (s *session) checkHeaderFrom(value []byte) error {
	list, err := mail.ParseAddressList(strings.TrimSpace(string(value)))
	if err != nil || len(list) == 0 {
		return reply.HeaderFromNotOwn
	}
	for _, a := range list {
		if !s.owns(a.Address) {
			s.txlog.Warn().Str("header_from", sanitize(a.Address)).Msg("From header refused")
			return reply.HeaderFromNotOwn
		}
	}
	return nil
}

// dataError is the reply when the message could not be read.
func dataError(err error) error {
	var serr *smtp.SMTPError
	if errors.As(err, &serr) {
		return serr
	}
	return reply.MTAUnavailable
}

// mtaError passes an MTA refusal through unchanged; anything else (the
// socket broke) becomes a temporary failure.
func (s *session) mtaError(stage string, err error) error {
	var serr *smtp.SMTPError
	if errors.As(err, &serr) {
		s.txlog.Info().Str("stage", stage).Int("code", serr.Code).Str("reply", serr.Message).Msg("mta refused")
		return serr
	}
	s.txlog.Error().Err(err).Str("stage", stage).Msg("mta connection failed")
	s.Reset()
	return reply.MTAUnavailable
}

// queuedAs extracts the queue ID from the MTA's "Ok: queued as ID".
func queuedAs(text string) string {
	_, id, ok := strings.Cut(text, "queued as ")
	if !ok {
		return ""
	}
	return strings.Fields(id + " ")[0]
}

// stripEnhancedCode removes a leading "2.0.0 " that the client library
// may leave in the reply text, since go-smtp's server writes its own.
func stripEnhancedCode(text string) string {
	var a, b, c int
	if n, _ := fmt.Sscanf(text, "%d.%d.%d ", &a, &b, &c); n == 3 {
		if _, rest, ok := strings.Cut(text, " "); ok {
			return rest
		}
	}
	return text
}

// sanitize keeps client-supplied text from forging log lines.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// connInfo is the connection as the plugins see it, with the user and
// the current message's queue ID.
func (s *session) connInfo() host.ConnInfo {
	var ci host.ConnInfo
	if s.client != nil {
		ci = s.client.Info()
	} else {
		ci = (*host.Client)(nil).Info() // a session without a connection (tests)
	}
	ci.AuthUser, ci.QueueID = s.user, s.queueID
	return ci
}

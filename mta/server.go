// Package mta is postline's transfer agent: it receives mail over SMTP
// (from the internet for local domains only, and from the MSA over a
// trusted unix socket for any destination), makes it durable in the
// queue before answering 250, and delivers it: local recipients over
// LMTP to the MDA.
//
// mta never writes into a mailbox and never checks passwords.
package mta

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/address"
	"postline/config"
	"postline/dsn"
	"postline/guard"
	"postline/plugins/host"
	"postline/queue"
	"postline/reply"
	"postline/srs"
	"postline/users"
)

// Backend is the go-smtp backend for both of the MTA's listeners.
type Backend struct {
	Config *config.Config
	Users  *users.DB
	// Aliases send a local address's mail elsewhere (nil: none).
	Aliases *users.Aliases
	Queue   queue.Queue
	// SpillDir takes the copy of a message that plugins reading the
	// body get, unlinked at once (the queue's tmp/ in postline-mta).
	SpillDir string
	Manager  *Manager
	Log      zerolog.Logger
	Policy   guard.DataPolicy
	// Trusted is set on the backend of the MSA's unix socket: its
	// clients may relay, and pass the submitter as MAIL FROM AUTH=.
	Trusted bool
	// FromMDA is set (with Trusted) on the backend of the MDA's socket,
	// run/mta-mda.sock, which its user shares with Dovecot: it relays only
	// the MDA's own mail, a reply from <> or a redirect (queue.ForwardParam,
	// sent on with SRS), and never as a submitter: no AUTH, no queue ID,
	// folder, question or REQUIRETLS of the MSA's.
	FromMDA bool
	// Plugins is the mta's chain (nil: none); its data hook runs for
	// mail from the internet, never on the trusted socket.
	Plugins *host.Chain
	// ReverseDNS looks up a client's verified PTR name ("" when none);
	// nil skips the look-up.
	ReverseDNS func(ip string) string
	Metrics    *Metrics // nil: none
	// SRS checks the SRS addresses bounces come back to (nil: off).
	SRS *srs.Rewriter
}

// NewSession implements smtp.Backend.
func (b *Backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	remote := "local"
	if addr := c.Conn().RemoteAddr(); addr != nil && addr.String() != "" && addr.String() != "@" {
		remote = addr.String()
	}
	s := &session{b: b, conn: c.Conn(), client: host.NewClient(c, b.ReverseDNS), log: b.Log.With().Str("remote", remote).Logger()}
	// What arrives on the trusted socket was filtered by the MSA.
	if !b.Trusted {
		s.hooks.Chain = b.Plugins
	}
	if reply := s.hooks.Connect(s.client.Info(), s.log); reply != nil {
		return nil, reply
	}
	return s, nil
}

type session struct {
	b        *Backend
	conn     net.Conn
	client   *host.Client // what the plugins are told of the connection
	log      zerolog.Logger
	from     string
	authUser string
	opts     smtp.MailOptions
	rcpts    []string
	requests map[string]queue.Recipient // each recipient's DSN request (Notify, ORcpt)
	refused  int                        // recipients refused in this connection
	queueID  string                     // proposed by the MSA on the trusted socket (queue.IDParam)
	hooks    host.Session               // the plugins' hooks and what they decided
}

func (s *session) Reset() {
	s.from, s.authUser, s.opts, s.rcpts, s.requests, s.queueID = "", "", smtp.MailOptions{}, nil, nil, ""
	s.hooks.Reset()
}

// Logout ends the session: plugins that keep state per connection are told.
func (s *session) Logout() error {
	s.hooks.Disconnect(s.client.Info)
	return nil
}

// msa reports whether the session is the MSA's, on the trusted socket:
// the one client that speaks for a submitter.
func (s *session) msa() bool { return s.b.Trusted && !s.b.FromMDA }

// tls reports whether the session runs over TLS (after STARTTLS go-smtp
// makes a new session on the TLS connection).
func (s *session) tls() bool {
	_, ok := s.conn.(*tls.Conn)
	return ok
}

// AuthMechanisms advertises AUTH only on the trusted socket, so that
// go-smtp's client in the MSA sends the submitter as AUTH= (RFC 4954 §5).
// EXTERNAL is honest there: the socket's file permissions authenticate.
func (s *session) AuthMechanisms() []string {
	if s.b.Trusted && !s.b.FromMDA {
		return []string{sasl.External}
	}
	return nil
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.b.Trusted || s.b.FromMDA || mech != sasl.External {
		return nil, reply.NoAuth
	}
	return sasl.NewExternalServer(func(string) error { return nil }), nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.Reset()
	if id := queuedQuestion(opts); s.msa() && id != "" {
		return s.answerQueued(id)
	}
	if s.b.FromMDA && from != "" && (opts == nil || opts.Params[queue.ForwardParam] == "") {
		return reply.MDAMailOnly
	}
	if p := dsn.CheckMail(opts); p != "" {
		return reply.BadParam(p)
	}
	if opts != nil && opts.RequireTLS && !s.tls() {
		return reply.RequireTLSNeedsTLS
	}
	if from != "" { // "" is the null reverse-path of bounces
		if _, err := address.Parse(from); err != nil {
			return reply.BadSender
		}
		if !address.IsASCII(from) && (opts == nil || !opts.UTF8) {
			return reply.NeedSMTPUTF8
		}
	}
	s.from = from
	if opts != nil {
		s.opts = *opts
		if s.msa() {
			if opts.Auth != nil {
				s.authUser = *opts.Auth
			}
			s.queueID = opts.Params[queue.IDParam]
			s.hooks.Tx.Folder = opts.Params[queue.FolderParam]
		}
	}
	if f := s.hooks.Tx.Folder; f != "" && !host.ValidFolder(f) {
		return reply.BadParam(queue.FolderParam)
	}
	mail := host.MailInfo{Conn: s.client.Info(), Sender: s.from, Params: host.MailParams(opts)}
	if reply := s.hooks.Mail(mail, s.log); reply != nil {
		return reply
	}
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if p := dsn.CheckRcpt(opts); p != "" {
		return reply.BadParam(p)
	}
	if strings.EqualFold(to, "postmaster") { // RCPT TO:<Postmaster>, RFC 5321 §4.1.1.3
		to = s.b.Config.Postmaster()
	}
	rcpt, err := s.checkRecipient(to)
	if err == nil && !address.IsASCII(to) && !s.opts.UTF8 {
		err = reply.NeedSMTPUTF8
	}
	if err != nil {
		s.log.Info().Str("from", s.from).Str("rcpt", to).Int("code", err.Code).Msg("recipient refused")
		s.b.Metrics.clientRefused("rcpt", err.Code)
		// Refused recipients count as errors, as Postfix's
		// smtpd_hard_error_limit counts them: no endless address probing.
		if s.refused++; s.b.Config.Limits.MaxErrors > 0 && s.refused >= s.b.Config.Limits.MaxErrors {
			s.log.Warn().Int("refused", s.refused).Msg("too many refused recipients")
			return reply.TooManyErrors
		}
		return err
	}
	if reply := s.hooks.Rcpt(host.RcptInfo{Conn: s.client.Info(), Sender: s.from, Recipient: rcpt}, s.log); reply != nil {
		s.b.Metrics.clientRefused("rcpt", reply.Code)
		return reply
	}
	s.rcpts = append(s.rcpts, rcpt)
	s.keepRequest(rcpt, opts)
	return nil
}

// keepRequest keeps rcpt's DSN request for its queue entry.
func (s *session) keepRequest(rcpt string, opts *smtp.RcptOptions) {
	if opts == nil || len(opts.Notify) == 0 && opts.OriginalRecipient == "" {
		return
	}
	if s.requests == nil {
		s.requests = map[string]queue.Recipient{}
	}
	s.requests[rcpt] = queue.Recipient{Notify: string(dsn.NotifyOf(opts.Notify)), ORcpt: string(dsn.ORcptOf(opts))}
}

// checkRecipient accepts known local users and postmaster@ each local
// domain (RFC 5321 §4.5.1), and other domains only from trusted clients:
// the MTA is never an open relay. Whatever the tricks in the address
// ("user%remote@local", quoted "@", "@local:user@remote" source routes,
// which go-smtp strips, IDN spellings, trailing dots), the domain that
// decides is the one mail would be delivered to. It returns the address
// in the form the queue keeps.
func (s *session) checkRecipient(to string) (string, *smtp.SMTPError) {
	a, err := address.Parse(to)
	if err != nil {
		return "", reply.BadRecipient
	}
	if !s.b.Config.IsLocalDomain(a.Domain) {
		if s.b.Trusted {
			return a.String(), nil
		}
		return "", reply.RelayDenied
	}
	if strings.EqualFold(a.Local, "postmaster") {
		return a.Key(), nil
	}
	if _, known := s.route(a.Key()); known {
		return a.Key(), nil
	}
	return "", reply.UnknownUser
}

// route returns where mail to the local address addr goes, as Postfix
// looks it up: the targets of its alias; itself when it is a user; with
// its extension (recipient_delimiter) cut off, the base's alias, or
// itself when the base is a user (the MDA files it by the extension);
// else the domain's catch-all. known is false when none matches.
func (s *session) route(addr string) (targets []string, known bool) {
	if orig, err := s.b.SRS.ReverseAddress(addr, time.Now()); !errors.Is(err, srs.ErrNotSRS) {
		return s.reverseSRS(addr, orig, err)
	}
	if t, ok := s.b.Aliases.Expand(addr); ok {
		return t, true
	}
	if s.b.Users.Exists(addr) {
		return []string{addr}, true
	}
	if base, _, ok := users.SplitExtension(addr, s.b.Config.RecipientDelimiter); ok {
		if t, ok := s.b.Aliases.Expand(base); ok {
			return t, true
		}
		if s.b.Users.Exists(base) {
			return []string{addr}, true
		}
	}
	_, domain, _ := splitAddress(addr)
	return s.b.Aliases.CatchAll(domain)
}

// reverseSRS routes mail to addr, an SRS address of ours (a bounce of
// mail we forwarded), back to orig, the original sender. One we did not
// make, or made more than srs.MaxAge ago (err), is unknown (550 5.1.1):
// it would make us a relay for anyone who can guess the format.
func (s *session) reverseSRS(addr, orig string, err error) ([]string, bool) {
	if err != nil {
		s.log.Info().Str("rcpt", addr).Err(err).Msg("SRS address refused")
		return nil, false
	}
	return []string{orig}, true
}

// recipients are the message's envelope recipients in the queue: the
// accepted ones with aliases replaced by where their mail goes, once
// each. An alias may forward out of the local domains, which makes the
// message relayable: the admin set that target, not the client.
func (s *session) recipients(env *queue.Envelope) {
	// A message a Sieve script redirects, handed over by the MDA, is
	// forwarded as an alias forwards (SRS for another domain).
	redirected := s.b.FromMDA && s.opts.Params[queue.ForwardParam] != ""
	for _, rc := range s.rcpts {
		targets, ok := []string{rc}, false // ok: an alias's targets
		if s.isLocal(rc) {
			if t, known := s.route(rc); known && !slices.Equal(t, targets) {
				targets, ok = t, true
			}
		}
		for _, t := range targets {
			if slices.ContainsFunc(env.Recipients, func(r *queue.Recipient) bool { return r.Address == t }) {
				continue
			}
			r := s.queued(t, rc, ok)
			if (ok || redirected) && !s.isLocal(t) {
				env.Relay, r.Forwarded = true, true
			}
			env.Recipients = append(env.Recipients, r)
		}
	}
}

// queued is target's queue entry, reached through the accepted
// recipient rc (an alias when expanded): it inherits rc's DSN request,
// and an alias's target reports rc as its original recipient unless the
// client gave one, as Postfix does (RFC 3461 §4.2).
func (s *session) queued(target, rc string, expanded bool) *queue.Recipient {
	r := s.requests[rc]
	if expanded && r.ORcpt == "" {
		r.ORcpt = "rfc822;" + rc
		if !address.IsASCII(rc) {
			r.ORcpt = "utf-8;" + rc // RFC 6533 §3
		}
	}
	return &queue.Recipient{Address: target, State: queue.Pending, Notify: r.Notify, ORcpt: r.ORcpt}
}

func (s *session) isLocal(addr string) bool {
	a, err := address.Parse(addr)
	return err == nil && s.b.Config.IsLocalDomain(a.Domain)
}

func splitAddress(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

// Data queues the message; the 250 goes out only after the spool has
// made it durable.
func (s *session) Data(r io.Reader) error {
	now := time.Now()
	env := &queue.Envelope{
		ID: s.newID(now), From: s.from, AuthUser: s.authUser, Received: now,
		Body8Bit: s.opts.Body == smtp.Body8BitMIME, SMTPUTF8: s.opts.UTF8, Relay: s.b.Trusted,
		Return: string(s.opts.Return), EnvID: s.opts.EnvelopeID,
		RequireTLS: s.opts.RequireTLS || s.msa() && s.opts.Params[queue.RequireTLSParam] != "",
	}
	s.recipients(env)
	log := s.log.With().Str("queue_id", env.ID).Logger()
	r = guard.NewDataReader(r, s.conn, s.b.Policy)
	if s.b.FromMDA && s.from == "" {
		r = s.signReply(r, log)
	}
	f, refused := s.filter(r, env, log)
	if refused != nil {
		s.b.Metrics.clientRefused("data", refused.Code)
		return refused
	}
	defer f.Close()
	if err := s.b.Queue.Store(env, f.Message); err != nil {
		serr := storeError(err)
		log.Warn().Err(err).Int("code", serr.Code).Msg("message not queued")
		s.b.Metrics.clientRefused("data", serr.Code)
		return serr
	}
	s.b.Metrics.messageQueued(s.b.Trusted)
	log.Info().Str("from", env.From).Strs("rcpt", s.rcpts).Int64("size", env.Size).
		Str("auth", env.AuthUser).Msg("queued")
	s.b.Manager.Add(env)
	return reply.Queued(env.ID)
}

func queuedQuestion(opts *smtp.MailOptions) string {
	if opts == nil {
		return ""
	}
	return opts.Params[queue.QueuedParam]
}

// answerQueued tells the MSA whether message id was queued (see
// queue.QueuedParam).
func (s *session) answerQueued(id string) error {
	queued, err := s.b.Queue.Queued(id)
	log := s.log.Info().Str("queue_id", sanitizeID(id)).Bool("queued", queued)
	if err != nil {
		log.Err(err).Msg("msa asked whether a message was queued")
		return reply.QueueError
	}
	log.Msg("msa asked whether a message was queued")
	if !queued {
		return reply.NotQueued
	}
	return nil
}

// newID is the queue ID of the message in this transaction: the one the
// MSA allocated when it is well formed and not in the queue yet, else a
// new one.
func (s *session) newID(now time.Time) string {
	if s.b.Trusted && s.queueID != "" {
		if queue.ValidID(s.queueID) && !s.b.Queue.Has(s.queueID) {
			return s.queueID
		}
		s.log.Warn().Str("proposed_id", sanitizeID(s.queueID)).Msg("queue id from the msa not usable, allocating one")
	}
	return queue.NewID(now)
}

// sanitizeID keeps a client-supplied ID from forging log lines.
func sanitizeID(id string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, id)
}

// storeError decides the reply when the spool could not take a message.
func storeError(err error) *smtp.SMTPError {
	var serr *smtp.SMTPError
	switch {
	case errors.As(err, &serr): // e.g. the client's message exceeded the size limit
		return serr
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return reply.NoStorage
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		// A spool that cannot be written takes no mail, as a full one.
		return reply.NoStorage
	}
	return reply.QueueError
}

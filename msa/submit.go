package msa

import (
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-smtp"

	"postline/address"
	"postline/plugins/host"
	"postline/reply"
)

// connDescriber tells the plugins about the client: host.Client for an
// SMTP connection, fixedConn for another front end.
type connDescriber interface{ Info() host.ConnInfo }

// fixedConn is a client described once, by a front end other than SMTP.
type fixedConn host.ConnInfo

func (c fixedConn) Info() host.ConnInfo { return host.ConnInfo(c) }

// Submission is one message given to the MSA by a front end other than
// SMTP (the HTTP API): already authenticated, with its whole envelope.
type Submission struct {
	User string        // the authenticated account
	Conn host.ConnInfo // for the plugins; Protocol names the front end ("HTTP")
	From string        // "" for the null sender
	To   []string
	// Message is the message with CRLF line ends; a read error that is an
	// *smtp.SMTPError (e.g. reply.TooLarge) is the answer given.
	Message io.Reader
	// Body8Bit declares 8BITMIME content (RFC 6152) to the MTA.
	Body8Bit bool
}

// Result is how a submission ended, as the MTA or a plugin answered it.
type Result struct {
	// QueueID is the message's ID: the one the MTA queued it as, or for a
	// refusal the ID allocated for it (in the logs), "" before that.
	QueueID   string
	Discarded bool            // a plugin discarded it: success, nothing queued
	Reply     *smtp.SMTPError // the final reply; 250 on success
}

// Submit runs one message through exactly the path of an SMTP
// transaction on the submission port, by driving a session as go-smtp
// would: the connect hook, MAIL (the sender rule, the mail hook, the MTA
// transaction), RCPT for each recipient (the rcpt hook, the MTA's
// answer), then DATA (header completion, the data hook, the MTA's reply
// once the message is on disk, confirmQueued when the MTA broke after
// it). So a 2xx Result means what a 250 on port 587 means: queued.
func (b *Backend) Submit(sub Submission) Result {
	ci := sub.Conn
	ci.AuthUser = sub.User
	log := b.Log.With().Str("remote", ci.ClientIP).Str("protocol", ci.Protocol).Str("user", sub.User).Logger()
	s := &session{b: b, tls: ci.TLSVersion != "", client: fixedConn(ci), ip: ci.ClientIP, user: sub.User,
		log: log, txlog: log, hooks: host.Session{Chain: b.Plugins}}
	defer s.Reset()
	if r := s.hooks.Connect(s.connInfo(), log); r != nil {
		return Result{Reply: r}
	}
	if len(sub.To) == 0 {
		return Result{Reply: reply.NoRecipients}
	}
	if len(sub.To) > b.Config.Limits.MaxRecipients {
		return Result{Reply: reply.TooManyRecipients}
	}
	opts := &smtp.MailOptions{UTF8: !address.IsASCII(sub.From + strings.Join(sub.To, ""))}
	if sub.Body8Bit {
		opts.Body = smtp.Body8BitMIME
	}
	if err := s.Mail(sub.From, opts); err != nil {
		return s.result(err)
	}
	for _, to := range sub.To {
		if err := s.Rcpt(to, &smtp.RcptOptions{}); err != nil {
			return s.result(err)
		}
	}
	res := s.result(s.Data(sub.Message))
	if res.Reply.Code == 250 {
		if id := queuedAs(res.Reply.Message); id != "" {
			res.QueueID = id
		} else {
			res.Discarded = true
		}
	}
	return res
}

// result turns a session method's error into a Result.
func (s *session) result(err error) Result {
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) {
		serr = reply.MTAUnavailable
	}
	return Result{QueueID: s.queueID, Reply: serr}
}

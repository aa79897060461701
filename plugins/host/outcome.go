package host

import (
	"context"
	"io"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/reply"
)

// Outcome is what the connect, mail and rcpt hooks decided about the
// message to come: the daemon answers a refusal at once and acts on the
// rest at the end of DATA. Header edits count at the data and deliver
// hooks only; edits from these hooks are not carried.
type Outcome struct {
	// DiscardedBy names the plugin that discarded the message: it is
	// answered 250 and never queued. "" keeps it.
	DiscardedBy string
	// Folder is the folder a FILE_INTO chose, "" for the inbox.
	Folder string
}

// Fold adds one hook's result to o and returns the reply the client must
// get instead of success, or nil.
func (o *Outcome) Fold(res Result) *smtp.SMTPError {
	switch res.Action {
	case Reject, Tempfail:
		return res.Reply.SMTPError()
	case Discard:
		o.DiscardedBy = res.By
	}
	if res.Folder != "" {
		o.Folder = res.Folder
	}
	return nil
}

// Session is one SMTP session's use of a chain, the same in the MSA and
// the MTA: it runs the connect, mail, rcpt and data hooks and keeps what
// they decided for the message under way. With a nil Chain it runs
// nothing and every message goes on as it came.
type Session struct {
	Chain *Chain
	conn  Outcome // what the connect hook decided for every message
	// Tx is what the hooks decided for the message under way; a daemon
	// may set its Folder from a trusted peer.
	Tx Outcome
}

// Reset starts a new message: only the connect hook's outcome carries on.
func (s *Session) Reset() { s.Tx = s.conn }

// Connect runs the connect hook and returns the reply to give instead of
// success, or nil.
func (s *Session) Connect(ci ConnInfo, log zerolog.Logger) *smtp.SMTPError {
	defer s.Reset()
	if !s.Chain.Has(HookConnect) {
		return nil
	}
	return s.fold(&s.conn, "connect", s.Chain.Connect(context.Background(), ci), log)
}

// Disconnect tells the plugins that the session ended. ci is called only
// when a plugin listens: it may cost a reverse DNS lookup.
func (s *Session) Disconnect(ci func() ConnInfo) {
	if s.Chain.Has(HookDisconnect) {
		s.Chain.Disconnect(context.Background(), ci())
	}
}

// Mail runs the mail hook for one MAIL FROM.
func (s *Session) Mail(m MailInfo, log zerolog.Logger) *smtp.SMTPError {
	if !s.Chain.Has(HookMail) {
		return nil
	}
	return s.fold(&s.Tx, "mail", s.Chain.Mail(context.Background(), m), log)
}

// Rcpt runs the rcpt hook for one RCPT TO.
func (s *Session) Rcpt(r RcptInfo, log zerolog.Logger) *smtp.SMTPError {
	if !s.Chain.Has(HookRcpt) {
		return nil
	}
	return s.fold(&s.Tx, "rcpt", s.Chain.Rcpt(context.Background(), r), log)
}

func (s *Session) fold(o *Outcome, hook string, res Result, log zerolog.Logger) *smtp.SMTPError {
	reply := o.Fold(res)
	if reply != nil {
		log.Info().Str("hook", hook).Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("refused by plugin")
	}
	return reply
}

// Filter runs the data hook on the message read from r (see
// FilterMessage) unless a hook discarded it already, and records the
// folder chosen in Tx. It returns the message to pass on; or an
// *smtp.SMTPError to answer instead, a refusal or the 250 of a discard;
// or an error reading r.
func (s *Session) Filter(tx TxInfo, r io.Reader, spillDir string, log zerolog.Logger) (*Filtered, error) {
	if by := s.Tx.DiscardedBy; by != "" {
		log.Info().Str("plugin", by).Msg("message discarded by plugin")
		return nil, reply.Discarded(by)
	}
	f, err := s.Chain.FilterMessage(context.Background(), tx, r, spillDir)
	if err != nil {
		return nil, err
	}
	res := f.Result
	switch {
	case res.Refused():
		f.Close()
		log.Info().Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("message refused by plugin")
		return nil, res.Reply.SMTPError()
	case res.Action == Discard:
		f.Close()
		log.Info().Str("plugin", res.By).Msg("message discarded by plugin")
		return nil, reply.Discarded(res.By)
	}
	if _, rcpts := ApplyEnvelope(res.Envelope, tx.Sender, tx.Recipients); len(rcpts) == 0 {
		f.Close() // a message for no one is dropped, as a discard is
		log.Info().Str("plugin", res.EnvelopeBy).Msg("message discarded: plugins removed every recipient")
		return nil, reply.Discarded(res.EnvelopeBy)
	}
	if res.Folder != "" {
		s.Tx.Folder = res.Folder
	}
	return f, nil
}

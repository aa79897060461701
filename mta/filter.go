package mta

import (
	"context"
	"io"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/plugins/host"
	"postline/queue"
)

// hookConnect runs the connect hook when the session starts (HELO or
// EHLO), for mail from the internet only: what arrives on the trusted
// socket was filtered by the MSA.
func (s *session) hookConnect() *smtp.SMTPError {
	if s.b.Trusted || !s.b.Plugins.Has(host.HookConnect) {
		return nil
	}
	res := s.b.Plugins.Connect(context.Background(), s.client.Info())
	return s.fold("connect", &s.connOutcome, res)
}

// hookMail runs the mail hook for one MAIL FROM.
func (s *session) hookMail(params map[string]string) *smtp.SMTPError {
	if s.b.Trusted || !s.b.Plugins.Has(host.HookMail) {
		return nil
	}
	res := s.b.Plugins.Mail(context.Background(), host.MailInfo{Conn: s.client.Info(), Sender: s.from, Params: params})
	return s.fold("mail", &s.outcome, res)
}

// hookRcpt runs the rcpt hook for one RCPT TO.
func (s *session) hookRcpt(rcpt string) *smtp.SMTPError {
	if s.b.Trusted || !s.b.Plugins.Has(host.HookRcpt) {
		return nil
	}
	res := s.b.Plugins.Rcpt(context.Background(), host.RcptInfo{Conn: s.client.Info(), Sender: s.from, Recipient: rcpt})
	return s.fold("rcpt", &s.outcome, res)
}

func (s *session) fold(hook string, o *host.Outcome, res host.Result) *smtp.SMTPError {
	reply := o.Fold(res)
	if reply != nil {
		s.log.Info().Str("hook", hook).Str("plugin", res.By).Str("from", s.from).
			Str("reply", res.Reply.String()).Msg("refused by plugin")
	}
	return reply
}

// filter runs the data hook on the message, for mail from the internet
// only, and returns the message to store, with the plugins' header edits,
// and sets env.Folder from their choice. A non-nil reply ends the
// transaction without queueing: a refusal, or a 250 for a discarded message.
func (s *session) filter(r io.Reader, env *queue.Envelope, log zerolog.Logger) (*host.Filtered, *smtp.SMTPError) {
	if s.outcome.DiscardedBy != "" {
		log.Info().Str("plugin", s.outcome.DiscardedBy).Msg("message discarded by plugin")
		return nil, host.Discarded(s.outcome.DiscardedBy)
	}
	env.Folder = s.outcome.Folder
	if s.b.Trusted {
		return &host.Filtered{Message: r}, nil
	}
	ci := s.client.Info()
	ci.QueueID = env.ID
	tx := host.TxInfo{Conn: ci, Sender: s.from, Recipients: s.rcpts}
	f, err := s.b.Plugins.FilterMessage(context.Background(), tx, r, s.b.Spool.TempDir())
	if err != nil {
		serr := storeError(err)
		log.Warn().Err(err).Int("code", serr.Code).Msg("message not filtered")
		return nil, serr
	}
	res := f.Result
	if res.Refused() || res.Action == host.Discard {
		f.Close()
	}
	switch {
	case res.Refused():
		log.Info().Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("message refused by plugin")
		return nil, res.Reply.SMTPError()
	case res.Action == host.Discard:
		log.Info().Str("plugin", res.By).Msg("message discarded by plugin")
		return nil, host.Discarded(res.By)
	}
	if res.Folder != "" {
		env.Folder = res.Folder
	}
	return f, nil
}

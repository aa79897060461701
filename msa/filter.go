package msa

import (
	"context"
	"io"

	"github.com/emersion/go-smtp"

	"postline/plugins/host"
)

// connInfo is the connection as the plugins see it, with the user and
// the current message's queue ID.
func (s *session) connInfo() host.ConnInfo {
	ci := s.client.Info()
	ci.AuthUser, ci.QueueID = s.user, s.queueID
	return ci
}

// hookConnect runs the connect hook at EHLO; go-smtp starts a session
// again after STARTTLS, so plugins see the connection before and after
// TLS starts, never with a user yet.
func (s *session) hookConnect() *smtp.SMTPError {
	if !s.b.Plugins.Has(host.HookConnect) {
		return nil
	}
	return s.fold("connect", &s.connOutcome, s.b.Plugins.Connect(context.Background(), s.connInfo()))
}

// hookMail runs the mail hook for one MAIL FROM.
func (s *session) hookMail(from string, opts *smtp.MailOptions) *smtp.SMTPError {
	if !s.b.Plugins.Has(host.HookMail) {
		return nil
	}
	info := host.MailInfo{Conn: s.connInfo(), Sender: from, Params: host.MailParams(opts)}
	return s.fold("mail", &s.outcome, s.b.Plugins.Mail(context.Background(), info))
}

// hookRcpt runs the rcpt hook for one RCPT TO.
func (s *session) hookRcpt(to string) *smtp.SMTPError {
	if !s.b.Plugins.Has(host.HookRcpt) {
		return nil
	}
	info := host.RcptInfo{Conn: s.connInfo(), Sender: s.from, Recipient: to}
	return s.fold("rcpt", &s.outcome, s.b.Plugins.Rcpt(context.Background(), info))
}

func (s *session) fold(hook string, o *host.Outcome, res host.Result) *smtp.SMTPError {
	reply := o.Fold(res)
	if reply != nil {
		s.txlog.Info().Str("hook", hook).Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("refused by plugin")
	}
	return reply
}

// filter runs the data hook on the message about to go to the MTA and
// returns it with the plugins' edits. A non-nil reply ends the
// transaction: a refusal, or a 250 for a discarded message.
func (s *session) filter(msg io.Reader) (*host.Filtered, error) {
	if by := s.outcome.DiscardedBy; by != "" {
		s.txlog.Info().Str("plugin", by).Msg("message discarded by plugin")
		return nil, host.Discarded(by)
	}
	tx := host.TxInfo{Conn: s.connInfo(), Sender: s.from, Recipients: s.rcpts}
	f, err := s.b.Plugins.FilterMessage(context.Background(), tx, msg, s.b.SpillDir)
	if err != nil {
		return nil, err
	}
	res := f.Result
	switch {
	case res.Refused():
		f.Close()
		s.txlog.Info().Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("message refused by plugin")
		return nil, res.Reply.SMTPError()
	case res.Action == host.Discard:
		f.Close()
		s.txlog.Info().Str("plugin", res.By).Msg("message discarded by plugin")
		return nil, host.Discarded(res.By)
	}
	if res.Folder != "" {
		s.outcome.Folder = res.Folder
	}
	return f, nil
}

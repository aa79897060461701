package msa

import (
	"context"

	"github.com/emersion/go-smtp"

	"postline/plugins/host"
)

// errFilterNeedsBody answers when a data plugin of the msa wants the
// message body: the msa streams the body to the MTA after the header, so
// it cannot show the body to a plugin first.
// TODO(issue 5): spool the body for such plugins.
var errFilterNeedsBody = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error: a body filter is configured for the msa, which it does not support yet"}

// filterHeader runs the data hook on the header block about to go to the
// MTA and returns it with the plugins' edits. A non-nil reply ends the
// transaction: a refusal, or a 250 for a discarded message.
func (s *session) filterHeader(header []byte) ([]byte, *smtp.SMTPError) {
	chain := s.b.Plugins
	if !chain.Has(host.HookData) {
		return header, nil
	}
	if chain.WantsBody() {
		s.txlog.Error().Msg("a data plugin of the msa wants the body: not supported yet")
		return nil, errFilterNeedsBody
	}
	ci := s.client.Info()
	ci.AuthUser, ci.QueueID = s.user, s.queueID
	tx := host.TxInfo{Conn: ci, Sender: s.from, Recipients: s.rcpts}
	res := chain.Data(context.Background(), tx, header, nil)
	switch res.Action {
	case host.Reject, host.Tempfail:
		s.txlog.Info().Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("message refused by plugin")
		return nil, res.Reply.SMTPError()
	case host.Discard:
		s.txlog.Info().Str("plugin", res.By).Msg("message discarded by plugin")
		return nil, &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: discarded by filter " + res.By}
	}
	edited, err := host.ApplyEdits(header, res.Edits)
	if err != nil {
		// A header that cannot be parsed goes on as it came.
		s.txlog.Warn().Err(err).Msg("header edits not applied")
		return header, nil
	}
	return edited, nil
}

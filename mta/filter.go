package mta

import (
	"errors"
	"io"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/plugins/host"
	"postline/queue"
)

// filter runs the data hook on the message (for mail from the internet
// only, see NewSession) and returns the message to store, with the
// plugins' header edits, and sets env.Folder from their choice. A non-nil
// reply ends the transaction without queueing: a refusal, or a 250 for a
// discarded message.
func (s *session) filter(r io.Reader, env *queue.Envelope, log zerolog.Logger) (*host.Filtered, *smtp.SMTPError) {
	ci := s.client.Info()
	ci.QueueID = env.ID
	tx := host.TxInfo{Conn: ci, Sender: s.from, Recipients: s.rcpts}
	f, err := s.hooks.Filter(tx, r, s.b.SpillDir, log)
	if err != nil {
		var reply *smtp.SMTPError
		if !errors.As(err, &reply) {
			reply = storeError(err)
			log.Warn().Err(err).Int("code", reply.Code).Msg("message not filtered")
		}
		return nil, reply
	}
	env.Folder = s.hooks.Tx.Folder
	if changes := f.Result.Envelope; len(changes) > 0 {
		s.changeEnvelope(env, changes, log)
	}
	return f, nil
}

// changeEnvelope applies the plugins' envelope changes (a milter's
// smfi_chgfrom, smfi_addrcpt, smfi_delrcpt) and routes the recipients
// again. A plugin is the admin's: an added recipient in another domain
// is relayed, as Postfix relays a milter's.
func (s *session) changeEnvelope(env *queue.Envelope, changes []host.EnvelopeChange, log zerolog.Logger) {
	from, rcpts := host.ApplyEnvelope(changes, s.from, s.rcpts)
	log.Info().Str("from", from).Strs("rcpt", rcpts).Msg("envelope changed by plugin")
	s.from, s.rcpts, env.From = from, rcpts, from
	env.Recipients = nil
	s.recipients(env)
	for _, r := range env.Recipients {
		if !s.isLocal(r.Address) {
			env.Relay = true
		}
	}
}

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
	return f, nil
}

package msa

import (
	"errors"
	"time"

	"github.com/emersion/go-smtp"

	"postline/queue"
)

// confirmTimeout bounds how long a client waits for the answer to its
// end of DATA while the MTA restarts after a crash.
const confirmTimeout = 30 * time.Second

// confirmQueued settles a connection to the MTA that broke after the end
// of DATA (err is not an SMTP reply): the MTA may have made the message
// durable and died before its 250. Answering 451 then would make the
// client send it again, and the message would be delivered twice, so the
// MSA asks the MTA, on new connections while it restarts, whether the
// queue ID it allocated was queued.
func (s *session) confirmQueued(err error) bool {
	var serr *smtp.SMTPError
	if errors.As(err, &serr) {
		return false // a reply: the MTA refused the message
	}
	deadline := time.Now().Add(confirmTimeout)
	for {
		queued, qerr := s.askQueued()
		if qerr == nil {
			s.txlog.Warn().Err(err).Bool("queued", queued).Msg("mta connection broke after the end of data; asked the mta")
			return queued
		}
		if time.Now().After(deadline) {
			s.txlog.Error().Err(qerr).Msg("cannot tell whether the mta queued the message")
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// askQueued asks the MTA whether it queued s.queueID (queue.QueuedParam).
func (s *session) askQueued() (bool, error) {
	c, err := s.b.DialMTA()
	if err != nil {
		return false, err
	}
	defer c.Close()
	err = c.Mail("", &smtp.MailOptions{Params: map[string]string{queue.QueuedParam: s.queueID}})
	var serr *smtp.SMTPError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &serr) && serr.Code == 550:
		return false, nil
	}
	return false, err
}

package mda

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/queue"
	"postline/reply"
)

// SendFunc hands the MTA one message: from ("" for <>) to rcpts; forward
// marks a redirect, which the MTA sends as an alias's forward (SRS).
type SendFunc func(from string, rcpts []string, forward bool, msg io.Reader) error

// DialMTA returns the SendFunc that speaks SMTP to the MTA's socket for
// the MDA's mail (config.MTALocalSocket), one connection per message.
func DialMTA(socket, helo string) SendFunc {
	return func(from string, rcpts []string, forward bool, msg io.Reader) error {
		conn, err := net.DialTimeout("unix", socket, 10*time.Second)
		if err != nil {
			return fmt.Errorf("mda: the MTA is not reachable on %s: %w", socket, err)
		}
		c := smtp.NewClient(conn)
		defer c.Close()
		if err := c.Hello(helo); err != nil {
			return fmt.Errorf("mda: to the MTA: %w", err)
		}
		opts := &smtp.MailOptions{}
		if forward {
			opts.Params = map[string]string{queue.ForwardParam: "yes"}
		}
		if err := c.Mail(from, opts); err != nil {
			return fmt.Errorf("mda: to the MTA: %w", err)
		}
		for _, r := range rcpts {
			if err := c.Rcpt(r, nil); err != nil {
				return fmt.Errorf("mda: to the MTA: %w", err)
			}
		}
		w, err := c.Data()
		if err == nil {
			if _, err = io.Copy(w, msg); err == nil {
				err = w.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("mda: to the MTA: %w", err)
		}
		return c.Quit()
	}
}

// maxRedirectHops bounds the Delivered-To fields of a message redirected
// on: past it the message is in a forwarding loop however its addresses
// differ.
const maxRedirectHops = 20

// sendOut hands the MTA what the deliver hook asked to send for rc: the
// copy to the redirect addresses, with rc in a new Delivered-To field
// (RFC 9228), which is the loop control RFC 5228 §4.2 asks for; then each
// new message. Each item is recorded in the ledger once the MTA took it
// (flushed), so a delivery repeated after a crash or a 4xx sends nothing
// twice; only a crash between the MTA's answer and the record sends again.
// A redirect the MTA refuses for good, or a loop, is dropped and kept is
// true: the caller then keeps the copy in INBOX rather than lose it, as
// Dovecot does. A message the MTA refuses for good (a vacation reply to
// an unknown address) is dropped: it must not cost the message it answers
// its delivery. A 4xx, or an MTA out of reach, defers the whole delivery.
func (s *session) sendOut(p plan, rc recipient, log zerolog.Logger) (kept bool, serr *smtp.SMTPError) {
	if len(p.redirects)+len(p.send) == 0 {
		return false, nil
	}
	if s.b.Send == nil {
		log.Error().Msg("a plugin asked to send mail, but the MDA has no way to the MTA")
		return false, reply.DeliveryError
	}
	if len(p.redirects) > 0 && !s.sentBefore(rc, 0) {
		var err error
		if kept, err = s.redirect(p, rc, log); err != nil {
			return false, deliveryError(err)
		}
		if !kept {
			s.recordSent(rc, 0, log)
		}
	}
	for i, o := range p.send {
		if s.sentBefore(rc, i+1) {
			continue
		}
		err := s.b.Send(o.Sender, o.Recipients, false, bytes.NewReader(o.Message))
		if permanent(err) {
			log.Warn().Err(err).Strs("to", o.Recipients).Msg("plugin's message refused by the MTA, dropped")
		} else if err != nil {
			log.Warn().Err(err).Msg("plugin's message not handed to the MTA")
			return false, reply.DeliveryError
		} else {
			log.Info().Strs("to", o.Recipients).Msg("plugin's message sent")
		}
		s.recordSent(rc, i+1, log)
	}
	return kept, nil
}

// permanent reports whether err is the MTA's 5xx.
func permanent(err error) bool {
	var serr *smtp.SMTPError
	return errors.As(err, &serr) && serr.Code/100 == 5
}

// redirect sends the copy on, unless it has been through rc before. kept
// is true when it cannot go: a loop, a streamed copy, or the MTA's 5xx;
// err is a failure worth a retry.
func (s *session) redirect(p plan, rc recipient, log zerolog.Logger) (kept bool, err error) {
	if p.again == nil {
		log.Warn().Strs("to", p.redirects).Msg("redirect of a streamed copy not sent, kept (the plugin should say deliver_body)")
		return true, nil
	}
	hops := deliveredTo(p.head)
	if len(hops) >= maxRedirectHops || slices.ContainsFunc(hops, func(h string) bool { return strings.EqualFold(h, rc.address) }) {
		log.Warn().Strs("to", p.redirects).Int("hops", len(hops)).Msg("mail forwarding loop: redirect dropped, kept")
		return true, nil
	}
	msg := io.MultiReader(strings.NewReader("Delivered-To: "+rc.address+"\n"), p.again())
	switch err := s.b.Send(s.from, p.redirects, true, msg); {
	case permanent(err):
		log.Warn().Err(err).Strs("to", p.redirects).Msg("redirect refused by the MTA: dropped, kept")
		return true, nil
	case err != nil:
		log.Warn().Err(err).Strs("to", p.redirects).Msg("redirect not handed to the MTA")
		return false, err
	}
	log.Info().Strs("to", p.redirects).Msg("redirected")
	return false, nil
}

// deliveredTo returns the Delivered-To fields' addresses of a header block.
func deliveredTo(head []byte) []string {
	var out []string
	for _, line := range bytes.Split(head, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Delivered-To") {
			out = append(out, strings.Trim(strings.TrimSpace(string(value)), "<>"))
		}
	}
	return out
}

// sentKey is the ledger's record of rc's outgoing item i (0: the redirect,
// then each message) being handed over.
func sentKey(rc recipient, i int) string { return rc.address + "\x00sent" + strconv.Itoa(i) }

func (s *session) sentBefore(rc recipient, i int) bool {
	if s.b.Ledger == nil || s.queueID == "" {
		return false
	}
	c, ok := s.b.Ledger.Find(s.queueID, sentKey(rc, i))
	return ok && c.Done
}

// recordSent records item i as sent, durably: the redirect of a copy that
// is then discarded has no Maildir write whose flush would carry it.
func (s *session) recordSent(rc recipient, i int, log zerolog.Logger) {
	if s.b.Ledger == nil || s.queueID == "" {
		return
	}
	now := time.Now()
	err := s.b.Ledger.Begin(s.queueID, sentKey(rc, i), "", "", now)
	if err == nil {
		err = s.b.Ledger.Done(s.queueID, sentKey(rc, i), now)
	}
	if err == nil {
		err = s.b.Ledger.Flush()
	}
	if err != nil {
		log.Warn().Err(err).Msg("delivery ledger: mail sent not recorded")
	}
}

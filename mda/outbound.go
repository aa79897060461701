package mda

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
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
// copy to each redirect address, with rc in a new Delivered-To field
// (RFC 9228), which is the loop control RFC 5228 §4.2 asks for; and each
// new message. It runs before rc's first copy is written and is recorded
// in the ledger, so a delivery repeated after a crash sends nothing twice
// (a crash between the MTA's reply and the record sends again).
func (s *session) sendOut(p plan, rc recipient, log zerolog.Logger) *smtp.SMTPError {
	if len(p.redirects)+len(p.send) == 0 || s.sentBefore(rc) {
		return nil
	}
	if s.b.Send == nil {
		log.Error().Msg("a plugin asked to send mail, but the MDA has no way to the MTA")
		return reply.DeliveryError
	}
	if len(p.redirects) > 0 {
		if serr := s.redirect(p, rc, log); serr != nil {
			return serr
		}
	}
	for _, o := range p.send {
		err := s.b.Send(o.Sender, o.Recipients, false, bytes.NewReader(o.Message))
		var serr *smtp.SMTPError
		switch {
		case errors.As(err, &serr) && serr.Code/100 == 5:
			// An auto-reply the MTA refuses is dropped: it must not
			// cost the message it answers its delivery.
			log.Warn().Err(err).Strs("to", o.Recipients).Msg("plugin's message refused by the MTA, dropped")
		case err != nil:
			log.Warn().Err(err).Msg("plugin's message not handed to the MTA")
			return reply.DeliveryError
		default:
			log.Info().Strs("to", o.Recipients).Msg("plugin's message sent")
		}
	}
	s.recordSent(rc, log)
	return nil
}

// redirect sends the copy on, unless it has been through rc before.
func (s *session) redirect(p plan, rc recipient, log zerolog.Logger) *smtp.SMTPError {
	if p.again == nil {
		log.Warn().Strs("to", p.redirects).Msg("redirect of a streamed copy not sent (the plugin should say deliver_body)")
		return nil
	}
	hops := deliveredTo(p.head)
	for _, h := range hops {
		if strings.EqualFold(h, rc.address) {
			log.Warn().Strs("to", p.redirects).Msg("mail forwarding loop")
			return reply.ForwardingLoop
		}
	}
	if len(hops) >= maxRedirectHops {
		log.Warn().Int("hops", len(hops)).Msg("mail forwarding loop")
		return reply.ForwardingLoop
	}
	msg := io.MultiReader(strings.NewReader("Delivered-To: "+rc.address+"\n"), p.again())
	if err := s.b.Send(s.from, p.redirects, true, msg); err != nil {
		log.Warn().Err(err).Strs("to", p.redirects).Msg("redirect not handed to the MTA")
		return deliveryError(err)
	}
	log.Info().Strs("to", p.redirects).Msg("redirected")
	return nil
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

// sentKey is the ledger's record of rc's outgoing mail being handed over.
func sentKey(rc recipient) string { return rc.address + "\x00sent" }

func (s *session) sentBefore(rc recipient) bool {
	if s.b.Ledger == nil || s.queueID == "" {
		return false
	}
	c, ok := s.b.Ledger.Find(s.queueID, sentKey(rc))
	return ok && c.Done
}

func (s *session) recordSent(rc recipient, log zerolog.Logger) {
	if s.b.Ledger == nil || s.queueID == "" {
		return
	}
	now := time.Now()
	err := s.b.Ledger.Begin(s.queueID, sentKey(rc), "", "", now)
	if err == nil {
		err = s.b.Ledger.Done(s.queueID, sentKey(rc), now)
	}
	if err != nil {
		log.Warn().Err(err).Msg("delivery ledger: mail sent not recorded")
	}
}

// Package mda is postline's delivery agent: an LMTP server (RFC 2033) on
// a unix socket that writes each recipient's copy of a message into that
// recipient's Maildir, durably, before answering that recipient's 250.
//
// mda never relays and never queues; a recipient it cannot serve gets a
// reply and the MTA decides what happens next.
package mda

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/durable"
	"postline/guard"
	"postline/plugins/host"
	"postline/queue"
	"postline/reply"
)

// Backend is the go-smtp backend of the LMTP server.
type Backend struct {
	Mailboxes *Mailboxes
	Maildir   *Maildir
	// SpoolDir holds each incoming message once, while it is copied to
	// its recipients.
	SpoolDir string
	// Policy is applied again here, so that the LMTP hop holds to the
	// same line-end rules as the SMTP servers in front of it.
	Policy guard.DataPolicy
	// Plugins run the deliver hook for each recipient's copy; nil (no
	// plugins) writes the message as it came.
	Plugins *host.Chain
	// Ledger records the copies written, so a message delivered again
	// (same queue ID and recipient) gets no second copy; nil: no record.
	Ledger *Ledger
	// FlushFailed, when not nil, is told of a delivery that a failed
	// flush ended (durable.ErrFlushFailed): the MDA must restart and
	// recover from what is on disk, as no later flush proves anything.
	FlushFailed func(error)
	// Send hands the MTA the mail deliver plugins ask for (Sieve's
	// redirects and vacation replies); nil: none can be sent.
	Send SendFunc
	// Quota bounds each mailbox's size; nil: no limit.
	Quota   *Quota
	Metrics *Metrics // nil: none
	Log     zerolog.Logger
}

// NewServer returns the LMTP server for b, speaking the conventions of
// package lmtp: ENVID is the queue ID, queue.FolderParam a folder.
func NewServer(b *Backend, hostname string) *smtp.Server {
	srv := smtp.NewServer(b)
	srv.LMTP = true
	srv.Replies = reply.Server()
	srv.Domain = hostname
	srv.EnableDSN = true // carries the queue ID as ENVID
	srv.EnableSMTPUTF8 = true
	srv.MailParams = []string{queue.FolderParam}
	// Only the MTA's pool of sessions connects: a message's data is
	// read 64 KiB per call (bufio's default would be 4).
	srv.ReadBufferSize = 64 << 10
	return srv
}

// NewSession implements smtp.Backend.
func (b *Backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, conn: c.Conn()}, nil
}

type recipient struct {
	address string
	dir     string
}

type session struct {
	b       *Backend
	conn    net.Conn
	from    string
	queueID string
	folder  string // a filter's choice for the message (queue.FolderParam)
	rcpts   []recipient
}

func (s *session) Reset() {
	s.from, s.queueID, s.folder, s.rcpts = "", "", "", nil
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.from = from
	if opts != nil {
		s.queueID = opts.EnvelopeID // the MTA's queue ID, see package lmtp
		s.folder = opts.Params[queue.FolderParam]
	}
	if s.folder != "" && !host.ValidFolder(s.folder) {
		return reply.BadParam(queue.FolderParam)
	}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	dir, serr := s.b.Mailboxes.Resolve(to)
	if serr != nil {
		s.b.Log.Info().Str("queue_id", s.queueID).Str("rcpt", to).Int("code", serr.Code).Msg("recipient refused")
		return serr
	}
	s.rcpts = append(s.rcpts, recipient{to, dir})
	return nil
}

// Data is required by smtp.Session; over LMTP, LMTPData is used instead.
func (s *session) Data(r io.Reader) error {
	return errors.New("mda: DATA without LMTP")
}

// LMTPData stores the message once, then delivers a copy per recipient
// and reports each recipient's result as soon as it is known.
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	data := guard.NewDataReader(r, s.conn, s.b.Policy)
	if s.direct() {
		rc := s.rcpts[0]
		msg := newLFReader(data)
		status.SetStatus(rc.address, s.deliverCopy(msg, 0, rc))
		msg.Close() // go-smtp then drains what a refused copy left unread
		return nil
	}
	f, err := s.spool(data)
	if err != nil {
		s.b.Log.Error().Err(err).Str("queue_id", s.queueID).Msg("cannot spool message")
		return deliveryError(err)
	}
	defer f.Close()
	done := map[string]error{}
	for _, rc := range s.rcpts {
		err, seen := done[rc.address]
		if !seen { // a repeated RCPT gets the first copy's result, not a second copy
			err = s.deliverOne(f, rc)
			done[rc.address] = err
		}
		status.SetStatus(rc.address, err)
	}
	return nil
}

// direct reports whether the message can go straight into its one
// Maildir as it arrives, without the spooled copy that serves several
// recipients: one recipient, no quota, which needs the size first, and
// no deliver plugin reading the body, which needs to read it first.
func (s *session) direct() bool {
	return len(s.rcpts) == 1 && (s.b.Quota == nil || s.b.Quota.Limit <= 0) && !s.b.Plugins.WantsDeliverBody()
}

// deliverOne delivers the spooled message to one of its recipients.
func (s *session) deliverOne(f *os.File, rc recipient) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return deliveryError(err)
	}
	st, err := f.Stat()
	if err != nil {
		return deliveryError(err)
	}
	return s.deliverCopy(f, st.Size(), rc)
}

// deliverCopy writes rc's copy of msg (LF line ends, size bytes or 0
// when unknown) and returns rc's LMTP reply.
func (s *session) deliverCopy(msg io.Reader, size int64, rc recipient) error {
	reply := s.writeCopy(msg, size, rc)
	s.b.Metrics.copied(reply)
	return reply
}

func (s *session) writeCopy(msg io.Reader, size int64, rc recipient) error {
	log := s.b.Log.With().Str("queue_id", s.queueID).Str("rcpt", rc.address).Logger()
	if done, err := s.delivered(rc.address, log); done || err != nil {
		return err
	}
	p, refused := s.copyFor(msg, size, rc, log)
	if refused != nil {
		return refused
	}
	if p.discardBy != "" { // no copy, only mail to send
		kept, serr := s.sendOut(p, rc, log)
		if serr != nil {
			return serr
		}
		if !kept {
			return reply.Discarded(p.discardBy)
		}
		p.targets, p.redirects, p.send = []target{{dir: rc.dir}}, nil, nil // the redirect failed: keep
	}
	key, err := s.writeTargets(p, size, rc, log)
	if err != nil {
		if s.b.FlushFailed != nil && errors.Is(err, durable.ErrFlushFailed) {
			s.b.FlushFailed(err)
		}
		serr := deliveryError(err)
		log.Error().Err(err).Int("code", serr.Code).Msg("delivery failed")
		return serr
	}
	log.Info().Str("from", s.from).Str("file", key).Msg("delivered")
	return reply.Delivered(key)
}

// writeTargets writes the plan's copies and returns the first one's key.
// They are written last first, the first one under rc's own ledger key:
// once it is done, every other copy is too, so a delivery repeated after
// a crash writes only the copies that are missing. The quota is reserved
// for all of them at once: a copy must not fit where the next does not.
func (s *session) writeTargets(p plan, size int64, rc recipient, log zerolog.Logger) (key string, err error) {
	reserved := size * int64(len(p.targets))
	if err := s.b.Quota.Reserve(rc.dir, reserved, time.Now()); err != nil {
		return "", err
	}
	written := 0
	defer func() { s.b.Quota.Release(rc.dir, reserved-size*int64(written)) }()
	for i := len(p.targets) - 1; i >= 0; i-- {
		msg, ledgerKey := p.msg, rc.address
		if i > 0 {
			ledgerKey = rc.address + "\x00" + strconv.Itoa(i)
			if done, err := s.copyDone(ledgerKey, log); done || err != nil {
				if err != nil {
					return "", err
				}
				continue // written before a crash
			}
			msg = p.again()
		} else if _, serr := s.sendOut(p, rc, log); serr != nil {
			return "", serr // kept or not, this copy is written
		}
		if key, err = s.write(p.targets[i], ledgerKey, msg); err != nil {
			return "", err
		}
		written++
	}
	return key, nil
}

// copyDone is delivered for a further copy: done, or a failure to tell.
func (s *session) copyDone(ledgerKey string, log zerolog.Logger) (bool, error) {
	done, err := s.delivered(ledgerKey, log)
	var serr *smtp.SMTPError
	if done && errors.As(err, &serr) && serr.Code/100 == 2 {
		return true, nil // its 250
	}
	return false, err
}

// write puts the copy into the Maildir folder t.dir, between the ledger's
// begin and done records when the message has a queue ID.
func (s *session) write(t target, ledgerKey string, msg io.Reader) (string, error) {
	md, ledger := s.b.Maildir, s.b.Ledger
	key := md.NewKey()
	if ledger == nil || s.queueID == "" {
		return key, md.DeliverFlagged(t.dir, key, t.flags, msg, nil)
	}
	if err := ledger.Begin(s.queueID, ledgerKey, t.dir, key, time.Now()); err != nil {
		return "", err
	}
	if err := md.DeliverFlagged(t.dir, key, t.flags, msg, ledger.Flush); err != nil {
		return "", err
	}
	if err := ledger.Done(s.queueID, ledgerKey, time.Now()); err != nil {
		s.b.Log.Warn().Err(err).Str("queue_id", s.queueID).Msg("delivery ledger: done not recorded")
	}
	return key, nil
}

// delivered reports whether the copy under ledgerKey (a recipient's
// address, or one of its further copies) was written before: a delivery
// repeated after a crash. It then returns the 250 to answer with.
func (s *session) delivered(ledgerKey string, log zerolog.Logger) (bool, error) {
	if s.b.Ledger == nil || s.queueID == "" {
		return false, nil
	}
	c, ok := s.b.Ledger.Find(s.queueID, ledgerKey)
	if !ok {
		return false, nil
	}
	if !c.Done {
		found, err := s.b.Maildir.Has(c.Dir, c.Name)
		if err != nil {
			log.Error().Err(err).Msg("cannot tell whether the message was delivered before")
			return true, deliveryError(err)
		}
		if !found { // the crash came before the file was in new/
			return false, nil
		}
		s.b.Ledger.Done(s.queueID, ledgerKey, time.Now())
	}
	log.Info().Str("file", c.Name).Msg("delivered before: no second copy")
	return true, reply.DeliveredBefore(c.Name)
}

// spool copies the message to an unlinked temporary file, turning CRLF
// into LF once for all recipients.
func (s *session) spool(r io.Reader) (*os.File, error) {
	f, err := os.CreateTemp(s.b.SpoolDir, "msg-")
	if err != nil {
		return nil, fmt.Errorf("mda: spool: %w", err)
	}
	os.Remove(f.Name())
	lw := &lfWriter{w: f}
	if _, err := io.Copy(lw, r); err != nil {
		f.Close()
		return nil, fmt.Errorf("mda: spool: %w", err)
	}
	if err := lw.Flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("mda: spool: %w", err)
	}
	return f, nil
}

// deliveryError maps a local failure to its LMTP reply (RFC 3463).
func deliveryError(err error) *smtp.SMTPError {
	var serr *smtp.SMTPError
	switch {
	case errors.As(err, &serr):
		return serr
	case errors.Is(err, syscall.ENOSPC):
		return reply.NoStorage
	case errors.Is(err, syscall.EDQUOT):
		return reply.MailboxFull
	}
	return reply.DeliveryError
}

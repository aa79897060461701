// Package lmtp is the MTA's side of the internal LMTP hop (RFC 2033): it
// hands one queued message to the MDA over a unix socket and returns one
// result per recipient.
//
// Convention between the MTA and the MDA: the MTA's queue ID travels as
// the ENVID parameter of MAIL FROM (RFC 3461), so the MDA can log it and
// key its delivery records on it. On this hop the MTA is the envelope's
// originator, and DSNs are the MTA's job, so no other meaning is lost.
// A filter's choice of folder travels as queue.FolderParam.
//
// lmtp knows nothing of the queue's files or of Maildirs.
package lmtp

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-smtp"

	"postline/queue"
)

// Message is one delivery request.
type Message struct {
	QueueID    string
	From       string
	Recipients []string
	Body8Bit   bool
	SMTPUTF8   bool
	// Folder is the mailbox folder a filter chose ("" for the inbox),
	// sent as the MAIL FROM parameter queue.FolderParam.
	Folder string
	Data   io.Reader
}

// Result maps each recipient to its outcome: nil when the MDA accepted
// it, otherwise the MDA's *smtp.SMTPError.
type Result map[string]*smtp.SMTPError

// Deliver sends m to the LMTP server at socket, greeting with lhloName,
// on a session of its own. An error means the transaction as a whole
// failed (no server, broken connection) and no recipient should be
// considered delivered.
func Deliver(ctx context.Context, socket, lhloName string, m Message) (Result, error) {
	p := &Pool{Socket: socket, LHLO: lhloName} // keeps nothing
	return p.Deliver(ctx, m)
}

// mailError is a transaction that failed before its message was sent
// (MAIL FROM refused, or the session broken): the server has nothing of
// it, so it may be tried again on another session.
type mailError struct{ err error }

func (e *mailError) Error() string { return "lmtp: MAIL, RCPT, DATA: " + e.err.Error() }
func (e *mailError) Unwrap() error { return e.err }

func transact(c *smtp.Client, m Message) (Result, error) {
	opts := &smtp.MailOptions{EnvelopeID: m.QueueID, UTF8: m.SMTPUTF8}
	if m.Folder != "" {
		opts.Params = map[string]string{queue.FolderParam: m.Folder}
	}
	if m.Body8Bit {
		opts.Body = smtp.Body8BitMIME
	}
	// MAIL, RCPT and DATA leave in one write (PIPELINING, RFC 2920).
	// Until the message itself is sent the server has delivered nothing,
	// so any failure may be tried again on another session.
	rcptErrs, w, err := c.Envelope(m.From, opts, m.Recipients)
	if err != nil {
		return nil, &mailError{err}
	}
	var serr *smtp.SMTPError
	res := Result{}
	var accepted []string
	for i, rcpt := range m.Recipients {
		if errors.As(rcptErrs[i], &serr) {
			res[rcpt] = serr
		} else {
			accepted = append(accepted, rcpt)
		}
	}
	if w == nil { // no recipient accepted
		return res, nil
	}
	if _, err := io.Copy(w, m.Data); err != nil {
		return nil, fmt.Errorf("lmtp: send data: %w", err)
	}
	ok, err := w.CloseWithLMTPResponse()
	var perRcpt smtp.LMTPDataError
	errors.As(err, &perRcpt)
	for _, rcpt := range accepted {
		switch {
		case ok[rcpt] != nil:
			res[rcpt] = nil
		case perRcpt[rcpt] != nil:
			res[rcpt] = perRcpt[rcpt]
		default: // the connection broke before this recipient's reply
			res[rcpt] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
				Message: fmt.Sprintf("no reply from the MDA: %v", err)}
		}
	}
	return res, nil
}

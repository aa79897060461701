// Package reply holds the SMTP and LMTP replies that postline's daemons
// write to their clients, in one place: worded as Postfix words them,
// each with its RFC 3463 enhanced status code (the registry is RFC 5248).
// Mail admins grep for these texts, so they stay plain and stable.
//
// It never decides which reply applies; the daemons do. Statuses that
// only describe a delivery attempt to a remote host (and end up in a
// bounce) stay with the code that makes the attempt.
package reply

import (
	"fmt"

	"github.com/emersion/go-smtp"
)

// New is a reply with code, enhanced code class.subject.detail and text.
func New(code, class, subject, detail int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: text}
}

func ok(code, class, subject, detail int, text string) smtp.SMTPError {
	return *New(code, class, subject, detail, text)
}

// Server holds the replies go-smtp writes itself, for every postline
// listener (MSA, MTA, the MDA's LMTP): Postfix's texts, RFC 5248's codes
// (2.1.0 for MAIL, 2.1.5 for RCPT, 2.7.0 for AUTH per RFC 4954 §6).
func Server() *smtp.Replies {
	return &smtp.Replies{
		Mail:     ok(250, 2, 1, 0, "Ok"),
		Rcpt:     ok(250, 2, 1, 5, "Ok"),
		Data:     ok(354, 0, 0, 0, "End data with <CR><LF>.<CR><LF>"),
		Chunk:    ok(250, 2, 0, 0, "Ok"),
		Reset:    ok(250, 2, 0, 0, "Ok"),
		Noop:     ok(250, 2, 0, 0, "Ok"),
		Vrfy:     ok(252, 2, 0, 0, "Send some mail, I'll try my best"),
		Quit:     ok(221, 2, 0, 0, "Bye"),
		Auth:     ok(235, 2, 7, 0, "Authentication successful"),
		StartTLS: ok(220, 2, 0, 0, "Ready to start TLS"),
	}
}

// Replies after a message.
func Queued(id string) *smtp.SMTPError     { return New(250, 2, 0, 0, "Ok: queued as "+id) }
func Delivered(key string) *smtp.SMTPError { return New(250, 2, 0, 0, "Ok: delivered as "+key) }

// DeliveredBefore is the MDA's reply to a copy its ledger shows was
// written before (the MTA's retry after a lost reply).
func DeliveredBefore(key string) *smtp.SMTPError {
	return New(250, 2, 0, 0, "Ok: delivered before as "+key)
}

// Discarded is the reply to a message a filter discarded: success, as
// for Postfix's DISCARD, so the sender does not retry.
func Discarded(by string) *smtp.SMTPError { return New(250, 2, 0, 0, "Ok: discarded by filter "+by) }

// Sender and recipient refusals.
var (
	RelayDenied      = New(554, 5, 7, 1, "Relay access denied")
	MDAMailOnly      = New(550, 5, 7, 1, "Sender address rejected: only replies from <> and redirects here")
	BadRecipient     = New(501, 5, 1, 3, "Bad recipient address syntax")
	BadSender        = New(501, 5, 1, 7, "Bad sender address syntax")
	UnknownUser      = New(550, 5, 1, 1, "Recipient address rejected: User unknown in local recipient table")
	NotLocal         = New(550, 5, 1, 2, "Recipient domain is not local here")
	BadMailbox       = New(553, 5, 1, 3, "Recipient address not usable as a mailbox name")
	SenderNotOwned   = New(553, 5, 7, 1, "Sender address rejected: not owned by the authenticated user")
	HeaderFromNotOwn = New(553, 5, 7, 1, "From header address not owned by the authenticated user")
	// RFC 6531 §3.4: a non-ASCII address needs SMTPUTF8 on MAIL FROM.
	NeedSMTPUTF8 = New(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8")
	// RFC 8689 §4.1: REQUIRETLS only within a TLS session.
	RequireTLSNeedsTLS = New(530, 5, 7, 10, "REQUIRETLS needs a TLS session; issue STARTTLS first")
	NotQueued          = New(550, 5, 0, 0, "not queued")
	// RFC 5321 §4.5.3.1.8 (as Postfix's smtpd_recipient_limit).
	TooManyRecipients = New(452, 4, 5, 3, "Too many recipients")
	// RFC 5321 §3.3: a transaction needs at least one recipient.
	NoRecipients = New(554, 5, 5, 1, "No valid recipients")
)

// BadParam is the reply to a MAIL or RCPT parameter whose value does not
// parse (RFC 3463 5.5.4: invalid command arguments).
func BadParam(name string) *smtp.SMTPError {
	return New(501, 5, 5, 4, fmt.Sprintf("Bad %s parameter value", name))
}

// Authentication (RFC 4954 §6).
var (
	AuthFailed  = New(535, 5, 7, 8, "Authentication credentials invalid")
	AuthLocked  = New(454, 4, 7, 0, "Too many failed authentications, try again later")
	NeedTLS     = New(530, 5, 7, 0, "Must issue a STARTTLS command first")
	NeedAuth    = New(530, 5, 7, 0, "Authentication required")
	UnknownMech = New(504, 5, 5, 4, "Unrecognized authentication mechanism")
	NoAuth      = New(502, 5, 5, 1, "AUTH is not offered here; submit mail on the submission port")
)

// The session and the message.
var (
	TooManyErrors = New(421, 4, 7, 0, "Too many errors, closing connection")
	BareNewline   = New(550, 5, 5, 2, "Message contains a bare CR or LF; lines must end with CRLF")
	Loop          = New(554, 5, 4, 6, "Too many hops (Received: fields): mail loop?")
	IdleInData    = New(421, 4, 4, 2, "Idle timeout inside message data, closing connection")
)

// TooLarge is the reply to a message (or its header) over limit octets.
func TooLarge(what string, limit int) *smtp.SMTPError {
	return New(552, 5, 3, 4, fmt.Sprintf("Message %s too large (limit %d octets)", what, limit))
}

// Local trouble: temporary, so the client retries.
var (
	NoStorage      = New(452, 4, 3, 1, "Insufficient system storage")
	MailboxFull    = New(452, 4, 2, 2, "Mailbox full")
	QueueError     = New(451, 4, 3, 0, "Local error in processing, try again later")
	DeliveryError  = New(451, 4, 3, 0, "Local delivery error, try again later")
	MTAUnavailable = New(451, 4, 3, 0, "Mail transport unavailable, try again later")
)

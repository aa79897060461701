package dsn

import (
	"slices"
	"strings"

	"github.com/emersion/go-smtp"
)

// Limits of RFC 3461: ENVID at most 100 characters (§4.4), ORCPT at most
// 500 (§4.2; counted here decoded, "type;address").
const (
	MaxEnvID = 100
	MaxORcpt = 500
)

// Return values of MAIL's RET parameter (RFC 3461 §4.3).
const (
	ReturnFull    = "FULL"
	ReturnHeaders = "HDRS"
)

// Notify is a recipient's NOTIFY request (RFC 3461 §4.1) as the queue
// keeps it: "" (none given), "NEVER", or a comma-separated list of
// SUCCESS, FAILURE and DELAY.
type Notify string

// NotifyOf turns go-smtp's parsed NOTIFY values (already checked to be
// NEVER alone or a set of the others) into a Notify.
func NotifyOf(values []smtp.DSNNotify) Notify {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return Notify(strings.Join(s, ","))
}

// Values is n as go-smtp's client sends it; nil for no NOTIFY.
func (n Notify) Values() []smtp.DSNNotify {
	if n == "" {
		return nil
	}
	var out []smtp.DSNNotify
	for _, v := range strings.Split(string(n), ",") {
		out = append(out, smtp.DSNNotify(v))
	}
	return out
}

// Wants reports whether a report with this action may be sent. Without
// NOTIFY, failures and delays are reported and successes are not, as
// RFC 3461 §4.1 allows and Postfix does; NEVER asks for nothing.
func (n Notify) Wants(action string) bool {
	if n == "" {
		return action == ActionFailed || action == ActionDelayed
	}
	var want smtp.DSNNotify
	switch action {
	case ActionFailed:
		want = smtp.DSNNotifyFailure
	case ActionDelayed:
		want = smtp.DSNNotifyDelayed
	case ActionDelivered, ActionRelayed:
		want = smtp.DSNNotifySuccess
	default:
		return false
	}
	return slices.Contains(n.Values(), want)
}

// ORcpt is a recipient's original address (RFC 3461 §4.2) as the queue
// keeps it: "type;address", the address decoded from xtext, e.g.
// "rfc822;bob@example.org"; "" when none was given.
type ORcpt string

// ORcptOf is the ORCPT go-smtp parsed from a RCPT command.
func ORcptOf(opts *smtp.RcptOptions) ORcpt {
	if opts == nil || opts.OriginalRecipient == "" {
		return ""
	}
	return ORcpt(strings.ToLower(string(opts.OriginalRecipientType)) + ";" + opts.OriginalRecipient)
}

// Split returns the address type, as go-smtp names it, and the address.
func (o ORcpt) Split() (smtp.DSNAddressType, string) {
	typ, addr, _ := strings.Cut(string(o), ";")
	return smtp.DSNAddressType(strings.ToUpper(typ)), addr
}

// CheckMail checks what go-smtp leaves to the server in MAIL's DSN
// parameters: ENVID's length. It returns the parameter at fault, or "".
func CheckMail(opts *smtp.MailOptions) string {
	if opts != nil && len(opts.EnvelopeID) > MaxEnvID {
		return "ENVID"
	}
	return ""
}

// CheckRcpt is CheckMail for RCPT's ORCPT.
func CheckRcpt(opts *smtp.RcptOptions) string {
	if opts != nil && len(opts.OriginalRecipientType)+1+len(opts.OriginalRecipient) > MaxORcpt {
		return "ORCPT"
	}
	return ""
}

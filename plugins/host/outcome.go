package host

import "github.com/emersion/go-smtp"

// Outcome is what the connect, mail and rcpt hooks decided about the
// message to come: the daemon answers a refusal at once and acts on the
// rest at the end of DATA. Header edits count at the data and deliver
// hooks only; edits from these hooks are not carried.
type Outcome struct {
	// DiscardedBy names the plugin that discarded the message: it is
	// answered 250 and never queued. "" keeps it.
	DiscardedBy string
	// Folder is the folder a FILE_INTO chose, "" for the inbox.
	Folder string
}

// Fold adds one hook's result to o and returns the reply the client must
// get instead of success, or nil.
func (o *Outcome) Fold(res Result) *smtp.SMTPError {
	switch res.Action {
	case Reject, Tempfail:
		return res.Reply.SMTPError()
	case Discard:
		o.DiscardedBy = res.By
	}
	if res.Folder != "" {
		o.Folder = res.Folder
	}
	return nil
}

// Discarded is the reply to a message a plugin discarded: success, as
// for Postfix's DISCARD, so the sender does not retry.
func Discarded(by string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: discarded by filter " + by}
}

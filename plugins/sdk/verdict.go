package sdk

import (
	"io"

	"postline/plugins/pb"
)

// Verdict is a filter's answer to one hook call. Build one with Continue,
// Accept, Reject, Tempfail, Discard or FileInto, and attach header edits
// with With. The zero Verdict is Continue.
type Verdict struct {
	action   pb.Verdict_Action
	code     int
	enhanced string
	text     string
	folder   string
	edits    []Edit
	envelope *pb.EnvelopeEdits
	body     io.Reader // the new body, see ReplaceBody
	copies   []*pb.Copy
	redirect []string
	send     []*pb.Outgoing
}

// Continue says "no objection": the next plugin runs.
func Continue() Verdict { return Verdict{action: pb.Verdict_CONTINUE} }

// Accept accepts and skips the remaining plugins for this hook.
func Accept() Verdict { return Verdict{action: pb.Verdict_ACCEPT} }

// Reject refuses with a permanent error, e.g. Reject(550, "5.7.1", "spam").
// The host answers 550 5.7.1 instead of a code outside 5xx and removes
// CR and LF from text.
func Reject(code int, enhanced, text string) Verdict {
	return Verdict{action: pb.Verdict_REJECT, code: code, enhanced: enhanced, text: text}
}

// Tempfail refuses with a temporary error, e.g. Tempfail(451, "4.7.1",
// "greylisted"); the client retries later.
func Tempfail(code int, enhanced, text string) Verdict {
	return Verdict{action: pb.Verdict_TEMPFAIL, code: code, enhanced: enhanced, text: text}
}

// Discard accepts the message and drops it silently.
func Discard() Verdict { return Verdict{action: pb.Verdict_DISCARD} }

// FileInto delivers into folder (e.g. "Junk") instead of the inbox; the
// next plugin still runs.
func FileInto(folder string) Verdict { return Verdict{action: pb.Verdict_FILE_INTO, folder: folder} }

// Refuses reports whether v is a Reject or a Tempfail.
func (v Verdict) Refuses() bool {
	return v.action == pb.Verdict_REJECT || v.action == pb.Verdict_TEMPFAIL
}

// Discards reports whether v is a Discard.
func (v Verdict) Discards() bool { return v.action == pb.Verdict_DISCARD }

// Discarding returns v as a Discard verdict with what else it carries
// (a deliver hook's redirects and messages to send still go).
func (v Verdict) Discarding() Verdict {
	v.action = pb.Verdict_DISCARD
	return v
}

// Into returns v as a FileInto verdict for folder, with the changes it
// carries.
func (v Verdict) Into(folder string) Verdict {
	v.action, v.folder = pb.Verdict_FILE_INTO, folder
	return v
}

// With returns v with edits added after the ones it already has. Edits
// apply in order, e.g. With(Remove("Return-Path"), Prepend("Return-Path", "<a@b>")).
func (v Verdict) With(edits ...Edit) Verdict {
	v.edits = append(append([]Edit(nil), v.edits...), edits...)
	return v
}

// ChangeSender returns v with the envelope sender replaced by sender
// ("" for <>). Envelope changes count at the data hook only.
func (v Verdict) ChangeSender(sender string) Verdict {
	v.envelope = v.envelopeCopy()
	v.envelope.ChangeSender, v.envelope.Sender = true, sender
	return v
}

// AddRecipient returns v with rcpt added to the envelope (data hook only).
func (v Verdict) AddRecipient(rcpt string) Verdict {
	v.envelope = v.envelopeCopy()
	v.envelope.AddRecipients = append(v.envelope.AddRecipients, rcpt)
	return v
}

// RemoveRecipient returns v with rcpt taken out of the envelope (data hook
// only); letter case does not matter.
func (v Verdict) RemoveRecipient(rcpt string) Verdict {
	v.envelope = v.envelopeCopy()
	v.envelope.RemoveRecipients = append(v.envelope.RemoveRecipients, rcpt)
	return v
}

func (v Verdict) envelopeCopy() *pb.EnvelopeEdits {
	if v.envelope == nil {
		return &pb.EnvelopeEdits{}
	}
	return &pb.EnvelopeEdits{ChangeSender: v.envelope.ChangeSender, Sender: v.envelope.Sender,
		AddRecipients:    append([]string(nil), v.envelope.AddRecipients...),
		RemoveRecipients: append([]string(nil), v.envelope.RemoveRecipients...)}
}

// ReplaceBody returns v with the message body (all after the header)
// replaced by what body reads; it is read in 64 KiB chunks after the hook
// returns, and closed if it is an io.Closer. It counts only for a
// DataFilter that implements BodyReplacer.
func (v Verdict) ReplaceBody(body io.Reader) Verdict {
	v.body = body
	return v
}

// WithCopy returns v with one more local copy (deliver hook only): into
// folder ("" for INBOX) with IMAP system flags such as `\Seen`. Copies
// replace the one copy the delivery would write.
func (v Verdict) WithCopy(folder string, flags ...string) Verdict {
	v.copies = append(append([]*pb.Copy(nil), v.copies...), &pb.Copy{Folder: folder, Flags: flags})
	return v
}

// Redirect returns v with the message sent on to addr (deliver hook
// only), as mail an alias forwards.
func (v Verdict) Redirect(addr string) Verdict {
	v.redirect = append(append([]string(nil), v.redirect...), addr)
	return v
}

// Send returns v with a new message for the MDA to hand to the MTA
// (deliver hook only): msg is the whole message, sender "" is <>.
func (v Verdict) Send(sender string, recipients []string, msg []byte) Verdict {
	v.send = append(append([]*pb.Outgoing(nil), v.send...), &pb.Outgoing{Sender: sender, Recipients: recipients, Message: msg})
	return v
}

// Edit is one change to the message's header.
type Edit struct {
	op          pb.HeaderEdit_Op
	name, value string
	index       uint32
}

// Prepend adds the field "name: value" at the top of the header, where
// trace fields (Received, Return-Path) belong (RFC 5322 §3.6.7). A long
// value may be folded with "\r\n " or "\r\n\t".
func Prepend(name, value string) Edit {
	return Edit{op: pb.HeaderEdit_PREPEND, name: name, value: value}
}

// Append adds the field "name: value" at the end of the header.
func Append(name, value string) Edit { return Edit{op: pb.HeaderEdit_APPEND, name: name, value: value} }

// Remove removes every field called name, in any letter case.
func Remove(name string) Edit { return Edit{op: pb.HeaderEdit_REMOVE, name: name} }

// Change sets the value of the index-th field called name (1-based, any
// letter case); an empty value removes that field, and an index past the
// last one adds the field at the end (libmilter's smfi_chgheader).
func Change(name string, index int, value string) Edit {
	return Edit{pb.HeaderEdit_CHANGE, name, value, uint32(max(index, 0))}
}

// Insert adds the field "name: value" after the index-th field of the
// header, 0 being the top (libmilter's smfi_insheader).
func Insert(index int, name, value string) Edit {
	return Edit{pb.HeaderEdit_INSERT, name, value, uint32(max(index, 0))}
}

func (v Verdict) proto() *pb.Verdict {
	out := &pb.Verdict{Action: v.action, Folder: v.folder, EnvelopeEdits: v.envelope,
		Copies: v.copies, Redirects: v.redirect, Send: v.send}
	if v.action == pb.Verdict_REJECT || v.action == pb.Verdict_TEMPFAIL {
		out.Reply = &pb.Reply{Code: uint32(max(v.code, 0)), EnhancedCode: v.enhanced, Text: v.text}
	}
	for _, e := range v.edits {
		out.HeaderEdits = append(out.HeaderEdits, &pb.HeaderEdit{Op: e.op, Name: e.name, Value: e.value, Index: e.index})
	}
	return out
}

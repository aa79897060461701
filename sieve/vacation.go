package sieve

import (
	"fmt"
	"strings"
)

// This file implements the vacation action (RFC 5230, RFC 6131) and the
// rules on whom never to answer (RFC 5230 §4.5, §5 and Pigeonhole's list).

// vacation builds the response and keeps it unless a rule forbids it.
func (r *run) vacation(c *Command) error {
	if r.vacationSet {
		return &RuntimeError{c.Pos, "more than one vacation action"}
	}
	r.vacationSet = true
	ch := &c.c
	v := Vacation{Reason: r.str(ch.pos[0]), Mime: ch.has("mime"), To: r.in.Envelope.From}
	v.Seconds = r.period(ch)
	v.Handle = r.handle(ch)
	if a, ok := ch.tags["from"]; ok {
		v.From = r.str(&a)
	}
	var addrs []string
	if a, ok := ch.tags["addresses"]; ok {
		addrs = r.list(&a)
	}
	me, why := r.whyNotAnswer(v, addrs)
	if why != "" {
		r.notes = append(r.notes, "vacation not sent: "+why)
		return nil
	}
	if v.From == "" {
		v.From = me
	}
	v.Subject = r.subject(ch)
	r.actions = append(r.actions, v)
	return nil
}

// period is :days or :seconds in seconds (RFC 5230 §4.1, RFC 6131 §2),
// default 7 days, held within the configured bounds.
func (r *run) period(ch *checked) int64 {
	secs := int64(7 * 86400)
	if a, ok := ch.tags["days"]; ok {
		secs = a.Num * 86400
	}
	if a, ok := ch.tags["seconds"]; ok {
		secs = a.Num
	}
	lo, hi := int64(r.in.Options.VacationMinPeriod.Seconds()), int64(r.in.Options.VacationMaxPeriod.Seconds())
	if secs < lo {
		secs = lo
	}
	if hi > 0 && secs > hi {
		secs = hi
	}
	return secs
}

// handle is :handle, or one made of the arguments as written (§4.2 leaves
// the form open; this is Pigeonhole's, so both remember alike).
func (r *run) handle(ch *checked) string {
	if a, ok := ch.tags["handle"]; ok {
		return r.str(&a)
	}
	h := ch.pos[0].Strs[0]
	h += literalOr(ch, "subject", "<default-subject>")
	h += literalOr(ch, "from", "<default-from>")
	if ch.has("mime") {
		return h + "<IS-MIME>"
	}
	return h + "<NO-MIME>"
}

func literalOr(ch *checked, tag, def string) string {
	if a, ok := ch.tags[tag]; ok {
		return a.Strs[0]
	}
	return def
}

// subject is :subject, or "Auto: " and the original subject (§4.5).
func (r *run) subject(ch *checked) string {
	if a, ok := ch.tags["subject"]; ok {
		return r.str(&a)
	}
	if s := r.headerValues([]string{"subject"}); len(s) > 0 {
		return "Auto: " + s[0]
	}
	return "Automated reply"
}

// whyNotAnswer applies the rules in Pigeonhole's order and returns the
// owner address found in the message, or why no response may go out.
func (r *run) whyNotAnswer(v Vacation, addrs []string) (string, string) {
	sender, rcpt := v.To, r.in.Envelope.To
	switch {
	case rcpt == "":
		return "", "no envelope recipient"
	case sender == "":
		return "", "null sender <> (RFC 5230 §4.5)"
	case strings.EqualFold(sender, rcpt) || containsFold(addrs, sender):
		return "", "sender is the owner"
	case r.in.Vacation != nil && r.in.Vacation.Seen(v.Handle, strings.ToLower(sender)):
		return "", "already answered within the period (RFC 5230 §4.2)"
	}
	if why := r.automatedMessage(); why != "" {
		return "", why
	}
	if isSystemAddress(sender) {
		return "", fmt.Sprintf("system address <%s> (RFC 5230 §4.5)", sender)
	}
	mine := append(append([]string{rcpt}, addrs...), r.in.UserAddresses...)
	if me := r.addressedTo(mine); me != "" {
		return me, ""
	}
	return "", "none of the owner's addresses in To/Cc/Bcc/Resent-* (RFC 5230 §4.5)"
}

// automatedMessage: never answer lists (RFC 2369/2919 List-* fields),
// Auto-Submitted other than "no" (RFC 3834 §2), Precedence bulk/list/junk
// and X-Auto-Response-Suppress All/OOF.
func (r *run) automatedMessage() string {
	for _, h := range []string{"list-id", "list-owner", "list-subscribe", "list-post",
		"list-unsubscribe", "list-help", "list-archive"} {
		if len(r.in.Header.Values(h)) > 0 {
			return "mailing list message (" + h + ")"
		}
	}
	for _, v := range r.in.Header.Values("auto-submitted") {
		if !strings.EqualFold(strings.TrimSpace(stripComments(v)), "no") {
			return "auto-submitted message (RFC 3834 §2)"
		}
	}
	for _, v := range r.in.Header.Values("precedence") {
		switch strings.ToLower(v) {
		case "junk", "bulk", "list":
			return "precedence " + v
		}
	}
	for _, v := range r.in.Header.Values("x-auto-response-suppress") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); strings.EqualFold(f, "all") || strings.EqualFold(f, "oof") {
				return "x-auto-response-suppress " + f
			}
		}
	}
	return ""
}

// isSystemAddress: senders that never read replies (RFC 5230 §4.5).
func isSystemAddress(a string) bool {
	l := strings.ToLower(a)
	return strings.HasPrefix(l, "mailer-daemon") || strings.HasPrefix(l, "listserv") ||
		strings.HasPrefix(l, "majordomo") || strings.Contains(l, "-request@") ||
		strings.HasPrefix(l, "owner-")
}

// addressedTo returns the first of mine found in the recipient fields.
func (r *run) addressedTo(mine []string) string {
	for _, h := range []string{"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"} {
		for _, v := range r.in.Header.Values(h) {
			for _, a := range parseAddressList(v) {
				if a.Valid && containsFold(mine, a.all()) {
					return a.all()
				}
			}
		}
	}
	return ""
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

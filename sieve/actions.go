package sieve

import (
	"fmt"
	"strings"
)

// Action is one decision of a run, for the caller to carry out.
type Action interface{ isAction() }

// Keep stores the message in the default mailbox (RFC 5228 §4.3). Implicit
// is true for the implicit keep of §2.10.2.
type Keep struct {
	Flags    []string // RFC 5232 §5
	Implicit bool
}

// FileInto stores the message in Mailbox (RFC 5228 §4.1), creating it first
// when Create is set (RFC 5490 §3.2). Copy means :copy (RFC 3894).
type FileInto struct {
	Mailbox string
	Create  bool
	Copy    bool
	Flags   []string
}

// Redirect forwards the message to Address (RFC 5228 §4.2).
type Redirect struct {
	Address string
	Copy    bool
}

// Discard drops the message silently (RFC 5228 §4.4).
type Discard struct{}

// Reject refuses the message with an MDN or SMTP reply (RFC 5429 §2.2).
type Reject struct{ Reason string }

// EReject refuses the message at the SMTP level (RFC 5429 §2.1).
type EReject struct{ Reason string }

// Vacation is an auto-reply that passed every RFC 5230 §4.5/§5 check. The
// caller sends it and records (Handle, To) for Seconds in its memory.
type Vacation struct {
	To      string // the envelope sender answered
	From    string // :from, or the owner address found in the message
	Subject string // :subject, or "Auto: " + the original subject (§4.5)
	Reason  string // the body, or a MIME entity when Mime is set (§5.8)
	Mime    bool
	Handle  string
	Seconds int64
}

func (Keep) isAction()     {}
func (FileInto) isAction() {}
func (Redirect) isAction() {}
func (Discard) isAction()  {}
func (Reject) isAction()   {}
func (EReject) isAction()  {}
func (Vacation) isAction() {}

// Result is what a run decided. Notes explain decisions that produced no
// action, such as a vacation response not sent and why.
type Result struct {
	Actions []Action
	Notes   []string
}

// RuntimeError is a failure while running; the message must then be kept.
type RuntimeError struct {
	Pos Pos
	Msg string
}

func (e *RuntimeError) Error() string {
	return fmt.Sprintf("sieve: runtime error at line %d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
}

func failed() *Result {
	return &Result{Actions: []Action{Keep{Implicit: true}}}
}

// inbox is the mailbox keep stores into; fileinto "INBOX" is the same.
const inbox = "INBOX"

func storeKey(mailbox string) string {
	if strings.EqualFold(mailbox, inbox) {
		return inbox
	}
	return mailbox
}

// store adds keep or fileinto. RFC 5228 §2.10.3: the same mailbox twice
// stores once; as in Pigeonhole the later flags win.
func (r *run) store(mailbox string, flags []string, create, copyOnly bool) {
	key := storeKey(mailbox)
	for i, a := range r.actions {
		if f, ok := a.(FileInto); ok && storeKey(f.Mailbox) == key {
			f.Flags, f.Create, f.Copy = flags, f.Create || create, f.Copy && copyOnly
			r.actions[i] = f
			return
		}
	}
	r.actions = append(r.actions, FileInto{Mailbox: mailbox, Flags: flags, Create: create, Copy: copyOnly})
}

// redirect adds a redirect unless the address already has one (§2.10.3).
func (r *run) redirect(p Pos, addr string, copyOnly bool) error {
	for i, a := range r.actions {
		if d, ok := a.(Redirect); ok && strings.EqualFold(d.Address, addr) {
			d.Copy = d.Copy && copyOnly
			r.actions[i] = d
			return nil
		}
	}
	r.redirects++
	if r.redirects > r.in.Options.MaxRedirects {
		return &RuntimeError{p, fmt.Sprintf("more than %d redirects", r.in.Options.MaxRedirects)}
	}
	r.actions = append(r.actions, Redirect{Address: addr, Copy: copyOnly})
	return nil
}

// finish checks action conflicts and adds the implicit keep (§2.10.2).
func (r *run) finish() (*Result, error) {
	if err := r.conflicts(); err != nil {
		return failed(), err
	}
	res := &Result{Notes: r.notes}
	for _, a := range r.actions {
		// A store to INBOX that keep made (or merged with) is reported as Keep.
		if f, ok := a.(FileInto); ok && r.keptExplicitly && storeKey(f.Mailbox) == inbox {
			a = Keep{Flags: f.Flags}
		}
		res.Actions = append(res.Actions, a)
	}
	if !r.cancelled {
		res.Actions = append(res.Actions, Keep{Flags: r.flags, Implicit: true})
	}
	return res, nil
}

// conflicts: RFC 5429 §2.1/§2.2: reject and ereject exclude each other, a
// second reject, keep, fileinto, redirect and vacation.
func (r *run) conflicts() error {
	rejects, others := 0, 0
	for _, a := range r.actions {
		switch a.(type) {
		case Reject, EReject:
			rejects++
		case FileInto, Redirect, Vacation:
			others++
		}
	}
	if rejects > 1 {
		return &RuntimeError{r.rejectPos, "more than one reject or ereject"}
	}
	if rejects == 1 && others > 0 {
		return &RuntimeError{r.rejectPos, "reject conflicts with another action that delivers or answers the message"}
	}
	return nil
}

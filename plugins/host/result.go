package host

import (
	"crypto/tls"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"postline/address"
	"postline/plugins/pb"

	"github.com/emersion/go-smtp"
)

// ConnInfo describes the client's SMTP session, as the MSA or MTA knows it.
type ConnInfo struct {
	ClientIP   string
	ClientPort int
	ReverseDNS string // verified PTR name, "" when none
	Helo       string
	Protocol   string // "SMTP" after HELO, "ESMTP" after EHLO
	TLSVersion string // "" on a plaintext session; see SetTLS
	TLSCipher  string
	AuthUser   string // "" when not authenticated
	QueueID    string // the current message's queue ID, when already known
}

// SetTLS fills the TLS fields from a session's connection state.
func (c *ConnInfo) SetTLS(cs tls.ConnectionState) {
	c.TLSVersion = strings.ReplaceAll(tls.VersionName(cs.Version), " ", "")
	c.TLSCipher = tls.CipherSuiteName(cs.CipherSuite)
}

// MailInfo is one MAIL FROM.
type MailInfo struct {
	Conn   ConnInfo
	Sender string            // "" for the null sender <>
	Params map[string]string // ESMTP parameters, upper-case keys
}

// RcptInfo is one RCPT TO.
type RcptInfo struct {
	Conn      ConnInfo
	Sender    string
	Recipient string
}

// TxInfo is the transaction at the end of DATA.
type TxInfo struct {
	Conn       ConnInfo
	Sender     string
	Recipients []string
	Size       int64 // header plus body in bytes, 0 when unknown
}

// DeliveryInfo is one recipient's copy in the MDA.
type DeliveryInfo struct {
	Recipient string
	Sender    string
	QueueID   string
	Folder    string // folder an earlier filter chose, "" for INBOX
	Size      int64  // the message's size in bytes, 0 when unknown
	Mailbox   string // the recipient's Maildir folder
}

// Copy is one local copy a deliver plugin asks for.
type Copy struct {
	Folder string   // Maildir++ folder, "" for INBOX
	Flags  []string // IMAP system flags, e.g. `\Seen`
}

// Outgoing is a message a deliver plugin asks the MDA to send.
type Outgoing struct {
	Sender     string // "" for <>
	Recipients []string
	Message    []byte
}

// maxOutgoing bounds a message a plugin asks to send: an auto-reply, not
// a way around the MTA's limits.
const maxOutgoing = 1 << 20

// Action is what a plugin, or a whole chain, decided.
type Action int

// The actions. A Result's Action is never FileInto: a FILE_INTO verdict
// sets Result.Folder and the chain goes on.
const (
	Continue Action = iota // no objection
	Accept                 // accepted; later plugins were skipped for this hook
	Reject                 // refuse with Reply (5xx)
	Tempfail               // refuse with Reply (4xx)
	Discard                // accept and drop the message silently
	FileInto               // deliver into a folder
)

func (a Action) String() string {
	return [...]string{"continue", "accept", "reject", "tempfail", "discard", "file_into"}[a]
}

// Reply is an SMTP reply for Reject and Tempfail.
type Reply struct {
	Code     int    // 4xx or 5xx
	Enhanced string // RFC 3463, e.g. "5.7.1"
	Text     string // one line, no CR or LF
}

func (r Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// SMTPError is the reply as the daemons send it to their client; the
// chain has already checked the code's class and the text.
func (r Reply) SMTPError() *smtp.SMTPError {
	var enh smtp.EnhancedCode
	if _, err := fmt.Sscanf(r.Enhanced, "%d.%d.%d", &enh[0], &enh[1], &enh[2]); err != nil {
		enh = smtp.EnhancedCodeNotSet
	}
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: enh, Message: r.Text}
}

// EditOp is the kind of a header edit.
type EditOp int

// The header edits.
const (
	Prepend EditOp = iota + 1 // add at the top of the header
	Append                    // add at the end of the header
	Remove                    // remove every field of that name, any case
	Change                    // set the Index-th field of that name; "" removes it
	Insert                    // add after the Index-th field of the header, 0 = top
)

// HeaderEdit is one change to a message's header; apply with ApplyEdits.
type HeaderEdit struct {
	Op    EditOp
	Name  string
	Value string // not for Remove
	Index int    // Change (1-based, per name) and Insert (0 = top)
}

// EnvelopeOp is the kind of an envelope change.
type EnvelopeOp int

// The envelope changes a data hook may make.
const (
	SetSender       EnvelopeOp = iota + 1 // Addr is the new sender, "" for <>
	AddRecipient                          // Addr is added
	RemoveRecipient                       // Addr is taken out, any letter case
)

// EnvelopeChange is one change to the envelope, at the data hook only.
type EnvelopeChange struct {
	Op   EnvelopeOp
	Addr string
}

// ApplyEnvelope returns sender and rcpts with changes applied in order.
// A recipient already there is not added twice; rcpts is not modified.
func ApplyEnvelope(changes []EnvelopeChange, sender string, rcpts []string) (string, []string) {
	out := append([]string(nil), rcpts...)
	for _, c := range changes {
		switch c.Op {
		case SetSender:
			sender = c.Addr
		case AddRecipient:
			if !slices.ContainsFunc(out, func(r string) bool { return strings.EqualFold(r, c.Addr) }) {
				out = append(out, c.Addr)
			}
		case RemoveRecipient:
			out = slices.DeleteFunc(out, func(r string) bool { return strings.EqualFold(r, c.Addr) })
		}
	}
	return sender, out
}

// Result is what a chain of plugins decided for one hook call.
type Result struct {
	// Action is Continue, Accept, Reject, Tempfail or Discard: the first
	// plugin that did not continue decides it.
	Action Action
	// Reply is the SMTP reply for Reject and Tempfail.
	Reply Reply
	// Folder is the last folder a FILE_INTO chose, "" for the inbox.
	Folder string
	// Edits are the header edits of every plugin that ran, in order.
	// Data and Deliver results apply to the message; for the other
	// hooks the daemon may carry them to the message or ignore them.
	Edits []HeaderEdit
	// Envelope are the envelope changes of every plugin that ran at the
	// data hook, in order (see ApplyEnvelope); other hooks have none.
	Envelope []EnvelopeChange
	// EnvelopeBy names the last plugin that changed the envelope.
	EnvelopeBy string
	// BodyBy names the last plugin that replaced the body, "" when none
	// did; the new body is in the Filtered message.
	BodyBy string
	// Copies, Redirects and Send are the deliver hook's: the copies of the
	// last plugin that named any (in place of one into Folder), and every
	// plugin's redirects and messages to send, in order.
	Copies    []Copy
	Redirects []string
	Send      []Outgoing
	// By names the plugin that decided Action, "" for Continue.
	By string
}

// Refused reports whether the client must get Reply instead of success.
func (r Result) Refused() bool { return r.Action == Reject || r.Action == Tempfail }

// add folds one plugin's verdict into r and reports whether the chain stops.
func (r *Result) add(plugin string, v verdict) bool {
	r.Edits = append(r.Edits, v.edits...)
	if len(v.envelope) > 0 {
		r.Envelope, r.EnvelopeBy = append(r.Envelope, v.envelope...), plugin
	}
	if v.replaceBody {
		r.BodyBy = plugin
	}
	if len(v.copies) > 0 {
		r.Copies = v.copies
	}
	r.Redirects = append(r.Redirects, v.redirects...)
	r.Send = append(r.Send, v.send...)
	switch v.action {
	case Continue:
		return false
	case FileInto:
		r.Folder = v.folder
		return false
	}
	r.Action, r.Reply, r.By = v.action, v.reply, plugin
	return true
}

// verdict is one plugin's answer, checked: codes in the right class, no
// line breaks in the reply, only well-formed edits and folder names.
type verdict struct {
	action      Action
	reply       Reply
	folder      string
	edits       []HeaderEdit
	envelope    []EnvelopeChange
	replaceBody bool
	copies      []Copy
	redirects   []string
	send        []Outgoing
}

var actionProto = map[pb.Verdict_Action]Action{
	pb.Verdict_CONTINUE: Continue, pb.Verdict_ACCEPT: Accept, pb.Verdict_REJECT: Reject,
	pb.Verdict_TEMPFAIL: Tempfail, pb.Verdict_DISCARD: Discard, pb.Verdict_FILE_INTO: FileInto,
}

// checkVerdict turns a plugin's answer into a verdict. What cannot be
// trusted is repaired or dropped, and each problem is returned for the log:
// a plugin must never be able to inject SMTP replies or header lines.
func checkVerdict(p *pb.Verdict) (verdict, []string) {
	var problems []string
	a, ok := actionProto[p.GetAction()]
	if !ok {
		problems = append(problems, fmt.Sprintf("unknown action %d, taken as continue", p.GetAction()))
	}
	v := verdict{action: a}
	switch a {
	case Reject:
		v.reply = checkReply(p.GetReply(), 5, Reply{550, "5.7.1", "message refused"}, &problems)
	case Tempfail:
		v.reply = checkReply(p.GetReply(), 4, Reply{451, "4.7.1", "try again later"}, &problems)
	case FileInto:
		v.folder = p.GetFolder()
		if !ValidFolder(v.folder) {
			problems = append(problems, fmt.Sprintf("folder %q is not a valid Maildir++ folder name, taken as continue", v.folder))
			v = verdict{action: Continue}
		}
	}
	for _, e := range p.GetHeaderEdits() {
		he, err := checkEdit(e)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		v.edits = append(v.edits, he)
	}
	v.envelope = checkEnvelope(p.GetEnvelopeEdits(), &problems)
	v.replaceBody = p.GetReplaceBody()
	v.copies = checkCopies(p.GetCopies(), &problems)
	v.redirects = checkAddresses(p.GetRedirects(), "redirect", &problems)
	v.send = checkOutgoing(p.GetSend(), &problems)
	return v, problems
}

// imapFlags are the flags a copy may carry: RFC 3501 §2.3.2's system
// flags but \Recent, which only a server sets.
var imapFlags = map[string]bool{`\Seen`: true, `\Answered`: true, `\Flagged`: true, `\Deleted`: true, `\Draft`: true}

// checkCopies keeps the copies into valid folders, with their system
// flags (keywords are dropped: a Maildir file name holds system flags).
func checkCopies(in []*pb.Copy, problems *[]string) []Copy {
	var out []Copy
	for _, c := range in {
		if f := c.GetFolder(); f != "" && !ValidFolder(f) {
			*problems = append(*problems, fmt.Sprintf("copy into folder %q dropped: not a valid Maildir++ folder name", f))
			continue
		}
		cp := Copy{Folder: c.GetFolder()}
		for _, f := range c.GetFlags() {
			for name := range imapFlags {
				if strings.EqualFold(f, name) && !slices.Contains(cp.Flags, name) {
					cp.Flags = append(cp.Flags, name)
				}
			}
		}
		out = append(out, cp)
	}
	return out
}

// checkAddresses keeps the well-formed addresses of a list.
func checkAddresses(in []string, what string, problems *[]string) []string {
	var out []string
	for _, a := range in {
		parsed, err := address.Parse(a)
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("%s to %q dropped: %v", what, a, err))
			continue
		}
		out = append(out, parsed.String())
	}
	return out
}

// checkOutgoing keeps the messages to send with a sender that is <> or an
// address, recipients, and a size under maxOutgoing.
func checkOutgoing(in []*pb.Outgoing, problems *[]string) []Outgoing {
	var out []Outgoing
	for _, o := range in {
		rcpts := checkAddresses(o.GetRecipients(), "message", problems)
		_, badSender := address.Parse(o.GetSender())
		switch {
		case len(rcpts) == 0:
			*problems = append(*problems, "message to send dropped: no recipient")
		case o.GetSender() != "" && badSender != nil:
			*problems = append(*problems, fmt.Sprintf("message to send dropped: sender %q: %v", o.GetSender(), badSender))
		case len(o.GetMessage()) == 0 || len(o.GetMessage()) > maxOutgoing:
			*problems = append(*problems, fmt.Sprintf("message to send dropped: %d bytes", len(o.GetMessage())))
		default:
			out = append(out, Outgoing{Sender: o.GetSender(), Recipients: rcpts, Message: o.GetMessage()})
		}
	}
	return out
}

// checkEnvelope keeps the envelope changes whose addresses are well formed:
// a plugin must not be able to inject SMTP commands through them.
func checkEnvelope(e *pb.EnvelopeEdits, problems *[]string) []EnvelopeChange {
	var out []EnvelopeChange
	add := func(op EnvelopeOp, addr string) {
		addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
		if addr == "" && op == SetSender {
			out = append(out, EnvelopeChange{op, ""})
			return
		}
		parsed, err := address.Parse(addr)
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("envelope address %q dropped: %v", addr, err))
			return
		}
		out = append(out, EnvelopeChange{op, parsed.String()})
	}
	if e.GetChangeSender() {
		add(SetSender, e.GetSender())
	}
	for _, r := range e.GetRemoveRecipients() {
		add(RemoveRecipient, r)
	}
	for _, r := range e.GetAddRecipients() {
		add(AddRecipient, r)
	}
	return out
}

var enhancedRe = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// checkReply keeps the plugin's code only when it has the class the action
// promises (RFC 5321 §4.2.1; RFC 3463 classes 4 and 5).
func checkReply(r *pb.Reply, class int, def Reply, problems *[]string) Reply {
	out := def
	if c := int(r.GetCode()); c/100 == class {
		out.Code = c
	} else if c != 0 {
		*problems = append(*problems, fmt.Sprintf("reply code %d does not fit the verdict, %d used", c, def.Code))
	}
	if e := r.GetEnhancedCode(); enhancedRe.MatchString(e) && int(e[0]-'0') == class {
		out.Enhanced = e
	}
	if t := oneLine(r.GetText()); t != "" {
		out.Text = t
	}
	return out
}

// oneLine makes text safe for an SMTP reply line: control characters
// (CR and LF above all, which would forge further reply lines) become
// spaces, and the text is cut to leave the line well under 512 octets.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > 400 {
		s = strings.ToValidUTF8(s[:400], "")
	}
	return s
}

// ValidFolder reports whether f is a Maildir++ folder name such as "Junk" or
// "Lists.golang": no path separators, no leading or trailing dot, no empty
// level, no control characters. The MDA checks again before opening it.
func ValidFolder(f string) bool {
	if f == "" || len(f) > 200 || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") {
		return false
	}
	return !strings.ContainsFunc(f, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '/' || r == '\\' })
}

var editProto = map[pb.HeaderEdit_Op]EditOp{
	pb.HeaderEdit_PREPEND: Prepend, pb.HeaderEdit_APPEND: Append, pb.HeaderEdit_REMOVE: Remove,
	pb.HeaderEdit_CHANGE: Change, pb.HeaderEdit_INSERT: Insert,
}

func checkEdit(e *pb.HeaderEdit) (HeaderEdit, error) {
	op, ok := editProto[e.GetOp()]
	if !ok {
		return HeaderEdit{}, fmt.Errorf("header edit of %q: unknown op %d, dropped", e.GetName(), e.GetOp())
	}
	he := HeaderEdit{Op: op, Name: e.GetName(), Value: e.GetValue(), Index: int(min(e.GetIndex(), 1<<20))}
	if op == Change && he.Index == 0 {
		return HeaderEdit{}, fmt.Errorf("header edit of %q: change needs an index from 1, dropped", he.Name)
	}
	if _, err := formatField(he.Name, he.Value); err != nil {
		return HeaderEdit{}, fmt.Errorf("header edit dropped: %w", err)
	}
	return he, nil
}

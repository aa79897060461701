package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"postline/address"
)

// Actions of a recipient in a delivery status notification (RFC 3464 §2.3.3).
const (
	ActionFailed    = "failed"    // given up: a 5xx reply, or the queue lifetime ran out
	ActionDelayed   = "delayed"   // still being retried: a delay warning
	ActionDelivered = "delivered" // written into the recipient's mailbox
	ActionRelayed   = "relayed"   // handed to a next hop that does not report (no DSN)
)

// Recipient is one recipient a report is about.
type Recipient struct {
	Address string
	ORcpt   ORcpt  // the ORCPT the client gave, reported as Original-Recipient
	Action  string // one of the Action constants
	Status  string // enhanced status code (RFC 3463), e.g. "5.1.1"
	// RemoteMTA is the host that gave the reply, "" when the failure was
	// local (the MDA, or no host to try at all).
	RemoteMTA string
	// Diagnostic is the reply as received, e.g. "550 5.1.1 <x@y>: no such user".
	Diagnostic     string
	LastAttempt    time.Time // optional
	WillRetryUntil time.Time // optional; for delayed recipients
}

// Report is what a delivery status notification says about one queued
// message.
type Report struct {
	ReportingMTA   string // this host's name
	QueueID        string
	EnvID          string // MAIL's ENVID, reported as Original-Envelope-Id
	OriginalSender string // the envelope sender; the report goes there
	ArrivalDate    time.Time
	Now            time.Time // the report's Date; zero is time.Now()
	// Return is MAIL's RET: ReturnFull returns the whole message (up to
	// MaxReturnedMessage) when a recipient failed; otherwise, and in
	// reports without a failure, only its header comes back.
	Return     string
	Recipients []Recipient
}

// MaxReturnedMessage is the largest message returned whole for RET=FULL
// (Postfix's bounce_size_limit is 50,000 bytes); a larger one comes back
// as its header only.
const MaxReturnedMessage = 64 << 10

// maxBounceHeader is how much of the original header a bounce returns.
const maxBounceHeader = 64 << 10

// ShouldBounce reports whether a failed message may be bounced: never
// when its sender is the null reverse-path "" (RFC 5321 §4.5.5, RFC
// 3464 §2), which bounces and other notifications use, so that two
// failing systems cannot send each other bounces forever. The caller
// logs such a failure and drops it.
func ShouldBounce(sender string) bool { return sender != "" }

var statusCode = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// Build returns a complete message reporting b's recipients to the
// original sender: a multipart/report (RFC 6522) with a text part for
// people, a message/delivery-status part for programs (RFC 3464) and the
// original message from the queue: whole (message/rfc822) when RET=FULL
// asked for it in a failure report and it is small and 7-bit, else its
// header (text/rfc822-headers), never its body. The result has CRLF line
// ends and is 7-bit, so it needs no SMTP extension, unless the sender's
// own address is not ASCII (then it needs SMTPUTF8, as the original
// did). It must be sent from the null sender "" (MAIL FROM:<>), to
// OriginalSender.
func Build(b Report, original io.Reader) ([]byte, error) {
	if err := checkBounce(b); err != nil {
		return nil, fmt.Errorf("report for %s: %w", b.QueueID, err)
	}
	if b.Now.IsZero() {
		b.Now = time.Now()
	}
	returned, err := returnedPart(b, original)
	if err != nil {
		return nil, fmt.Errorf("report for %s: read the original: %w", b.QueueID, err)
	}
	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, bounceHeader(b).Header)
	if err != nil {
		return nil, fmt.Errorf("report for %s: %w", b.QueueID, err)
	}
	parts := []part{
		{"text/plain", "Notification", []byte(bounceText(b, returned.ctype == "message/rfc822"))},
		{"message/delivery-status", "Delivery report", deliveryStatus(b)},
		returned,
	}
	for _, p := range parts {
		if err := writePart(w, p.ctype, p.desc, p.body); err != nil {
			return nil, fmt.Errorf("report for %s: %s part: %w", b.QueueID, p.ctype, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("report for %s: %w", b.QueueID, err)
	}
	return buf.Bytes(), nil
}

type part struct {
	ctype, desc string
	body        []byte
}

// returnedPart is what comes back of the original (RFC 3461 §4.3): the
// whole message for RET=FULL in a failure report, unless it is larger
// than MaxReturnedMessage or not 7-bit (message/rfc822 may not be
// encoded, RFC 2046 §5.2.1, and the report must stay 7-bit); otherwise
// its header.
func returnedPart(b Report, original io.Reader) (part, error) {
	failed := anyAction(b, ActionFailed)
	if b.Return == ReturnFull && failed {
		whole, err := io.ReadAll(io.LimitReader(original, MaxReturnedMessage+1))
		if err != nil {
			return part{}, err
		}
		if len(whole) <= MaxReturnedMessage && address.IsASCII(string(whole)) {
			return part{"message/rfc822", "Undelivered Message", whole}, nil
		}
		original = io.MultiReader(bytes.NewReader(whole), original)
	}
	header, err := ReadHeaderBlock(original, maxBounceHeader)
	if err != nil {
		return part{}, err
	}
	desc := "Message Headers"
	if failed {
		desc = "Undelivered Message Headers"
	}
	return part{"text/rfc822-headers", desc, header}, nil
}

var knownAction = map[string]bool{ActionFailed: true, ActionDelayed: true,
	ActionDelivered: true, ActionRelayed: true}

func checkBounce(b Report) error {
	switch {
	case !ShouldBounce(b.OriginalSender):
		return errors.New("the null sender is never bounced to")
	case b.ReportingMTA == "":
		return errors.New("no reporting MTA name")
	case len(b.Recipients) == 0:
		return errors.New("no recipient to report")
	}
	if strings.ContainsAny(b.ReportingMTA+b.QueueID+b.OriginalSender+b.EnvID, "\r\n") {
		return errors.New("line break in a name") // it would forge report fields
	}
	for _, r := range b.Recipients {
		if strings.ContainsAny(r.Address+r.RemoteMTA, "\r\n") {
			return fmt.Errorf("recipient %q: line break in a name", r.Address)
		}
		if !knownAction[r.Action] {
			return fmt.Errorf("recipient %s: action %q is not one of RFC 3464's", r.Address, r.Action)
		}
		if strings.ContainsAny(string(r.ORcpt), "\r\n") {
			return fmt.Errorf("recipient %s: line break in ORCPT", r.Address)
		}
		if !statusCode.MatchString(r.Status) {
			return fmt.Errorf("recipient %s: status %q is not an enhanced status code", r.Address, r.Status)
		}
	}
	return nil
}

// bounceHeader is the report's top-level header. go-message writes the
// field added last first, so the fields are added bottom-up.
func bounceHeader(b Report) mail.Header {
	var h mail.Header
	// A boundary of our own: left empty, go-message would add it by
	// setting Content-Type again, which moves the field to the top.
	var nonce [16]byte
	rand.Read(nonce[:])
	h.SetContentType("multipart/report", map[string]string{
		"report-type": "delivery-status", "boundary": "postline-" + hex.EncodeToString(nonce[:])})
	h.Set("MIME-Version", "1.0")
	h.Set("Auto-Submitted", "auto-replied") // RFC 3834 §5: no auto-reply to this
	h.GenerateMessageIDWithHostname(b.ReportingMTA)
	h.SetDate(b.Now)
	// Postfix's subjects, which people and filters know.
	subject := "Successful Mail Delivery Report"
	switch {
	case anyAction(b, ActionFailed):
		subject = "Undelivered Mail Returned to Sender"
	case anyAction(b, ActionDelayed):
		subject = "Delayed Mail (still being retried)"
	}
	h.SetSubject(subject)
	h.SetAddressList("To", []*mail.Address{{Address: b.OriginalSender}})
	h.SetAddressList("From", []*mail.Address{{Name: "Mail Delivery System", Address: "MAILER-DAEMON@" + b.ReportingMTA}})
	return h
}

func anyAction(b Report, action string) bool {
	for _, r := range b.Recipients {
		if r.Action == action {
			return true
		}
	}
	return false
}

// bounceText is the part for people: what happened to whom, in words.
func bounceText(b Report, whole bool) string {
	var s strings.Builder
	fmt.Fprintf(&s, "This is the mail system at %s.\r\n", b.ReportingMTA)
	paragraphs := []struct{ action, intro string }{
		{ActionFailed, "Your message could not be delivered to the recipients below.\r\n" +
			"The mail system has given up on them."},
		{ActionDelayed, "Your message has not been delivered yet to the recipients below.\r\n" +
			"The mail system will keep trying; you do not need to send it again."},
		{ActionDelivered, "Your message was delivered to the mailboxes of the recipients below."},
		{ActionRelayed, "Your message was passed on to the recipients' mail systems below,\r\n" +
			"which do not report delivery: no further notice will come from them,\r\n" +
			"unless they fail to deliver it."},
	}
	for _, p := range paragraphs {
		if !anyAction(b, p.action) {
			continue
		}
		fmt.Fprintf(&s, "\r\n%s\r\n\r\n", p.intro)
		for _, r := range b.Recipients {
			if r.Action == p.action {
				fold(&s, "<"+r.Address+">:", reason(r), "    ")
			}
		}
	}
	if whole {
		s.WriteString("\r\nYour message is attached.\r\n")
	} else {
		s.WriteString("\r\nThe header of your message is attached; its body is not.\r\n")
	}
	s.WriteString("For further assistance, please send mail to postmaster.\r\n")
	return s.String()
}

func reason(r Recipient) string {
	diag := oneLine(r.Diagnostic)
	switch {
	case r.RemoteMTA != "" && diag != "":
		return fmt.Sprintf("host %s said: %s", r.RemoteMTA, diag)
	case diag != "":
		return diag
	}
	return "delivery status " + r.Status
}

// deliveryStatus is the machine-readable report (RFC 3464 §2): the
// per-message fields, then one group of fields per recipient, each
// group after a blank line.
func deliveryStatus(b Report) []byte {
	var s bytes.Buffer
	if b.EnvID != "" { // RFC 3464 §2.2.1, first of the per-message fields
		writeField(&s, "Original-Envelope-Id", escapeNonASCII(b.EnvID, false))
	}
	writeField(&s, "Reporting-MTA", "dns; "+b.ReportingMTA)
	if b.QueueID != "" {
		writeField(&s, "X-Postline-Queue-ID", b.QueueID)
	}
	if !b.ArrivalDate.IsZero() {
		writeField(&s, "Arrival-Date", b.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, r := range b.Recipients {
		s.WriteString("\r\n")
		if r.ORcpt != "" { // RFC 3464 §2.3.1
			writeField(&s, "Original-Recipient", originalField(r.ORcpt))
		}
		writeField(&s, "Final-Recipient", recipientField(r.Address))
		writeField(&s, "Action", r.Action)
		writeField(&s, "Status", r.Status)
		if r.RemoteMTA != "" {
			writeField(&s, "Remote-MTA", "dns; "+r.RemoteMTA)
		}
		if r.Diagnostic != "" {
			writeField(&s, "Diagnostic-Code", "smtp; "+escapeNonASCII(oneLine(r.Diagnostic), false))
		}
		if !r.LastAttempt.IsZero() {
			writeField(&s, "Last-Attempt-Date", r.LastAttempt.Format(time.RFC1123Z))
		}
		if r.Action == ActionDelayed && !r.WillRetryUntil.IsZero() {
			writeField(&s, "Will-Retry-Until", r.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return s.Bytes()
}

// recipientField types an address for Final-Recipient: rfc822, or RFC
// 6533's utf-8 type, whose xtext form keeps message/delivery-status
// 7-bit as RFC 3464 §2.1 requires.
func recipientField(addr string) string {
	if address.IsASCII(addr) {
		return "rfc822; " + addr
	}
	return "utf-8; " + escapeNonASCII(addr, true)
}

// originalField is ORCPT as the client typed it: its address type and
// the address, which for utf-8 is escaped as in recipientField.
func originalField(o ORcpt) string {
	typ, addr, _ := strings.Cut(string(o), ";")
	return typ + "; " + escapeNonASCII(addr, typ == "utf-8")
}

// escapeNonASCII writes each non-ASCII or control character as RFC
// 6533's "\x{HEX}"; strict also escapes what utf-8-addr-xtext forbids
// (space, "+", "=", "\").
func escapeNonASCII(s string, strict bool) string {
	var out strings.Builder
	for _, r := range s {
		plain := r > 0x20 && r < 0x7f || r == ' ' && !strict
		if strict && (r == '+' || r == '=' || r == '\\') {
			plain = false
		}
		if plain {
			out.WriteRune(r)
		} else {
			fmt.Fprintf(&out, `\x{%02X}`, r)
		}
	}
	return out.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// writeField writes "Name: value", folded (RFC 5322 §2.2.3).
func writeField(w *bytes.Buffer, name, value string) { fold(w, name+":", value, " ") }

// fold writes head and value's words, starting a new line (indent
// first) before a word that would take the line past 78 characters.
func fold(w io.StringWriter, head, value, indent string) {
	line := head
	for i, word := range strings.Split(value, " ") {
		if i > 0 && len(line)+1+len(word) > 78 {
			w.WriteString(line + "\r\n")
			line = indent[:len(indent)-1]
		}
		line += " " + word
	}
	w.WriteString(line + "\r\n")
}

// writePart adds one part; text with non-ASCII bytes goes
// quoted-printable (RFC 6522 allows it for text/rfc822-headers too).
func writePart(w *message.Writer, ctype, desc string, body []byte) error {
	var h message.Header
	params := map[string]string{}
	if strings.HasPrefix(ctype, "text/") {
		params["charset"] = "utf-8"
		if !address.IsASCII(string(body)) {
			h.Set("Content-Transfer-Encoding", "quoted-printable")
		}
	}
	h.Set("Content-Description", desc)
	h.SetContentType(ctype, params)
	pw, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := pw.Write(body); err != nil {
		return err
	}
	return pw.Close()
}

// ReadHeaderBlock returns the header of the message in r, up to the
// blank line that ends it, at most max bytes and with CRLF line ends.
// It copies lines rather than parsing fields, so that a malformed
// header still yields a bounce; a line cut off by max is left out.
func ReadHeaderBlock(r io.Reader, max int64) ([]byte, error) {
	lr := &io.LimitedReader{R: r, N: max}
	br := bufio.NewReader(lr)
	var out bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		complete := strings.HasSuffix(line, "\n") || lr.N > 0                // the last line of a body-less message
		line = strings.ReplaceAll(strings.TrimRight(line, "\r\n"), "\r", "") // no bare CR
		if line == "" || !complete {
			return out.Bytes(), nil
		}
		out.WriteString(line + "\r\n")
		if err != nil {
			return out.Bytes(), nil
		}
	}
}

package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
)

// jsonMessage is the body of a JSON submission (docs/http-api.md).
type jsonMessage struct {
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc"`
	Bcc         []string          `json:"bcc"`
	Subject     string            `json:"subject"`
	Text        string            `json:"text"`
	HTML        string            `json:"html"`
	Attachments []jsonAttachment  `json:"attachments"`
	Headers     map[string]string `json:"headers"`
}

type jsonAttachment struct {
	Filename      string `json:"filename"`
	ContentType   string `json:"content_type"`
	ContentBase64 string `json:"content_base64"`
}

// builtMessage is a JSON submission made into a message and its envelope.
type builtMessage struct {
	From string   // envelope sender: the From address
	To   []string // envelope recipients: To, Cc and Bcc
	Data []byte   // the message, CRLF line ends, no Bcc field
}

// reservedHeaders are fields the builder writes itself or that would
// change the message's structure or its trace; "headers" may not set them.
var reservedHeaders = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "date": true,
	"message-id": true, "mime-version": true, "content-type": true, "content-transfer-encoding": true,
	"content-disposition": true, "received": true, "return-path": true, "sender": true,
}

// build makes the message of m with go-message: a text/plain or
// text/html part, multipart/alternative with both (RFC 2046 §5.1.4),
// inside multipart/mixed with attachments; Date and Message-ID added
// (RFC 5322 §3.6.1, §3.6.4; RFC 6409 §8 would add them too).
func build(m *jsonMessage, hostname string, now time.Time) (*builtMessage, error) {
	h, out, err := header(m, hostname, now)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if len(m.Attachments) == 0 {
		err = writeText(&buf, h, m)
	} else {
		err = writeMixed(&buf, h, m)
	}
	if err != nil {
		return nil, err
	}
	out.Data = buf.Bytes()
	return out, nil
}

// header checks the addresses and extra fields and makes the top header.
func header(m *jsonMessage, hostname string, now time.Time) (mail.Header, *builtMessage, error) {
	var h mail.Header
	out := &builtMessage{}
	from, err := netmail.ParseAddress(m.From)
	if err != nil {
		return h, nil, fmt.Errorf("from: %q is not an address: %v", m.From, err)
	}
	out.From = from.Address
	h.SetAddressList("From", []*mail.Address{{Name: from.Name, Address: from.Address}})
	for _, f := range []struct {
		name string
		list []string
	}{{"To", m.To}, {"Cc", m.Cc}, {"Bcc", m.Bcc}} {
		addrs, err := parseList(f.name, f.list)
		if err != nil {
			return h, nil, err
		}
		for _, a := range addrs {
			out.To = append(out.To, a.Address)
		}
		if f.name != "Bcc" && len(addrs) > 0 { // RFC 5322 §3.6.3: Bcc stays off the message
			h.SetAddressList(f.name, addrs)
		}
	}
	if len(out.To) == 0 {
		return h, nil, fmt.Errorf("to, cc, bcc: give at least one recipient")
	}
	for name, value := range m.Headers {
		if err := checkField(name, value); err != nil {
			return h, nil, err
		}
		h.Set(name, mime.QEncoding.Encode("utf-8", value))
	}
	h.SetSubject(m.Subject)
	h.SetDate(now)
	h.SetMessageID(fmt.Sprintf("%d.%s@%s", now.UnixNano(), randomToken(), hostname))
	return h, out, nil
}

func parseList(field string, list []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, s := range list {
		a, err := netmail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an address: %v", strings.ToLower(field), s, err)
		}
		out = append(out, &mail.Address{Name: a.Name, Address: a.Address})
	}
	return out, nil
}

// checkField refuses an extra header field that would break the message
// or take over one the builder writes: RFC 5322 §2.2 field names
// (printable ASCII but colon), values without line breaks or NUL.
func checkField(name, value string) error {
	if name == "" || reservedHeaders[strings.ToLower(name)] {
		return fmt.Errorf("headers: %q may not be set there; use the JSON field of its own, or none", name)
	}
	for _, c := range []byte(name) {
		if c < 33 || c > 126 || c == ':' {
			return fmt.Errorf("headers: %q is not a field name (RFC 5322 §2.2)", name)
		}
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("headers: the value of %q holds a line break or NUL", name)
	}
	return nil
}

// writeText writes a message that is only text: one part, or both
// forms as multipart/alternative.
func writeText(w io.Writer, h mail.Header, m *jsonMessage) error {
	if m.Text != "" && m.HTML != "" {
		iw, err := mail.CreateInlineWriter(w, h)
		if err != nil {
			return err
		}
		if err := writeAlternatives(iw, m); err != nil {
			return err
		}
		return iw.Close()
	}
	body, ctype := singleText(m)
	h.SetContentType(ctype, map[string]string{"charset": "utf-8"})
	pw, err := mail.CreateSingleInlineWriter(w, h)
	return writeAndClose(pw, body, err)
}

// singleText is the one text form of a message that has not both.
func singleText(m *jsonMessage) (body, ctype string) {
	if m.HTML != "" {
		return m.HTML, "text/html"
	}
	return m.Text, "text/plain"
}

// writeAndClose writes body to the part pw that err came with, and ends it.
func writeAndClose(pw io.WriteCloser, body string, err error) error {
	if err != nil {
		return err
	}
	if _, err := io.WriteString(pw, body); err != nil {
		return err
	}
	return pw.Close()
}

// writeAlternatives writes the text and the HTML, simplest first
// (RFC 2046 §5.1.4: the last part is the preferred one).
func writeAlternatives(iw *mail.InlineWriter, m *jsonMessage) error {
	for _, p := range []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		var ph mail.InlineHeader
		ph.SetContentType(p.ctype, map[string]string{"charset": "utf-8"})
		pw, err := iw.CreatePart(ph)
		if err := writeAndClose(pw, p.body, err); err != nil {
			return err
		}
	}
	return nil
}

// writeMixed writes the text (if any) then each attachment.
func writeMixed(w io.Writer, h mail.Header, m *jsonMessage) error {
	mw, err := mail.CreateWriter(w, h)
	if err != nil {
		return err
	}
	if err := writeInline(mw, m); err != nil {
		return err
	}
	for i, a := range m.Attachments {
		if err := writeAttachment(mw, i, a); err != nil {
			return err
		}
	}
	return mw.Close()
}

// writeInline writes the text part of a message with attachments: both
// forms as multipart/alternative, one alone, or nothing.
func writeInline(mw *mail.Writer, m *jsonMessage) error {
	if m.Text != "" && m.HTML != "" {
		iw, err := mw.CreateInline()
		if err != nil {
			return err
		}
		if err := writeAlternatives(iw, m); err != nil {
			return err
		}
		return iw.Close()
	}
	body, ctype := singleText(m)
	if body == "" {
		return nil
	}
	var ph mail.InlineHeader
	ph.SetContentType(ctype, map[string]string{"charset": "utf-8"})
	pw, err := mw.CreateSingleInline(ph)
	return writeAndClose(pw, body, err)
}

func writeAttachment(mw *mail.Writer, i int, a jsonAttachment) error {
	data, err := base64.StdEncoding.DecodeString(a.ContentBase64)
	if err != nil {
		return fmt.Errorf("attachments[%d].content_base64: %v", i, err)
	}
	ctype := a.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil || strings.HasPrefix(mt, "multipart/") || strings.ContainsAny(ctype, "\r\n") {
		return fmt.Errorf("attachments[%d].content_type: %q is not a single-part media type", i, ctype)
	}
	if a.Filename == "" || strings.ContainsAny(a.Filename, "\r\n\x00/\\") {
		return fmt.Errorf("attachments[%d].filename: give a file name without line breaks or slashes", i)
	}
	var ah mail.AttachmentHeader
	ah.SetContentType(mt, params)
	ah.SetFilename(a.Filename)
	pw, err := mw.CreateAttachment(ah)
	if err != nil {
		return err
	}
	if _, err := pw.Write(data); err != nil {
		return err
	}
	return pw.Close()
}

func randomToken() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

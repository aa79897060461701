package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// payload is the JSON body of a request; docs/webhooks.md describes each
// field. Lists are never null, so a receiver can iterate without checks.
type payload struct {
	ID          string       `json:"id"`
	Recipient   string       `json:"recipient"`
	Sender      string       `json:"sender"`
	ReceivedAt  string       `json:"received_at"`
	Size        int          `json:"size"`
	Headers     [][2]string  `json:"headers"`
	Subject     string       `json:"subject"`
	From        []address    `json:"from"`
	To          []address    `json:"to"`
	Cc          []address    `json:"cc"`
	MessageID   string       `json:"message_id"`
	Date        string       `json:"date"`
	Text        string       `json:"text"`
	HTML        string       `json:"html"`
	Attachments []attachment `json:"attachments"`
	RawBase64   string       `json:"raw_base64,omitempty"`
	MIMEError   string       `json:"mime_error,omitempty"`
}

type address struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

type attachment struct {
	Filename      string `json:"filename"`
	ContentType   string `json:"content_type"`
	Size          int    `json:"size"`
	ContentBase64 []byte `json:"content_base64"` // encoding/json writes []byte as base64
}

// envelope is what the MDA says about one copy.
type envelope struct {
	id, recipient, sender string
}

// words decodes RFC 2047 encoded-words in any charset go-message knows.
var words = &mime.WordDecoder{CharsetReader: charset.Reader}

// buildPayload turns one message (CRLF line ends) into the JSON body.
// A MIME structure that cannot be parsed to the end still gives what
// was read before the fault, and says so in mime_error; the message is
// never refused for its form, since it was accepted for delivery.
func buildPayload(env envelope, raw []byte, includeRaw bool) ([]byte, error) {
	p := &payload{ID: env.id, Recipient: env.recipient, Sender: env.sender, Size: len(raw),
		Headers: [][2]string{}, From: []address{}, To: []address{}, Cc: []address{}, Attachments: []attachment{}}
	if includeRaw {
		p.RawBase64 = base64.StdEncoding.EncodeToString(raw)
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		p.MIMEError = err.Error()
		return json.Marshal(p)
	}
	p.note(err)
	p.header(mail.Header{Header: e.Header})
	p.parts(mail.NewReader(e))
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("webhook: encode JSON: %w", err)
	}
	return b, nil
}

// note keeps the first MIME problem met.
func (p *payload) note(err error) {
	if err != nil && p.MIMEError == "" {
		p.MIMEError = err.Error()
	}
}

// header fills the header fields in, decoded (RFC 2047), in their order,
// each name as the message writes it.
func (p *payload) header(h mail.Header) {
	for f := h.Fields(); f.Next(); {
		p.Headers = append(p.Headers, [2]string{fieldName(f), decodeWords(f.Value())})
	}
	p.Subject = decodeWords(h.Get("Subject"))
	p.From, p.To, p.Cc = addresses(h, "From"), addresses(h, "To"), addresses(h, "Cc")
	p.MessageID, _ = h.MessageID()
	if d, err := h.Date(); err == nil && h.Get("Date") != "" {
		p.Date = d.Format(time.RFC3339)
	}
	p.ReceivedAt = receivedAt(h.Get("Received"))
}

// fieldName is the field's name as written; go-message's Key is
// canonicalised ("Message-Id").
func fieldName(f textproto.HeaderFields) string {
	if raw, err := f.Raw(); err == nil {
		if name, _, ok := bytes.Cut(raw, []byte(":")); ok {
			return string(bytes.TrimRight(name, " \t"))
		}
	}
	return f.Key()
}

// decodeWords decodes encoded-words; a value that does not decode stays
// as it came.
func decodeWords(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	if d, err := words.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// addresses parses an address list field; one that does not parse
// gives none (the field itself is in headers).
func addresses(h mail.Header, key string) []address {
	list, err := h.AddressList(key)
	out := []address{}
	if err != nil {
		return out
	}
	for _, a := range list {
		out = append(out, address{Name: a.Name, Address: a.Address})
	}
	return out
}

// receivedAt is the date of the topmost Received field, which postline
// wrote when the message came in (RFC 5322 §3.6.7: the date follows the
// last ";"); "" when there is none.
func receivedAt(received string) string {
	i := strings.LastIndexByte(received, ';')
	if i < 0 {
		return ""
	}
	t, err := netmail.ParseDate(strings.TrimSpace(received[i+1:]))
	if err != nil {
		return ""
	}
	return t.Format(time.RFC3339)
}

// parts walks the MIME tree (RFC 2045, RFC 2046): the first inline
// text/plain part is the text, other inline text/plain parts are added
// to it, the first inline text/html part is the html, and every other
// leaf part is an attachment. Transfer encodings and charsets are
// decoded; text arrives in UTF-8.
func (p *payload) parts(r *mail.Reader) {
	for {
		part, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil && !message.IsUnknownCharset(err) {
			p.note(err)
			return
		}
		p.note(err)
		body, err := io.ReadAll(part.Body)
		if err != nil {
			p.note(err)
			return
		}
		p.add(partHeader(part), body)
	}
}

// partHeader digs the part's own header out of the mail package's two
// header types.
func partHeader(part *mail.Part) message.Header {
	switch h := part.Header.(type) {
	case *mail.InlineHeader:
		return h.Header
	case *mail.AttachmentHeader:
		return h.Header
	}
	return message.Header{}
}

func (p *payload) add(h message.Header, body []byte) {
	ct, _, _ := h.ContentType()
	disp, _, _ := h.ContentDisposition()
	name := filename(h)
	inline := disp != "attachment" && name == ""
	switch {
	case inline && ct == "text/plain" && p.Text == "":
		p.Text = string(body)
	case inline && ct == "text/plain":
		p.Text += "\n" + string(body)
	case inline && ct == "text/html" && p.HTML == "":
		p.HTML = string(body)
	default:
		p.Attachments = append(p.Attachments, attachment{Filename: name, ContentType: ct,
			Size: len(body), ContentBase64: body})
	}
}

// filename is the part's file name: Content-Disposition's filename
// (RFC 2183, RFC 2231), else Content-Type's older name parameter.
func filename(h message.Header) string {
	name, _ := (&mail.AttachmentHeader{Header: h}).Filename()
	return decodeWords(name)
}

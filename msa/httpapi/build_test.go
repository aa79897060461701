package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"postline/reply"
)

func TestBuildAlternativeAndBcc(t *testing.T) {
	m := &jsonMessage{From: "Alice <alice@example.test>", To: []string{"bob@example.org"}, Bcc: []string{"carol@example.net"},
		Subject: "Hi", Text: "plain", HTML: "<b>rich</b>", Headers: map[string]string{"Reply-To": "help@example.test"}}
	b, err := build(m, "mail.example.test", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if b.From != "alice@example.test" || strings.Join(b.To, ",") != "bob@example.org,carol@example.net" {
		t.Errorf("envelope %s -> %v", b.From, b.To)
	}
	data := string(b.Data)
	if strings.Contains(data, "carol") {
		t.Error("Bcc recipient shown in the message")
	}
	r, err := mail.CreateReader(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if ct, _, _ := r.Header.ContentType(); ct != "multipart/alternative" {
		t.Errorf("Content-Type %s, want multipart/alternative", ct)
	}
	if id, _ := r.Header.MessageID(); !strings.HasSuffix(id, "@mail.example.test") {
		t.Errorf("Message-ID %q", id)
	}
	if d, _ := r.Header.Date(); d.Unix() != 1700000000 {
		t.Errorf("Date %v", d)
	}
	var parts []string
	for {
		p, err := r.NextPart()
		if err != nil {
			break
		}
		ct, _, _ := p.Header.(*mail.InlineHeader).ContentType()
		parts = append(parts, ct)
	}
	if strings.Join(parts, ",") != "text/plain,text/html" {
		t.Errorf("parts %v", parts)
	}
}

func TestBuildRefusesBrokenInput(t *testing.T) {
	for name, m := range map[string]*jsonMessage{
		"no recipient":     {From: "a@example.test", Text: "x"},
		"bad from":         {From: "not an address", To: []string{"b@example.org"}},
		"header injection": {From: "a@example.test", To: []string{"b@example.org"}, Headers: map[string]string{"X-A": "v\r\nBcc: evil@example.org"}},
		"reserved header":  {From: "a@example.test", To: []string{"b@example.org"}, Headers: map[string]string{"content-type": "text/html"}},
		"bad field name":   {From: "a@example.test", To: []string{"b@example.org"}, Headers: map[string]string{"X A": "v"}},
		"bad base64":       {From: "a@example.test", To: []string{"b@example.org"}, Attachments: []jsonAttachment{{Filename: "f", ContentBase64: "!!"}}},
		"multipart attach": {From: "a@example.test", To: []string{"b@example.org"}, Attachments: []jsonAttachment{{Filename: "f", ContentType: "multipart/mixed"}}},
		"filename with CR": {From: "a@example.test", To: []string{"b@example.org"}, Attachments: []jsonAttachment{{Filename: "a\rb"}}},
	} {
		if _, err := build(m, "h", time.Now()); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

func TestFromReply(t *testing.T) {
	for _, c := range []struct {
		r         *smtp.SMTPError
		http      int
		code, enh string
	}{
		{reply.SenderNotOwned, 403, "sender_not_owned", "5.7.1"},
		{reply.HeaderFromNotOwn, 403, "sender_not_owned", "5.7.1"},
		{reply.MTAUnavailable, 503, "mta_unavailable", "4.3.0"},
		{reply.TooLarge("size", 10), 413, "message_too_big", "5.3.4"},
		{reply.UnknownUser, 422, "recipient_rejected", "5.1.1"},
		{reply.BadRecipient, 400, "bad_address", "5.1.3"},
		{reply.New(550, 5, 7, 1, "message refused by content filter"), 422, "rejected", "5.7.1"}, // a plugin's, not the sender rule
		{reply.New(451, 4, 7, 1, "greylisted"), 429, "deferred", "4.7.1"},
		{reply.New(451, 4, 7, 0, "filter x unavailable"), 429, "deferred", "4.7.0"},
		{reply.New(452, 4, 3, 1, "Insufficient system storage"), 503, "temporary_failure", "4.3.1"},
		{reply.TooManyRecipients, 400, "too_many_recipients", "4.5.3"},
	} {
		e := fromReply(c.r)
		if e.HTTP != c.http || e.Code != c.code || e.Status != c.enh || e.SMTPCode != c.r.Code {
			t.Errorf("%d %v %q -> %+v, want %d %s %s", c.r.Code, c.r.EnhancedCode, c.r.Message, e, c.http, c.code, c.enh)
		}
	}
}

func TestCRLFAndSizeLimit(t *testing.T) {
	var out strings.Builder
	buf := make([]byte, 3)
	r := newCRLF(strings.NewReader("a\nb\r\nc\rd\n"))
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if out.String() != "a\r\nb\r\nc\rd\r\n" {
		t.Errorf("crlf: %q", out.String())
	}
	l := limitSize(strings.NewReader("12345"), 4)
	b := make([]byte, 10)
	n, err := l.Read(b)
	if rerr := replyOf(err); rerr == nil || rerr.Code != 552 || n != 4 {
		t.Errorf("limit 4 of 5: n=%d err=%v", n, err)
	}
	l = limitSize(strings.NewReader("1234"), 4)
	if n, _ := l.Read(b); n != 4 {
		t.Errorf("limit 4 of 4: n=%d", n)
	}
}

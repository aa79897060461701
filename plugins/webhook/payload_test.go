package main

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// A typical message from a mail client: multipart/mixed holding a
// multipart/alternative (text in ISO-8859-1, quoted-printable; HTML in
// UTF-8, base64) and a PDF, with RFC 2047 words in the header.
const mixedMsg = "Received: from mx.sender.test (mx.sender.test [192.0.2.1])\r\n" +
	"\tby mail.example.org with ESMTPS id Q123; Mon, 7 Dec 2026 14:00:00 +0100\r\n" +
	"Received: from laptop by mx.sender.test; Mon, 7 Dec 2026 13:59:00 +0100\r\n" +
	"From: =?UTF-8?Q?Zo=C3=AB_M=C3=BCller?= <zoe@sender.test>\r\n" +
	"To: Orders <orders@example.org>, =?ISO-8859-1?Q?J=F6rg?= <joerg@example.org>\r\n" +
	"Cc: audit@example.org\r\n" +
	"Subject: =?ISO-8859-1?Q?Bestellung_f=FCr?= =?UTF-8?B?4oKsIDQy?=\r\n" +
	"Date: Mon, 7 Dec 2026 13:58:00 +0100\r\n" +
	"Message-ID: <abc.123@sender.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=ISO-8859-1\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Gr=FC=DFe, one widget =3D 3 =E4pfel\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+R3LDvMOfZTwvcD4=\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"ignored.pdf\"\r\n" +
	"Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQKJcOkw7w=\r\n" +
	"--outer\r\n" +
	"Content-Type: image/png; name=\"=?UTF-8?Q?l=C3=B6go.png?=\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"iVBORw0K\r\n" +
	"--outer--\r\n"

func decodePayload(t *testing.T, body []byte) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	return p
}

func TestPayloadMultipart(t *testing.T) {
	raw := []byte(mixedMsg)
	b, err := buildPayload(envelope{id: "Q123", recipient: "orders@example.org", sender: "zoe@sender.test"}, raw, false)
	if err != nil {
		t.Fatal(err)
	}
	p := decodePayload(t, b)
	if p.ID != "Q123" || p.Recipient != "orders@example.org" || p.Sender != "zoe@sender.test" || p.Size != len(raw) {
		t.Errorf("envelope: %+v", p)
	}
	if p.Subject != "Bestellung für€ 42" {
		t.Errorf("subject %q", p.Subject)
	}
	wantAddrs := func(field string, got []address, want ...address) {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, want %+v", field, got, want)
		}
	}
	wantAddrs("from", p.From, address{"Zoë Müller", "zoe@sender.test"})
	wantAddrs("to", p.To, address{"Orders", "orders@example.org"}, address{"Jörg", "joerg@example.org"})
	wantAddrs("cc", p.Cc, address{"", "audit@example.org"})
	if p.MessageID != "abc.123@sender.test" || p.Date != "2026-12-07T13:58:00+01:00" || p.ReceivedAt != "2026-12-07T14:00:00+01:00" {
		t.Errorf("message_id %q date %q received_at %q", p.MessageID, p.Date, p.ReceivedAt)
	}
	if len(p.Headers) != 10 || p.Headers[0][0] != "Received" || p.Headers[2] != [2]string{"From", "Zoë Müller <zoe@sender.test>"} ||
		p.Headers[7] != [2]string{"Message-ID", "<abc.123@sender.test>"} || p.Headers[9][0] != "Content-Type" {
		t.Errorf("headers: %q", p.Headers)
	}
	if p.Text != "Grüße, one widget = 3 äpfel" || p.HTML != "<p>Grüße</p>" {
		t.Errorf("text %q html %q", p.Text, p.HTML)
	}
	want := []attachment{
		{Filename: "Rechnung März.pdf", ContentType: "application/pdf", Size: 14, ContentBase64: []byte("%PDF-1.4\n%äü")},
		{Filename: "lögo.png", ContentType: "image/png", Size: 6, ContentBase64: []byte("\x89PNG\r\n")},
	}
	if !reflect.DeepEqual(p.Attachments, want) {
		t.Errorf("attachments %+v, want %+v", p.Attachments, want)
	}
	if p.RawBase64 != "" || p.MIMEError != "" || strings.Contains(string(b), `"raw_base64"`) {
		t.Errorf("raw %q, mime_error %q", p.RawBase64, p.MIMEError)
	}
	if !strings.Contains(string(b), `"content_base64":"JVBERi0xLjQKJcOkw7w="`) {
		t.Errorf("attachment not base64 in JSON: %s", b)
	}
}

// A plain message has no attachments and empty lists, never null; the
// raw message comes on request, with CRLF line ends; an unknown charset
// leaves the text as it came and says so.
func TestPayloadPlainRawAndOddities(t *testing.T) {
	ep := newEndpoint(t, status(200))
	f := configured(t, ep.URL, map[string]any{"addresses": addrs("orders@example.org"), "include_raw": true})
	msg := "Subject: plain\r\nContent-Type: text/plain; charset=x-no-such\r\n\r\nline 1\r\nline 2\r\n"
	deliver(t, f, delivery("orders@example.org", msg))
	body := ep.requests()[0].body
	p := decodePayload(t, body)
	raw, _ := base64.StdEncoding.DecodeString(p.RawBase64)
	if string(raw) != msg || p.Size != len(msg) {
		t.Errorf("raw %q size %d", raw, p.Size)
	}
	if p.Text != "line 1\r\nline 2\r\n" || p.MIMEError == "" || p.ReceivedAt != "" || p.Date != "" {
		t.Errorf("text %q mime_error %q received_at %q date %q", p.Text, p.MIMEError, p.ReceivedAt, p.Date)
	}
	for _, field := range []string{`"to":[]`, `"cc":[]`, `"from":[]`, `"attachments":[]`} {
		if !strings.Contains(string(body), field) {
			t.Errorf("no %s in %s", field, body)
		}
	}
}

// A broken multipart still posts what came before the fault.
func TestPayloadBrokenMultipart(t *testing.T) {
	msg := "Subject: broken\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nfirst\r\n--b\r\nContent-Type: text/html\r\n"
	b, err := buildPayload(envelope{id: "Q"}, []byte(msg), false)
	if err != nil {
		t.Fatal(err)
	}
	p := decodePayload(t, b)
	if p.Subject != "broken" || p.Text != "first" || p.MIMEError == "" {
		t.Errorf("%+v", p)
	}
}

func TestToCRLF(t *testing.T) {
	for in, want := range map[string]string{"": "", "a\nb\n": "a\r\nb\r\n", "a\r\nb": "a\r\nb", "\n\n": "\r\n\r\n"} {
		if got := string(toCRLF([]byte(in))); got != want {
			t.Errorf("%q: %q", in, got)
		}
	}
}

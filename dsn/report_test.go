package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

const testOriginal = "Received: from client.example.org by mail.example.org\r\n" +
	"From: Alice <alice@example.org>\r\n" +
	"To: Bob <bob@example.net>\r\n" +
	"Subject: lunch?\r\n" +
	"Message-ID: <1234@example.org>\r\n" +
	"\r\n" +
	"SECRET BODY LINE: the body must never come back in a bounce.\r\n"

var (
	testArrival = time.Date(2026, 11, 3, 9, 30, 0, 0, time.UTC)
	testNow     = time.Date(2026, 11, 3, 9, 31, 5, 0, time.FixedZone("", 3600))
)

// parsedBounce is a bounce read back with go-message.
type parsedBounce struct {
	raw     []byte
	header  mail.Header
	types   []string            // media types of the parts, in order
	params  []map[string]string // their parameters
	text    string              // the human-readable part, decoded, on one line
	message textproto.Header    // per-message DSN fields
	rcpts   []textproto.Header  // per-recipient DSN fields
	headers string              // the text/rfc822-headers part, decoded
}

func buildAndParse(t *testing.T, b Report, original string) *parsedBounce {
	t.Helper()
	raw, err := Build(b, strings.NewReader(original))
	if err != nil {
		t.Fatal(err)
	}
	if bad := regexp.MustCompile(`[^\r]\n|\r[^\n]`).Find(raw); bad != nil {
		t.Fatalf("line end other than CRLF: %q", bad)
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read bounce: %v\n%s", err, raw)
	}
	p := &parsedBounce{raw: raw, header: mail.Header{Header: e.Header}}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("bounce is not multipart:\n%s", raw)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		typ, params, _ := part.Header.ContentType()
		p.types, p.params = append(p.types, typ), append(p.params, params)
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "text/plain":
			p.text = oneLine(string(body)) // unfolded, for Contains
		case "message/delivery-status":
			p.parseStatus(t, body)
		case "text/rfc822-headers", "message/rfc822":
			p.headers = string(body)
		}
	}
	return p
}

// parseStatus splits the report into its groups of fields (RFC 3464 §2).
func (p *parsedBounce) parseStatus(t *testing.T, body []byte) {
	br := bufio.NewReader(bytes.NewReader(body))
	for first := true; ; first = false {
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			return
		}
		h, err := textproto.ReadHeader(br)
		if err != nil {
			t.Fatalf("delivery-status fields: %v\n%s", err, body)
		}
		if first {
			p.message = h
		} else {
			p.rcpts = append(p.rcpts, h)
		}
	}
}

func wantField(t *testing.T, h textproto.Header, name, want string) {
	t.Helper()
	if got := oneLine(h.Get(name)); got != want || (want == "" && h.Has(name)) {
		t.Errorf("%s: %q, want %q", name, got, want)
	}
}

func remoteFailure() Recipient {
	return Recipient{Address: "bob@example.net", Action: ActionFailed, Status: "5.1.1",
		RemoteMTA: "mx.example.net", Diagnostic: "550 5.1.1 <bob@example.net>: no such user",
		LastAttempt: testNow}
}

func testBounce(rcpts ...Recipient) Report {
	return Report{ReportingMTA: "mail.example.org", QueueID: "06K03AGGXD8H8HT5",
		OriginalSender: "alice@example.org", ArrivalDate: testArrival, Now: testNow, Recipients: rcpts}
}

// wantTopHeader checks the report's own header fields and parts.
func wantTopHeader(t *testing.T, p *parsedBounce, subject string) {
	t.Helper()
	from, err := p.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "MAILER-DAEMON@mail.example.org" || from[0].Name != "Mail Delivery System" {
		t.Errorf("From: %v, %v", from, err)
	}
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "alice@example.org" {
		t.Errorf("To: %v, %v", to, err)
	}
	if s, _ := p.header.Subject(); s != subject {
		t.Errorf("Subject: %q, want %q", s, subject)
	}
	if d, err := p.header.Date(); err != nil || !d.Equal(testNow) {
		t.Errorf("Date: %v, %v; want %v", d, err, testNow)
	}
	if id, err := p.header.MessageID(); err != nil || !strings.HasSuffix(id, "@mail.example.org") {
		t.Errorf("Message-ID: %q, %v", id, err)
	}
	for name, want := range map[string]string{"Auto-Submitted": "auto-replied", "MIME-Version": "1.0"} {
		if got := p.header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	typ, params, _ := p.header.ContentType()
	if typ != "multipart/report" || params["report-type"] != "delivery-status" || params["boundary"] == "" {
		t.Errorf("Content-Type: %s %v", typ, params)
	}
	if want := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}; strings.Join(p.types, " ") != strings.Join(want, " ") {
		t.Fatalf("parts %v, want %v", p.types, want)
	}
}

func TestBounceSingleRemoteFailure(t *testing.T) {
	p := buildAndParse(t, testBounce(remoteFailure()), testOriginal)
	wantTopHeader(t, p, "Undelivered Mail Returned to Sender")
	for _, s := range []string{"<bob@example.net>", "mx.example.net", "550 5.1.1 <bob@example.net>: no such user", "mail.example.org"} {
		if !strings.Contains(p.text, s) {
			t.Errorf("text part lacks %q:\n%s", s, p.text)
		}
	}
	wantField(t, p.message, "Reporting-MTA", "dns; mail.example.org")
	wantField(t, p.message, "X-Postline-Queue-ID", "06K03AGGXD8H8HT5")
	wantField(t, p.message, "Arrival-Date", "Tue, 03 Nov 2026 09:30:00 +0000")
	if len(p.rcpts) != 1 {
		t.Fatalf("%d recipient groups, want 1", len(p.rcpts))
	}
	r := p.rcpts[0]
	wantField(t, r, "Final-Recipient", "rfc822; bob@example.net")
	wantField(t, r, "Action", "failed")
	wantField(t, r, "Status", "5.1.1")
	wantField(t, r, "Remote-MTA", "dns; mx.example.net")
	wantField(t, r, "Diagnostic-Code", "smtp; 550 5.1.1 <bob@example.net>: no such user")
	wantField(t, r, "Last-Attempt-Date", "Tue, 03 Nov 2026 09:31:05 +0100")
	wantField(t, r, "Will-Retry-Until", "")

	wantHeaders := testOriginal[:strings.Index(testOriginal, "\r\n\r\n")+2]
	if p.headers != wantHeaders {
		t.Errorf("headers part %q, want %q", p.headers, wantHeaders)
	}
	// The RFC spelling of the field names, for people and for grep.
	for _, s := range []string{"\r\nReporting-MTA: dns; ", "\r\nRemote-MTA: dns; ", "\r\nX-Postline-Queue-ID: "} {
		if !bytes.Contains(p.raw, []byte(s)) {
			t.Errorf("raw bounce lacks %q", s)
		}
	}
}

func TestBounceSeveralRecipients(t *testing.T) {
	local := Recipient{Address: "carol@example.org", Action: ActionFailed, Status: "5.2.2",
		Diagnostic: "552 5.2.2 <carol@example.org> mailbox full"}
	later := Recipient{Address: "dave@example.com", Action: ActionDelayed, Status: "4.4.1",
		RemoteMTA: "mx.example.com", Diagnostic: "421 4.4.1 try again later",
		WillRetryUntil: testArrival.Add(5 * 24 * time.Hour)}
	p := buildAndParse(t, testBounce(remoteFailure(), local, later), testOriginal)

	if s, _ := p.header.Subject(); s != "Undelivered Mail Returned to Sender" {
		t.Errorf("Subject %q: one failure makes it a bounce", s)
	}
	if len(p.rcpts) != 3 {
		t.Fatalf("%d recipient groups, want 3", len(p.rcpts))
	}
	wantField(t, p.rcpts[0], "Final-Recipient", "rfc822; bob@example.net")
	wantField(t, p.rcpts[1], "Final-Recipient", "rfc822; carol@example.org")
	wantField(t, p.rcpts[1], "Action", "failed")
	wantField(t, p.rcpts[1], "Status", "5.2.2")
	wantField(t, p.rcpts[1], "Remote-MTA", "") // local: no remote MTA
	wantField(t, p.rcpts[1], "Diagnostic-Code", "smtp; 552 5.2.2 <carol@example.org> mailbox full")
	wantField(t, p.rcpts[2], "Final-Recipient", "rfc822; dave@example.com")
	wantField(t, p.rcpts[2], "Action", "delayed")
	wantField(t, p.rcpts[2], "Status", "4.4.1")
	wantField(t, p.rcpts[2], "Remote-MTA", "dns; mx.example.com")
	wantField(t, p.rcpts[2], "Will-Retry-Until", "Sun, 08 Nov 2026 09:30:00 +0000")
	for _, s := range []string{"<carol@example.org>: 552 5.2.2", "<dave@example.com>: host mx.example.com said: 421", "given up", "keep trying"} {
		if !strings.Contains(p.text, s) {
			t.Errorf("text part lacks %q:\n%s", s, p.text)
		}
	}
}

func TestBounceDelayWarning(t *testing.T) {
	later := Recipient{Address: "dave@example.com", Action: ActionDelayed, Status: "4.4.1"}
	p := buildAndParse(t, testBounce(later), testOriginal)
	wantTopHeader(t, p, "Delayed Mail (still being retried)")
	wantField(t, p.rcpts[0], "Action", "delayed")
	wantField(t, p.rcpts[0], "Diagnostic-Code", "")
	if !strings.Contains(p.text, "<dave@example.com>: delivery status 4.4.1") || strings.Contains(p.text, "given up") {
		t.Errorf("text part:\n%s", p.text)
	}
}

func TestBounceUTF8(t *testing.T) {
	r := remoteFailure()
	r.Address = "jörg@example.net"
	r.Diagnostic = "550 5.1.1 Empfänger unbekannt\n550 5.1.1 \u2014 désolé"
	original := "From: Jörg <alice@example.org>\r\nSubject: Grüße\r\n\r\nbody\r\n"
	p := buildAndParse(t, testBounce(r), original)

	if !strings.Contains(p.text, "550 5.1.1 Empfänger unbekannt 550 5.1.1 \u2014 désolé") {
		t.Errorf("text part lacks the UTF-8 reply:\n%s", p.text)
	}
	if !strings.Contains(p.text, "<jörg@example.net>") {
		t.Errorf("text part lacks the UTF-8 recipient:\n%s", p.text)
	}
	wantField(t, p.rcpts[0], "Final-Recipient", `utf-8; j\x{F6}rg@example.net`)
	wantField(t, p.rcpts[0], "Diagnostic-Code", `smtp; 550 5.1.1 Empf\x{E4}nger unbekannt 550 5.1.1 \x{2014} d\x{E9}sol\x{E9}`)
	if p.headers != "From: Jörg <alice@example.org>\r\nSubject: Grüße\r\n" {
		t.Errorf("headers part %q", p.headers)
	}
	for i, c := range p.raw {
		if c >= 0x80 {
			t.Fatalf("byte %d of the bounce is not 7-bit: %q", i, p.raw[max(0, i-20):i+5])
		}
	}
}

func TestBounceOriginalWithoutBody(t *testing.T) {
	for name, original := range map[string]string{
		"blank line":   "Subject: no body\r\nFrom: a@example.org\r\n\r\n",
		"no blank":     "Subject: no body\r\nFrom: a@example.org\r\n",
		"no final EOL": "Subject: no body\r\nFrom: a@example.org",
		"LF ends":      "Subject: no body\nFrom: a@example.org\n",
	} {
		p := buildAndParse(t, testBounce(remoteFailure()), original)
		if p.headers != "Subject: no body\r\nFrom: a@example.org\r\n" {
			t.Errorf("%s: headers part %q", name, p.headers)
		}
	}
}

func TestBounceLeavesBodyOut(t *testing.T) {
	p := buildAndParse(t, testBounce(remoteFailure()), testOriginal)
	if bytes.Contains(p.raw, []byte("SECRET BODY LINE")) {
		t.Fatalf("the original body is in the bounce:\n%s", p.raw)
	}
}

func TestBounceHeaderLimit(t *testing.T) {
	var big strings.Builder
	for big.Len() < maxBounceHeader+1000 {
		big.WriteString("X-Filler: " + strings.Repeat("x", 90) + "\r\n")
	}
	big.WriteString("\r\nbody\r\n")
	p := buildAndParse(t, testBounce(remoteFailure()), big.String())
	if len(p.headers) > maxBounceHeader || len(p.headers) < maxBounceHeader-200 {
		t.Fatalf("headers part of %d bytes, want just under %d", len(p.headers), maxBounceHeader)
	}
	if !strings.HasSuffix(p.headers, strings.Repeat("x", 90)+"\r\n") {
		t.Fatalf("headers part ends with a cut line: %q", p.headers[len(p.headers)-40:])
	}
}

func TestBounceFoldsLongDiagnostic(t *testing.T) {
	r := remoteFailure()
	r.Diagnostic = "550 5.7.1 " + strings.Repeat("policy words ", 40)
	p := buildAndParse(t, testBounce(r), testOriginal)
	wantField(t, p.rcpts[0], "Diagnostic-Code", "smtp; "+oneLine(r.Diagnostic))
	for _, line := range strings.Split(string(p.raw), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}
}

func TestBounceRefusesBadInput(t *testing.T) {
	tests := map[string]func(b *Report){
		"null sender":    func(b *Report) { b.OriginalSender = "" },
		"no host":        func(b *Report) { b.ReportingMTA = "" },
		"no recipient":   func(b *Report) { b.Recipients = nil },
		"bad action":     func(b *Report) { b.Recipients[0].Action = "bounced" },
		"forged envid":   func(b *Report) { b.EnvID = "x\r\nAction: delivered" },
		"forged orcpt":   func(b *Report) { b.Recipients[0].ORcpt = "rfc822;x\nStatus: 2.0.0" },
		"bad status":     func(b *Report) { b.Recipients[0].Status = "550" },
		"status 3.x.x":   func(b *Report) { b.Recipients[0].Status = "3.1.1" },
		"status garbage": func(b *Report) { b.Recipients[0].Status = "5.1.1\r\nX: y" },
		"forged field":   func(b *Report) { b.Recipients[0].Address = "x@y\r\nAction: delivered" },
		"forged host":    func(b *Report) { b.Recipients[0].RemoteMTA = "mx\nStatus: 2.0.0" },
		"forged sender":  func(b *Report) { b.OriginalSender = "a@b\r\nBcc: c@d" },
	}
	for name, spoil := range tests {
		b := testBounce(remoteFailure())
		spoil(&b)
		if _, err := Build(b, strings.NewReader(testOriginal)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestShouldBounce(t *testing.T) {
	if ShouldBounce("") {
		t.Error("the null sender must never get a bounce")
	}
	if !ShouldBounce("alice@example.org") {
		t.Error("a real sender must get a bounce")
	}
}

// A success report (RFC 3461 §4.1 NOTIFY=SUCCESS) carries the ENVID and
// the ORCPT back (RFC 3464 §2.2.1, §2.3.1) and only the header.
func TestReportDeliveredAndRelayed(t *testing.T) {
	b := testBounce(
		Recipient{Address: "bob@example.org", ORcpt: "rfc822;Bob@Example.org", Action: ActionDelivered,
			Status: "2.0.0", Diagnostic: "250 2.0.0 Ok: delivered as 1234.x"},
		Recipient{Address: "carol@example.net", Action: ActionRelayed, Status: "2.0.0",
			RemoteMTA: "mx.example.net", Diagnostic: "250 2.0.0 Ok"})
	b.EnvID, b.Return = "QQ314159", ReturnFull // FULL is for failures only
	p := buildAndParse(t, b, testOriginal)
	if s, _ := p.header.Subject(); s != "Successful Mail Delivery Report" {
		t.Errorf("Subject: %q", s)
	}
	if p.types[2] != "text/rfc822-headers" || strings.Contains(string(p.raw), "SECRET BODY") {
		t.Errorf("a success report returns the header only: parts %v", p.types)
	}
	wantField(t, p.message, "Original-Envelope-Id", "QQ314159")
	wantField(t, p.rcpts[0], "Original-Recipient", "rfc822; Bob@Example.org")
	wantField(t, p.rcpts[0], "Action", "delivered")
	wantField(t, p.rcpts[0], "Status", "2.0.0")
	wantField(t, p.rcpts[1], "Original-Recipient", "")
	wantField(t, p.rcpts[1], "Action", "relayed")
	wantField(t, p.rcpts[1], "Remote-MTA", "dns; mx.example.net")
	for _, s := range []string{"delivered to the mailboxes", "passed on to the recipients' mail systems"} {
		if !strings.Contains(p.text, s) {
			t.Errorf("text lacks %q: %s", s, p.text)
		}
	}
}

// RET=FULL returns a failed message whole, as message/rfc822, unless it
// is too large or 8-bit; RET=HDRS (and no RET) the header only.
func TestReportReturnsWholeMessage(t *testing.T) {
	for _, tc := range []struct {
		name, ret, original, wantType string
	}{
		{"full", ReturnFull, testOriginal, "message/rfc822"},
		{"headers", ReturnHeaders, testOriginal, "text/rfc822-headers"},
		{"default", "", testOriginal, "text/rfc822-headers"},
		{"too large", ReturnFull, testOriginal + strings.Repeat("x\r\n", MaxReturnedMessage/3), "text/rfc822-headers"},
		{"8-bit", ReturnFull, testOriginal + "Grüße\r\n", "text/rfc822-headers"},
	} {
		b := testBounce(remoteFailure())
		b.Return = tc.ret
		p := buildAndParse(t, b, tc.original)
		if p.types[2] != tc.wantType {
			t.Errorf("%s: returned part %s, want %s", tc.name, p.types[2], tc.wantType)
		}
		whole := tc.wantType == "message/rfc822"
		if strings.Contains(p.headers, "SECRET BODY") != whole || !strings.Contains(p.headers, "Subject: lunch?") {
			t.Errorf("%s: returned %q", tc.name, p.headers)
		}
		if strings.Contains(p.text, "Your message is attached.") != whole {
			t.Errorf("%s: text says %q", tc.name, p.text)
		}
	}
}

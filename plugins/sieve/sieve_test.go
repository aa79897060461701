package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"

	"postline/plugins/pb"
	"postline/plugins/sdk"
	"postline/sieve"
)

func TestParseConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"script": "relative.sieve"}, `script: "relative.sieve": give "~/NAME"`},
		{map[string]any{"home": "var/mail"}, `home: "var/mail": give "" (the Maildir folder) or an absolute path`},
		{map[string]any{"max_redirects": int64(1000)}, "max_redirects: 1000: give a number from 0 to 100"},
		{map[string]any{"recipient_delimiter": "+-"}, `recipient_delimiter: "+-": give one character`},
		{map[string]any{"scrpt": "~/x"}, "scrpt: unknown key (known: script, home, max_redirects, recipient_delimiter)"},
	} {
		if _, err := parseConfig(tt.raw); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.raw, err, tt.want)
		}
	}
}

func TestScriptPath(t *testing.T) {
	c, _ := parseConfig(map[string]any{})
	if got := c.scriptPath("ann@example.org", "/var/mail/example.org/ann"); got != "/var/mail/example.org/ann/.dovecot.sieve" {
		t.Errorf("default: %s", got)
	}
	c, _ = parseConfig(map[string]any{"home": "/home/%d/%n", "script": "~/sieve/active.sieve"})
	if got := c.scriptPath("ann@example.org", "/var/mail/x"); got != "/home/example.org/ann/sieve/active.sieve" {
		t.Errorf("home template: %s", got)
	}
}

func TestFolderOf(t *testing.T) {
	for in, want := range map[string]string{"INBOX": "", "inbox": "", "Work": "Work", "Work/2026": "Work.2026", "INBOX.Lists.go": "Lists.go"} {
		if got := folderOf(in); got != want {
			t.Errorf("folderOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// run runs script on msg for ann through the plugin's Deliver, with a
// state folder, and returns the verdict as the host receives it.
func run(t *testing.T, f *filter, script, msg string) *pb.Verdict {
	t.Helper()
	mailbox := t.TempDir()
	if err := os.WriteFile(filepath.Join(mailbox, ".dovecot.sieve"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(msg, "\n\n")
	v, err := sdk.Direct(f).Deliver(context.Background(), &pb.DeliverRequest{
		Recipient: "ann@example.org", Sender: "bob@example.net", QueueId: "Q1", Mailbox: mailbox,
		Header: []byte(head + "\n\n"), Size: int64(len(msg))})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newFilter(t *testing.T) *filter {
	f := &filter{}
	f.SetHost(sdk.Host{Hostname: "mx.example.org", StateDir: t.TempDir()})
	if err := f.Configure(map[string]any{}); err != nil {
		t.Fatal(err)
	}
	return f
}

const message = "From: bob@example.net\nTo: ann@example.org\nSubject: Invoice 7\nMessage-ID: <m1@example.net>\n\nbody\n"

func TestVerdicts(t *testing.T) {
	f := newFilter(t)
	v := run(t, f, `require ["fileinto", "imap4flags", "copy", "mailbox"]; fileinto :create :copy :flags "\\Seen" "Work/Invoices";`, message)
	if len(v.Copies) != 2 || v.Copies[0].Folder != "Work.Invoices" || v.Copies[0].Flags[0] != `\Seen` || v.Copies[1].Folder != "" {
		t.Errorf("fileinto :copy: %v", v)
	}
	v = run(t, f, `redirect "carol@example.com";`, message)
	if v.Action != pb.Verdict_DISCARD || len(v.Redirects) != 1 || v.Redirects[0] != "carol@example.com" {
		t.Errorf("redirect: %v", v)
	}
	v = run(t, f, `require "reject"; reject "go away";`, message)
	if v.Action != pb.Verdict_REJECT || v.Reply.Text != "go away" || v.Reply.Code != 550 {
		t.Errorf("reject: %v", v)
	}
	v = run(t, f, `if header :contains "subject" "x" {`, message) // does not parse
	if v.Action != pb.Verdict_CONTINUE || len(v.Copies) != 0 {
		t.Errorf("broken script: %v", v)
	}
}

// A vacation reply goes once per sender; the reply is from the owner to
// the sender with RFC 3834's fields.
func TestVacation(t *testing.T) {
	f := newFilter(t)
	script := `require "vacation"; vacation :days 1 :subject "Away" "Back on Monday.";`
	v := run(t, f, script, message)
	if len(v.Send) != 1 || v.Send[0].Sender != "" || v.Send[0].Recipients[0] != "bob@example.net" {
		t.Fatalf("first: %v", v)
	}
	reply := string(v.Send[0].Message)
	for _, want := range []string{"From: <ann@example.org>\r\n", "To: <bob@example.net>\r\n", "Subject: Away\r\n",
		"In-Reply-To: <m1@example.net>\r\n", "Auto-Submitted: auto-replied (vacation)\r\n", "\r\n\r\nBack on Monday."} {
		if !strings.Contains(reply, want) {
			t.Errorf("reply lacks %q:\n%s", want, reply)
		}
	}
	if v := run(t, f, script, message); len(v.Send) != 0 {
		t.Errorf("second reply sent: %v", v)
	}
}

func TestReplyMessageMime(t *testing.T) {
	var h textproto.Header
	d := &sdk.Delivery{Recipient: "ann@example.org", Header: h}
	c, _ := parseConfig(map[string]any{})
	msg := string(replyMessage(sieve.Vacation{To: "bob@example.net", Subject: "Auto: ünïcode", Reason: "Content-Type: text/plain\n\nhi\n", Mime: true}, d, "mx", c.owner))
	if !strings.Contains(msg, "Subject: =?utf-8?q?Auto:_=C3=BCn=C3=AFcode?=\r\n") || !strings.HasSuffix(msg, "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi\r\n") {
		t.Errorf("reply:\n%q", msg)
	}
}

// A script cannot sign a reply as someone else, nor add header lines
// through :from; its own extension is its own address.
func TestVacationFrom(t *testing.T) {
	c, _ := parseConfig(map[string]any{})
	for from, want := range map[string]string{
		"":                                  "<ann@example.org>",
		"Ann <ann+away@example.org>":        `"Ann" <ann+away@example.org>`,
		"ceo@bank.example":                  "<ann@example.org>",
		"ceo@bank.example\nX-Injected: yes": "<ann@example.org>",
		"ann@example.org\r\nBcc: x@y.test":  "<ann@example.org>",
	} {
		if got := replyFrom(from, "ann@example.org", c.owner); got != want {
			t.Errorf("replyFrom(%q) = %q, want %q", from, got, want)
		}
	}
}

// The home template takes the user without its extension, and an address
// that would lead out of its home gets none.
func TestScriptPathOfOddAddresses(t *testing.T) {
	c, _ := parseConfig(map[string]any{"home": "/home/%n"})
	for rcpt, want := range map[string]string{
		"Alice+Lists@example.org":              "/home/alice/.dovecot.sieve",
		"alice+/../../../tmp/evil@example.org": "/home/alice/.dovecot.sieve",
		"../bob@example.org":                   "",
		"a/b@example.org":                      "",
	} {
		if got := c.scriptPath(rcpt, "/var/mail/x"); got != want {
			t.Errorf("scriptPath(%q) = %q, want %q", rcpt, got, want)
		}
	}
}

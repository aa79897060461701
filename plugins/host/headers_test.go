package host

import (
	"strings"
	"testing"
)

const received = "Received: from client.example (client.example [192.0.2.1])\r\n" +
	"\tby mx.example.test with ESMTPS id 06K03AGGXD8H8HT5;\r\n" +
	"        Mon, 1 Jan 2024 00:00:00 +0000\r\n"

const dkim = "DKIM-Signature: v=1; a=rsa-sha256; d=example.test;\r\n  b=abc\r\n"

func TestApplyEditsKeepsBytes(t *testing.T) {
	h := received + dkim + "subject:no  space \r\n" + "X-Spam: old\r\n" + "From: A <a@example.test>\r\n" + "x-SPAM:old too\r\n" + "\r\n"
	edits := []HeaderEdit{
		{Remove, "x-spam", ""},
		{Prepend, "Return-Path", "<a@example.test>"},
		{Append, "X-Checked", "yes"},
		{Prepend, "X-Top", "1"},
	}
	got, err := ApplyEdits([]byte(h+"body\r\n"), edits)
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Top: 1\r\nReturn-Path: <a@example.test>\r\n" + received + dkim + "subject:no  space \r\n" +
		"From: A <a@example.test>\r\nX-Checked: yes\r\n\r\nbody\r\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if same, _ := ApplyEdits([]byte(h), nil); string(same) != h {
		t.Error("no edits changed the header")
	}
}

func TestApplyEditsRemoveAfterAddAndOrder(t *testing.T) {
	h := "Return-Path: <old@example.test>\r\nSubject: x\r\n\r\n"
	got, err := ApplyEdits([]byte(h), []HeaderEdit{
		{Append, "X-A", "1"}, {Prepend, "X-B", "2"}, {Remove, "X-A", ""}, {Remove, "return-path", ""},
		{Prepend, "Return-Path", "<new@example.test>"}, {Append, "X-C", "3"}, {Append, "X-D", "4"},
	})
	want := "Return-Path: <new@example.test>\r\nX-B: 2\r\nSubject: x\r\nX-C: 3\r\nX-D: 4\r\n\r\n"
	if err != nil || string(got) != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
}

func TestApplyEditsLFOnly(t *testing.T) {
	h := "Subject: a\n\tb\nFrom: x\n\n"
	got, err := ApplyEdits([]byte(h), []HeaderEdit{{Prepend, "X-New", "v"}})
	if want := "X-New: v\n" + h; err != nil || string(got) != want {
		t.Errorf("got %q, %v, want %q", got, err, want)
	}
}

func TestApplyEditsFolding(t *testing.T) {
	long := "from " + strings.Repeat("word ", 30) + "end"
	got, err := ApplyEdits([]byte("\r\n"), []HeaderEdit{
		{Prepend, "Received", long},
		{Append, "X-Folded", "a\r\n\tb\n c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\r\n\r\n"), "\r\n")
	for i, l := range lines {
		if len(l) > foldAt || (i > 0 && l[0] != ' ' && l[0] != '\t' && !strings.HasPrefix(l, "X-Folded")) {
			t.Errorf("line %d %q: longer than %d or not a continuation", i, l, foldAt)
		}
	}
	unfolded := strings.ReplaceAll(strings.Join(lines[:len(lines)-3], "\r\n"), "\r\n", "")
	if unfolded != "Received: "+long {
		t.Errorf("folding changed the value: %q", unfolded)
	}
	if tail := strings.Join(lines[len(lines)-3:], "\r\n"); tail != "X-Folded: a\r\n\tb\r\n c" {
		t.Errorf("given folding not kept: %q", tail)
	}
}

func TestApplyEditsRefusesBrokenFields(t *testing.T) {
	for _, e := range []HeaderEdit{
		{Prepend, "Bad Name", "v"},
		{Prepend, "Bad:Name", "v"},
		{Prepend, "", "v"},
		{Append, "X-Inject", "v\r\nBcc: victim@example.test"},
		{Append, "X-Blank", "v\r\n \r\nbody"},
		{Append, "X-Nul", "v\x00"},
		{Append, "X-Long", strings.Repeat("x", 1200)},
	} {
		if _, err := ApplyEdits([]byte("Subject: x\r\n\r\n"), []HeaderEdit{e}); err == nil {
			t.Errorf("%+v: no error", e)
		}
	}
}

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
		{Remove, "x-spam", "", 0},
		{Prepend, "Return-Path", "<a@example.test>", 0},
		{Append, "X-Checked", "yes", 0},
		{Prepend, "X-Top", "1", 0},
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
		{Append, "X-A", "1", 0}, {Prepend, "X-B", "2", 0}, {Remove, "X-A", "", 0}, {Remove, "return-path", "", 0},
		{Prepend, "Return-Path", "<new@example.test>", 0}, {Append, "X-C", "3", 0}, {Append, "X-D", "4", 0},
	})
	want := "Return-Path: <new@example.test>\r\nX-B: 2\r\nSubject: x\r\nX-C: 3\r\nX-D: 4\r\n\r\n"
	if err != nil || string(got) != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
}

func TestApplyEditsLFOnly(t *testing.T) {
	h := "Subject: a\n\tb\nFrom: x\n\n"
	got, err := ApplyEdits([]byte(h), []HeaderEdit{{Prepend, "X-New", "v", 0}})
	if want := "X-New: v\n" + h; err != nil || string(got) != want {
		t.Errorf("got %q, %v, want %q", got, err, want)
	}
}

func TestApplyEditsFolding(t *testing.T) {
	long := "from " + strings.Repeat("word ", 30) + "end"
	got, err := ApplyEdits([]byte("\r\n"), []HeaderEdit{
		{Prepend, "Received", long, 0},
		{Append, "X-Folded", "a\r\n\tb\n c", 0},
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
		{Prepend, "Bad Name", "v", 0},
		{Prepend, "Bad:Name", "v", 0},
		{Prepend, "", "v", 0},
		{Append, "X-Inject", "v\r\nBcc: victim@example.test", 0},
		{Append, "X-Blank", "v\r\n \r\nbody", 0},
		{Append, "X-Nul", "v\x00", 0},
		{Append, "X-Long", strings.Repeat("x", 1200), 0},
	} {
		if _, err := ApplyEdits([]byte("Subject: x\r\n\r\n"), []HeaderEdit{e}); err == nil {
			t.Errorf("%+v: no error", e)
		}
	}
}

// Change and Insert follow libmilter's smfi_chgheader and smfi_insheader:
// the index counts fields of that name (any case) from 1, an empty value
// removes, an index past the last adds at the end; Insert counts every
// field, 0 being the top.
func TestApplyEditsChangeInsert(t *testing.T) {
	h := "A: 1\r\nX-Tag: one\r\nB: 2\r\nx-tag: two\r\n\r\nbody"
	tests := []struct {
		edits []HeaderEdit
		want  string
	}{
		{[]HeaderEdit{{Change, "X-Tag", "new", 2}}, "A: 1\r\nX-Tag: one\r\nB: 2\r\nX-Tag: new\r\n\r\nbody"},
		{[]HeaderEdit{{Change, "x-tag", "", 1}}, "A: 1\r\nB: 2\r\nx-tag: two\r\n\r\nbody"},
		{[]HeaderEdit{{Change, "X-Tag", "three", 3}}, h[:len(h)-6] + "X-Tag: three\r\n\r\nbody"},
		{[]HeaderEdit{{Change, "X-Tag", "", 5}}, h},
		{[]HeaderEdit{{Insert, "Top", "t", 0}}, "Top: t\r\n" + h},
		{[]HeaderEdit{{Insert, "Mid", "m", 2}}, "A: 1\r\nX-Tag: one\r\nMid: m\r\nB: 2\r\nx-tag: two\r\n\r\nbody"},
		{[]HeaderEdit{{Insert, "End", "e", 99}}, h[:len(h)-6] + "End: e\r\n\r\nbody"},
	}
	for _, tt := range tests {
		got, err := ApplyEdits([]byte(h), tt.edits)
		if err != nil || string(got) != tt.want {
			t.Errorf("%+v:\n got %q, %v\nwant %q", tt.edits, got, err, tt.want)
		}
	}
	lf := "A: 1\nB: 2\n\nbody"
	got, err := ApplyEdits([]byte(lf), []HeaderEdit{{Change, "B", "3", 1}, {Insert, "C", "x", 1}})
	if want := "A: 1\nC: x\nB: 3\n\nbody"; err != nil || string(got) != want {
		t.Errorf("LF-only: got %q, %v; want %q", got, err, want)
	}
}

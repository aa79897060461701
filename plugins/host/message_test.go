package host

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSplitHeader(t *testing.T) {
	tests := []struct {
		msg, head, rest string
		synthetic       bool
	}{
		{"Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\n", "", false},
		{"Subject: a\r\n folded\r\n\r\nbody\r\n", "Subject: a\r\n folded\r\n\r\n", "", false},
		{"\r\nbody\r\n", "\r\n", "", false},
		{"no header here\r\n", "\r\n", "no header here\r\n", false},
		{"Subject: a\r\nbody without blank line\r\n", "Subject: a\r\n\r\n", "body without blank line\r\n", false},
		{"Subject: only\r\n", "Subject: only\r\n\r\n", "", true},
		{"", "\r\n", "", true},
	}
	for _, tt := range tests {
		br := bufio.NewReader(strings.NewReader(tt.msg))
		head, rest, synthetic, err := splitHeader(br)
		after, _ := br.ReadString(0)
		if err != nil || string(head) != tt.head || string(rest) != tt.rest || synthetic != tt.synthetic {
			t.Errorf("%q: head %q rest %q synthetic %v err %v", tt.msg, head, rest, synthetic, err)
		}
		if string(head)+string(rest)+after != tt.msg && !tt.synthetic && !strings.HasPrefix(tt.rest, "no header") && !strings.HasPrefix(tt.rest, "body") {
			t.Errorf("%q: bytes lost: %q + %q + %q", tt.msg, head, rest, after)
		}
	}
}

// FilterMessage gives each body-reading plugin, then the caller, the
// whole message; header edits land in the header block; the forms of
// message without a proper header block come out as they went in, plus
// the edits.
func TestFilterMessageBodyPlugins(t *testing.T) {
	c, _ := startChain(t, "mta",
		spec("first", "counter", "mta", nil),
		Spec{Name: "second", Path: bin("counter"), Daemon: "mta", Order: 1})
	tests := []struct{ msg, want string }{
		{"Subject: a\r\n\r\nbody\r\n", "Subject: a\r\nX-Body-Bytes: 6\r\nX-Body-Bytes: 6\r\n\r\nbody\r\n"},
		{"Subject: a\r\nno blank line\r\n", "Subject: a\r\nX-Body-Bytes: 15\r\nX-Body-Bytes: 15\r\n\r\nno blank line\r\n"},
		{"Subject: only\r\n", "Subject: only\r\nX-Body-Bytes: 0\r\nX-Body-Bytes: 0\r\n"},
		{"no header\r\n", "X-Body-Bytes: 11\r\nX-Body-Bytes: 11\r\n\r\nno header\r\n"},
	}
	for _, tt := range tests {
		f, err := c.FilterMessage(context.Background(), TxInfo{Conn: conn}, strings.NewReader(tt.msg), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f.Message)
		f.Close()
		if err != nil || string(got) != tt.want {
			t.Errorf("%q:\n got %q, %v\nwant %q", tt.msg, got, err, tt.want)
		}
	}
}

// The spilled copy is unlinked at once: nothing is left in the folder,
// even while the message is being read.
func TestFilterMessageLeavesNoFile(t *testing.T) {
	c, _ := startChain(t, "mta", spec("counter", "counter", "mta", nil))
	dir := t.TempDir()
	f, err := c.FilterMessage(context.Background(), TxInfo{Conn: conn}, strings.NewReader("Subject: a\r\n\r\nb\r\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("spill folder holds %d files", len(entries))
	}
	if _, err := c.FilterMessage(context.Background(), TxInfo{Conn: conn}, strings.NewReader("x"), filepath.Join(dir, "missing")); err == nil {
		t.Error("a spill folder that does not exist is no error")
	}
}

// A headers-only plugin gets no spilled copy: the rest of the message
// streams on from the reader, errors included.
func TestFilterMessageHeadersOnlyStreams(t *testing.T) {
	c, _ := startChain(t, "mta", spec("echo", "echo", "mta", map[string]any{"mark": "m"}))
	broken := io.MultiReader(strings.NewReader("Subject: a\r\n\r\nbody"), iotestErrReader{})
	f, err := c.FilterMessage(context.Background(), TxInfo{Conn: conn}, broken, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f.Message)
	if err != errBroken || string(got) != "X-Echo: m\r\nSubject: a\r\n\r\nbody" {
		t.Errorf("got %q, %v", got, err)
	}
	none, _ := Start(context.Background(), nil, Options{Daemon: "mta"})
	r := strings.NewReader("x")
	if f, _ := none.FilterMessage(context.Background(), TxInfo{}, r, ""); f.Message != r {
		t.Error("without plugins the message is not passed through as it is")
	}
}

var errBroken = errors.New("connection broke")

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errBroken }

// A refusing plugin leaves no message to store.
func TestFilterMessageRefused(t *testing.T) {
	c, _ := startChain(t, "mta", spec("echo", "echo", "mta", nil))
	f, err := c.FilterMessage(context.Background(), TxInfo{Conn: conn}, strings.NewReader("X-Verdict: reject\r\n\r\nb\r\n"), "")
	if err != nil || f.Message != nil || !f.Result.Refused() || f.Result.Reply.Code != 554 {
		t.Errorf("got %+v, %v", f, err)
	}
	f, err = c.FilterMessage(context.Background(), TxInfo{Conn: conn}, strings.NewReader("X-Verdict: junk\r\n\r\nb\r\n"), "")
	if err != nil || f.Message == nil || f.Result.Folder != "Junk" {
		t.Errorf("got %+v, %v", f, err)
	}
}

package host

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// message10K is a 10 KiB message: a usual header block and a body.
func message10K() (head, body []byte) {
	h := header("continue")
	return h, bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"), (10<<10-len(h))/66)
}

// BenchmarkMailHook is the cost one plugin adds to each MAIL FROM.
func BenchmarkMailHook(b *testing.B) {
	c, _ := startChain(b, "mta", spec("echo", "echo", "mta", nil))
	m := MailInfo{Conn: conn, Sender: "a@example.test"}
	for b.Loop() {
		if r := c.Mail(context.Background(), m); r.Action != Continue {
			b.Fatal(r)
		}
	}
}

// BenchmarkDataHeadersOnly is the cost of a headers-only data plugin per
// 10 KiB message (the body is not sent).
func BenchmarkDataHeadersOnly(b *testing.B) {
	c, _ := startChain(b, "mta", spec("echo", "echo", "mta", nil))
	h, body := message10K()
	for b.Loop() {
		if r := c.Data(context.Background(), TxInfo{Conn: conn}, h, bytes.NewReader(body)); r.Action != Continue {
			b.Fatal(r)
		}
	}
}

// BenchmarkDataBody is the cost of a data plugin that reads the whole
// 10 KiB message.
func BenchmarkDataBody(b *testing.B) {
	c, _ := startChain(b, "mta", spec("counter", "counter", "mta", nil))
	h, body := message10K()
	b.SetBytes(int64(len(h) + len(body)))
	for b.Loop() {
		if r := c.Data(context.Background(), TxInfo{Conn: conn}, h, bytes.NewReader(body)); len(r.Edits) != 1 {
			b.Fatal(r)
		}
	}
}

// BenchmarkApplyEdits is the cost of applying a prepend, a remove and an
// append to a usual header block.
func BenchmarkApplyEdits(b *testing.B) {
	h := []byte(received + dkim + strings.Repeat("X-Filler: some value here\r\n", 20) + "\r\n")
	edits := []HeaderEdit{{Prepend, "Return-Path", "<a@example.test>", 0}, {Remove, "x-filler", "", 0}, {Append, "X-Done", "1", 0}}
	for b.Loop() {
		if _, err := ApplyEdits(h, edits); err != nil {
			b.Fatal(err)
		}
	}
}

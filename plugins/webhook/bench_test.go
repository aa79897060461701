package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// bench5K is a 5 KB message: a multipart/alternative with text and HTML.
func bench5K() string {
	line := strings.Repeat("lorem ipsum dolor sit amet ", 2) + "\r\n"
	text := strings.Repeat(line, 44)
	html := "<p>" + strings.Repeat(line, 44) + "</p>\r\n"
	return "From: Alice <alice@sender.test>\r\nTo: orders@example.org\r\nSubject: order\r\n" +
		"Message-ID: <bench@sender.test>\r\nDate: Mon, 7 Dec 2026 13:58:00 +0100\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		text + "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "--b--\r\n"
}

// BenchmarkWebhookDeliver: one copy of a 5 KB message through Deliver,
// JSON built, signed and posted to an httptest server on loopback that
// answers 204 (the connection is kept between requests).
func BenchmarkWebhookDeliver(b *testing.B) {
	ep := newEndpoint(b, status(http.StatusNoContent))
	f := configured(b, ep.URL, map[string]any{"addresses": addrs("orders@example.org")})
	msg := bench5K()
	if len(msg) < 5000 || len(msg) > 5500 {
		b.Fatalf("message is %d bytes", len(msg))
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d := delivery("orders@example.org", msg)
		d.QueueID = fmt.Sprint("Q", i)
		v, err := f.Deliver(context.Background(), d)
		if err != nil || !v.Discards() {
			b.Fatalf("%+v %v", v, err)
		}
	}
}

package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"postline/plugins/sdk"
	"postline/plugins/webhook/signature"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// endpoint is an httptest server that records each request and answers
// with what reply says for the n-th one (from 1).
type endpoint struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []recorded
	reply func(n int, w http.ResponseWriter, r *http.Request)
}

type recorded struct {
	header http.Header
	body   []byte
	err    error // from signature.Verify
}

func newEndpoint(t testing.TB, reply func(n int, w http.ResponseWriter, r *http.Request)) *endpoint {
	e := &endpoint{reply: reply}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := signature.Verify([]byte(testSecret), r.Header.Get(signature.TimestampHeader),
			r.Header.Get(signature.SignatureHeader), body, time.Now(), signature.Window)
		e.mu.Lock()
		e.reqs = append(e.reqs, recorded{header: r.Header.Clone(), body: body, err: err})
		n := len(e.reqs)
		e.mu.Unlock()
		if e.reply != nil {
			e.reply(n, w, r)
		}
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) requests() []recorded {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]recorded(nil), e.reqs...)
}

func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// configured returns a filter with one route per table, each given as
// key/value pairs on top of a valid route to url.
func configured(t testing.TB, url string, routes ...map[string]any) *filter {
	t.Helper()
	var items []any
	for _, r := range routes {
		m := map[string]any{"url": url, "secret": testSecret}
		for k, v := range r {
			m[k] = v
		}
		items = append(items, m)
	}
	f := newFilter()
	if err := f.Configure(map[string]any{"routes": items}); err != nil {
		t.Fatal(err)
	}
	return f
}

func addrs(a ...string) []any {
	out := make([]any, len(a))
	for i, s := range a {
		out[i] = s
	}
	return out
}

// delivery is one copy as the host hands it over: LF line ends, the
// header block apart from the body.
func delivery(rcpt, msg string) *sdk.Delivery {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	head, body, _ := strings.Cut(msg, "\n\n")
	return &sdk.Delivery{Recipient: rcpt, Sender: "alice@sender.test", QueueID: "Q123",
		RawHeader: []byte(head + "\n\n"), Body: strings.NewReader(body), Size: int64(len(msg))}
}

func deliver(t testing.TB, f *filter, d *sdk.Delivery) sdk.Verdict {
	t.Helper()
	v, err := f.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"postline/plugins/sdk"
	"postline/plugins/webhook/signature"
)

const simpleMsg = "From: Alice <alice@sender.test>\r\nTo: orders@example.org\r\nSubject: order 42\r\n\r\nOne widget, please.\r\n"

// Each HTTP answer maps onto the copy's fate: 2xx delivered (discarded
// from the Maildir in mode instead, kept in mode also), 4xx bounced
// except 408 and 429, the rest deferred; the text names the status only.
func TestAnswerMapping(t *testing.T) {
	for _, tc := range []struct {
		status int
		mode   string
		want   sdk.Verdict
	}{
		{200, "instead", sdk.Discard()},
		{204, "instead", sdk.Discard()},
		{202, "also", sdk.Continue()},
		{400, "instead", sdk.Reject(550, "5.0.0", "webhook endpoint refused the message: HTTP 400 Bad Request")},
		{404, "also", sdk.Reject(550, "5.0.0", "webhook endpoint refused the message: HTTP 404 Not Found")},
		{413, "instead", sdk.Reject(552, "5.3.4", "webhook endpoint refused the message as too large: HTTP 413 Request Entity Too Large")},
		{408, "instead", sdk.Tempfail(451, "4.3.0", "webhook endpoint busy: HTTP 408 Request Timeout, will retry")},
		{429, "instead", sdk.Tempfail(451, "4.3.0", "webhook endpoint busy: HTTP 429 Too Many Requests, will retry")},
		{500, "instead", sdk.Tempfail(451, "4.3.0", "webhook endpoint failed: HTTP 500 Internal Server Error, will retry")},
		{503, "also", sdk.Tempfail(451, "4.3.0", "webhook endpoint failed: HTTP 503 Service Unavailable, will retry")},
		{599, "instead", sdk.Tempfail(451, "4.3.0", "webhook endpoint failed: HTTP 599, will retry")},
		{301, "instead", sdk.Tempfail(451, "4.3.0", "webhook endpoint failed: HTTP 301 Moved Permanently, will retry")},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.mode), func(t *testing.T) {
			ep := newEndpoint(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Location", "http://elsewhere.test/")
				w.WriteHeader(tc.status)
				fmt.Fprint(w, "\x1b[31mendpoint says\r\nno\x00")
			})
			f := configured(t, ep.URL, map[string]any{"addresses": addrs("orders@example.org"), "mode": tc.mode})
			v := deliver(t, f, delivery("Orders@Example.org", simpleMsg))
			if !reflect.DeepEqual(v, tc.want) {
				t.Errorf("verdict %+v, want %+v", v, tc.want)
			}
			if n := len(ep.requests()); n != 1 {
				t.Errorf("%d requests, want 1 (no redirect followed)", n)
			}
		})
	}
}

// The request carries the fixed fields, an Idempotency-Key that is the
// same on every retry of a copy, and a signature the documented
// function verifies; a changed byte or an old timestamp does not verify.
func TestRequestSignedAndKeyed(t *testing.T) {
	ep := newEndpoint(t, status(503))
	f := configured(t, ep.URL, map[string]any{"addresses": addrs("orders@example.org")})
	for range 3 {
		deliver(t, f, delivery("orders@example.org", simpleMsg))
	}
	reqs := ep.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		for k, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "postline-webhook",
			"Idempotency-Key": "Q123/orders@example.org"} {
			if got := r.header.Get(k); got != want {
				t.Errorf("request %d: %s %q, want %q", i, k, got, want)
			}
		}
		if r.err != nil {
			t.Errorf("request %d: %v", i, r.err)
		}
	}
	r := reqs[0]
	ts, sig := r.header.Get(signature.TimestampHeader), r.header.Get(signature.SignatureHeader)
	tampered := append([]byte(nil), r.body...)
	tampered[10] ^= 1
	if signature.Verify([]byte(testSecret), ts, sig, tampered, time.Now(), signature.Window) == nil {
		t.Error("a changed body verified")
	}
	if signature.Verify([]byte("another secret, long enough"), ts, sig, r.body, time.Now(), signature.Window) == nil {
		t.Error("another secret verified")
	}
	if signature.Verify([]byte(testSecret), ts, sig, r.body, time.Now().Add(6*time.Minute), signature.Window) == nil {
		t.Error("a request older than the replay window verified")
	}
}

// Only routed recipients are posted: an address route, a domain route
// (any case), nothing for the rest, whose body is not even read.
func TestRouting(t *testing.T) {
	orders := newEndpoint(t, status(200))
	hooks := newEndpoint(t, status(200))
	f := newFilter()
	err := f.Configure(map[string]any{"routes": []any{
		map[string]any{"addresses": addrs("orders@example.org"), "url": orders.URL, "secret": testSecret},
		map[string]any{"domains": addrs("Hooks.Example.org"), "url": hooks.URL, "secret": testSecret, "mode": "also"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rcpt string
		want sdk.Verdict
	}{
		{"orders@example.org", sdk.Discard()},
		{"ORDERS@example.ORG", sdk.Discard()},
		{"a@hooks.example.org", sdk.Continue()},
		{"b@HOOKS.example.org", sdk.Continue()},
		{"other@example.org", sdk.Continue()},
		{"a@sub.hooks.example.org", sdk.Continue()},
	} {
		d := delivery(tc.rcpt, simpleMsg)
		body := d.Body.(*strings.Reader)
		if v := deliver(t, f, d); !reflect.DeepEqual(v, tc.want) {
			t.Errorf("%s: verdict %+v, want %+v", tc.rcpt, v, tc.want)
		}
		if strings.HasPrefix(tc.rcpt, "other") && body.Len() == 0 {
			t.Errorf("%s: body read for an unrouted recipient", tc.rcpt)
		}
	}
	if n, m := len(orders.requests()), len(hooks.requests()); n != 2 || m != 2 {
		t.Errorf("orders got %d, hooks %d, want 2 each", n, m)
	}
}

// A slow endpoint is cut off at the route's timeout and the copy
// deferred; so is one that is not listening.
func TestSlowAndDownEndpoints(t *testing.T) {
	slow := newEndpoint(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	f := configured(t, slow.URL, map[string]any{"addresses": addrs("orders@example.org"), "timeout": "200ms"})
	start := time.Now()
	v := deliver(t, f, delivery("orders@example.org", simpleMsg))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
	want := sdk.Tempfail(451, "4.4.1", "webhook endpoint not reached: timed out after 200ms")
	if !reflect.DeepEqual(v, want) {
		t.Errorf("slow: %+v", v)
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	f = configured(t, "http://"+addr+"/hook", map[string]any{"addresses": addrs("orders@example.org")})
	want = sdk.Tempfail(451, "4.4.1", "webhook endpoint not reached: connection failed")
	if v := deliver(t, f, delivery("orders@example.org", simpleMsg)); !reflect.DeepEqual(v, want) {
		t.Errorf("down: %+v", v)
	}
}

// The host's deadline for the call comes before the route's timeout:
// the request ends early enough for the plugin to answer 451 itself.
func TestHostDeadlineShortensRequest(t *testing.T) {
	slow := newEndpoint(t, func(_ int, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	f := configured(t, slow.URL, map[string]any{"addresses": addrs("orders@example.org"), "timeout": "30s"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := f.Deliver(ctx, delivery("orders@example.org", simpleMsg))
	if err != nil || ctx.Err() != nil || !v.Refuses() {
		t.Errorf("verdict %+v, err %v, host context %v", v, err, ctx.Err())
	}
}

// A huge (here endless) response body is not held: a few KB are read
// and the answer is the status.
func TestHugeResponse(t *testing.T) {
	for _, code := range []int{200, 500} {
		ep := newEndpoint(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			chunk := []byte(strings.Repeat("x", 64<<10))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		f := configured(t, ep.URL, map[string]any{"addresses": addrs("orders@example.org"), "timeout": "5s"})
		start := time.Now()
		v := deliver(t, f, delivery("orders@example.org", simpleMsg))
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%d: took %v", code, took)
		}
		if code == 200 && !v.Discards() || code == 500 && !v.Refuses() {
			t.Errorf("%d: verdict %+v", code, v)
		}
	}
}

func TestPrintable(t *testing.T) {
	if got := printable([]byte("ok\r\n\x1b[31m\xff"), 7); got != "ok...[3" {
		t.Errorf("%q", got)
	}
}

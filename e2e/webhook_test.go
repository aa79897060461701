package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"postline/plugins/webhook/signature"
)

const hookSecret = "e2e-webhook-secret-0123456789abcdef"

// hookPost is one POST the endpoint received.
type hookPost struct {
	Key      string
	Body     []byte
	Verified error // signature.Verify's answer, as a receiver checks it
	Status   int   // what the endpoint answered
}

// hookEndpoint is an application's HTTP endpoint on loopback: per path,
// answer(n) says what the n-th POST there (from 1) gets.
type hookEndpoint struct {
	URL    string
	mu     sync.Mutex
	posts  map[string][]hookPost
	answer map[string]func(n int, w http.ResponseWriter, r *http.Request) int
}

func startHookEndpoint(t testing.TB) *hookEndpoint {
	h := &hookEndpoint{posts: map[string][]hookPost{},
		answer: map[string]func(int, http.ResponseWriter, *http.Request) int{}}
	l := listenFree(t)
	h.URL = "http://" + l.Addr().String()
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return h
}

func (h *hookEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p := hookPost{Key: r.Header.Get("Idempotency-Key"), Body: body,
		Verified: signature.Verify([]byte(hookSecret), r.Header.Get(signature.TimestampHeader),
			r.Header.Get(signature.SignatureHeader), body, time.Now(), signature.Window)}
	h.mu.Lock()
	n := len(h.posts[r.URL.Path]) + 1
	answer := h.answer[r.URL.Path]
	h.mu.Unlock()
	p.Status = http.StatusOK
	if answer != nil {
		p.Status = answer(n, w, r)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	h.mu.Lock()
	h.posts[r.URL.Path] = append(h.posts[r.URL.Path], p)
	h.mu.Unlock()
}

// on sets what POSTs to path get.
func (h *hookEndpoint) on(path string, answer func(n int, w http.ResponseWriter, r *http.Request) int) {
	h.mu.Lock()
	h.answer[path] = answer
	h.mu.Unlock()
}

func (h *hookEndpoint) postsTo(path string) []hookPost {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookPost(nil), h.posts[path]...)
}

// waitPosts waits until path has had n POSTs and returns them.
func (h *hookEndpoint) waitPosts(t testing.TB, path string, n int) []hookPost {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(h.postsTo(path)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s got %d POSTs, want %d", path, len(h.postsTo(path)), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h.postsTo(path)
}

// answerAfter answers status to the first n POSTs, then 200.
func answerAfter(n, status int) func(int, http.ResponseWriter, *http.Request) int {
	return func(i int, w http.ResponseWriter, _ *http.Request) int {
		if i <= n {
			w.WriteHeader(status)
			return status
		}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	}
}

// webhookRoute is one [[plugins.config.routes]] table.
func webhookRoute(address, url, extra string) string {
	return fmt.Sprintf("[[plugins.config.routes]]\naddresses = [%q]\nurl = %q\nsecret = %q\n%s", address, url, hookSecret, extra)
}

// webhookStack starts a stack whose MDA posts each route's recipients'
// mail to the endpoint, and adds those recipients as users.
func webhookStack(t testing.TB, routes ...string) *Stack {
	s := StartStackWith(t, StackConfig{Plugins: "\n[[plugins]]\nname = \"webhook\"\ndaemon = \"mda\"\nhooks = [\"deliver\"]\ntimeout = \"5s\"\n" +
		strings.Join(routes, "")})
	for _, r := range routes {
		addr := strings.Split(strings.Split(r, "addresses = [\"")[1], "\"")[0]
		s.Postline("app-password\n", "user", "add", addr)
	}
	return s
}

// postedMessage is the part of the JSON the tests look at.
type postedMessage struct {
	ID, Recipient, Sender, Subject, Text string
}

func parsePosted(t testing.TB, p hookPost) postedMessage {
	t.Helper()
	var m postedMessage
	if err := json.Unmarshal(p.Body, &m); err != nil {
		t.Fatalf("%v: %s", err, p.Body)
	}
	return m
}

// waitDelivered waits for the MTA's "delivered" line of id to rcpt.
func waitDelivered(t testing.TB, s *Stack, id, rcpt string) {
	t.Helper()
	waitLogLine(t, s, `"svc":"mta"`, `"delivered"`, `"queue_id":"`+id+`"`, `"rcpt":"`+rcpt+`"`)
}

func newFiles(dir string) int {
	entries, _ := os.ReadDir(filepath.Join(dir, "new"))
	return len(entries)
}

// Mail to an application through the whole stack: the endpoint is down
// (503) for two attempts and the MTA's queue retries until it takes the
// message, once, every attempt with the same Idempotency-Key and a valid
// signature, and no Maildir copy is written (mode "instead"). Mode
// "also" gives one POST and one Maildir copy. A 400 bounces the message
// to its (local) sender. A slow endpoint defers; a huge answer does not
// hold the plugin.
func TestWebhookDelivery(t *testing.T) {
	t.Parallel()
	h := startHookEndpoint(t)
	s := webhookStack(t,
		webhookRoute("orders@example.test", h.URL+"/orders", ""),
		webhookRoute("copy@example.test", h.URL+"/copy", "mode = \"also\"\n"),
		webhookRoute("refuse@example.test", h.URL+"/refuse", ""),
		webhookRoute("slow@example.test", h.URL+"/slow", "timeout = \"500ms\"\n"),
		webhookRoute("huge@example.test", h.URL+"/huge", ""))
	h.on("/orders", answerAfter(2, http.StatusServiceUnavailable))
	h.on("/refuse", answerAfter(1000, http.StatusBadRequest))
	h.on("/slow", func(n int, w http.ResponseWriter, r *http.Request) int {
		if n <= 2 {
			select { // past the route's timeout
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	})
	h.on("/huge", func(_ int, w http.ResponseWriter, r *http.Request) int {
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat("huge answer ", 8<<10))
		for i := 0; i < 2000 && r.Context().Err() == nil; i++ { // up to 200 MB
			if _, err := w.Write(chunk); err != nil {
				break
			}
		}
		return http.StatusOK
	})

	t.Run("down twice, then taken once", func(t *testing.T) { webhookRetried(t, s, h) })
	t.Run("mode also", func(t *testing.T) { webhookAlso(t, s, h) })
	t.Run("400 bounces", func(t *testing.T) { webhookBounce(t, s, h) })
	t.Run("slow endpoint defers", func(t *testing.T) { webhookSlow(t, s, h) })
	t.Run("huge answer", func(t *testing.T) { webhookHuge(t, s, h) })
}

func webhookRetried(t *testing.T, s *Stack, h *hookEndpoint) {
	rcpt := "orders@example.test"
	msg := "From: demo@example.test\r\nTo: " + rcpt + "\r\nSubject: order 42\r\n\r\nOne widget, please.\r\n"
	// demo, in the same message, is delivered to its Maildir once, at
	// the first attempt, while the endpoint's copy is retried.
	id := submitWith(t, s, demoUser, nil, nil, msg, rcpt, demoUser)
	waitDelivered(t, s, id, rcpt)
	if got := s.WaitForMail(demoUser, 1, 10*time.Second); len(got) != 1 || !strings.Contains(string(got[0]), "Subject: order 42") {
		t.Errorf("demo's copies: %q", got)
	}
	clearMailbox(t, s, demoUser)
	posts := h.waitPosts(t, "/orders", 3)
	waitLogLine(t, s, `"svc":"mta"`, `"delivery deferred"`, `"queue_id":"`+id+`"`,
		`"error":"451 4.3.0 <`+rcpt+`> webhook endpoint failed: HTTP 503 Service Unavailable, will retry"`)
	waitSpoolEmpty(t, s, 10*time.Second)
	posts = h.postsTo("/orders")
	accepted := 0
	for i, p := range posts {
		if p.Key != id+"/"+rcpt || p.Verified != nil {
			t.Errorf("POST %d: key %q, signature %v", i, p.Key, p.Verified)
		}
		if p.Status == http.StatusOK {
			accepted++
		}
		if m := parsePosted(t, p); m.ID != id || m.Recipient != rcpt || m.Sender != demoUser ||
			m.Subject != "order 42" || m.Text != "One widget, please.\r\n" {
			t.Errorf("POST %d: %+v", i, m)
		}
	}
	if len(posts) != 3 || accepted != 1 {
		t.Errorf("%d POSTs, %d accepted; want 3 and 1", len(posts), accepted)
	}
	if n := newFiles(s.Mailbox(rcpt)); n != 0 {
		t.Errorf("%d Maildir copies in mode instead", n)
	}
	waitLogLine(t, s, `"svc":"mda"`, `"delivery discarded by plugin"`, `"queue_id":"`+id+`"`)
}

func webhookAlso(t *testing.T, s *Stack, h *hookEndpoint) {
	rcpt := "copy@example.test"
	id := submitWith(t, s, demoUser, nil, nil, "Subject: kept too\r\n\r\nhello\r\n", rcpt)
	waitDelivered(t, s, id, rcpt)
	got := s.WaitForMail(rcpt, 1, 10*time.Second)
	if !strings.Contains(string(got[0]), "Subject: kept too") {
		t.Errorf("Maildir copy: %q", got[0])
	}
	if posts := h.waitPosts(t, "/copy", 1); len(posts) != 1 || posts[0].Key != id+"/"+rcpt {
		t.Errorf("POSTs %+v", posts)
	}
}

func webhookBounce(t *testing.T, s *Stack, h *hookEndpoint) {
	rcpt := "refuse@example.test"
	id := submitWith(t, s, demoUser, nil, nil, "Subject: refused by app\r\n\r\nhello\r\n", rcpt)
	b, raw := onlyReport(t, s, 1)
	wantFields(t, b.PerMessage, map[string]string{"X-Postline-Queue-Id": id})
	r := b.Recipient(t, rcpt)
	wantFields(t, r, map[string]string{"Action": "failed", "Status": "5.0.0"})
	if !strings.Contains(r.Get("Diagnostic-Code"), "webhook endpoint refused the message: HTTP 400 Bad Request") ||
		!strings.Contains(b.Original, "Subject: refused by app") {
		t.Errorf("bounce:\n%s", raw)
	}
	if posts := h.waitPosts(t, "/refuse", 1); len(posts) != 1 {
		t.Errorf("%d POSTs, want 1 (a 4xx is not retried)", len(posts))
	}
	clearMailbox(t, s, demoUser)
}

func webhookSlow(t *testing.T, s *Stack, h *hookEndpoint) {
	rcpt := "slow@example.test"
	id := submitWith(t, s, demoUser, nil, nil, "Subject: slow app\r\n\r\nhello\r\n", rcpt)
	waitLogLine(t, s, `"delivery deferred"`, `"queue_id":"`+id+`"`,
		`"error":"451 4.4.1 <`+rcpt+`> webhook endpoint not reached: timed out after 500ms"`)
	waitDelivered(t, s, id, rcpt)
	posts := h.waitPosts(t, "/slow", 3)
	if len(posts) != 3 || posts[0].Key != posts[2].Key {
		t.Errorf("POSTs %+v", posts)
	}
	if n := newFiles(s.Mailbox(rcpt)); n != 0 {
		t.Errorf("%d Maildir copies", n)
	}
}

func webhookHuge(t *testing.T, s *Stack, h *hookEndpoint) {
	rcpt := "huge@example.test"
	start := time.Now()
	id := submitWith(t, s, demoUser, nil, nil, "Subject: huge answer\r\n\r\nhello\r\n", rcpt)
	waitDelivered(t, s, id, rcpt)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	if posts := h.waitPosts(t, "/huge", 1); len(posts) != 1 {
		t.Errorf("%d POSTs", len(posts))
	}
}

// BenchmarkWebhookStack measures the whole stack delivering to an
// application: plain SMTP on the MTA's port from 8 clients, 5 KB
// messages, each POSTed by the MDA's webhook plugin (mode "instead") to
// an endpoint on loopback that answers 204, timed until the endpoint has
// them all; "maildir" is the same load into a Maildir, for comparison.
func BenchmarkWebhookStack(b *testing.B) {
	body := "From: shop@remote.test\r\nSubject: order\r\nMessage-ID: <b@remote.test>\r\n\r\n" +
		strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 78)
	for _, mode := range []string{"webhook", "maildir"} {
		b.Run(mode, func(b *testing.B) {
			h := startHookEndpoint(b)
			rcpt := "orders@example.test"
			s := webhookStack(b, webhookRoute(rcpt, h.URL+"/orders", ""))
			defer s.stop()
			done := func() { h.waitPosts(b, "/orders", b.N) }
			if mode == "maildir" {
				rcpt = demoUser
				done = func() { waitFiles(b, filepath.Join(s.Mailbox(demoUser), "new"), b.N, 5*time.Minute) }
			}
			b.SetBytes(int64(len(body)))
			before := s.CPU()
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := range 8 {
				wg.Go(func() { sendInboundAs(b, s.MTA, rcpt, b.N/8+boolInt(c < b.N%8), body) })
			}
			wg.Wait()
			done()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			s.reportCPU(b, before, b.N)
		})
	}
}

// sendInboundAs sends n messages to rcpt over one SMTP connection to addr.
func sendInboundAs(tb testing.TB, addr, rcpt string, n int, body string) {
	c, err := smtp.Dial(addr)
	if err != nil {
		tb.Error(err)
		return
	}
	defer c.Close()
	for range n {
		if err := c.SendMail("shop@remote.test", []string{rcpt}, strings.NewReader(body)); err != nil {
			tb.Error(err)
			return
		}
	}
	c.Quit()
}

// postline check starts the webhook plugin, which refuses a route
// without a secret, naming the key and the fix; the examples of the
// README, plugins/README.md and the guide pass (their secret files made).
func TestWebhookCheck(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "webhook.toml", validConfig+"[[plugins]]\nname = \"webhook\"\ndaemon = \"mda\"\n"+
		"[[plugins.config.routes]]\naddresses = [\"orders@example.test\"]\nurl = \"https://app.example.test/hook\"\n")
	out, err := runPostline(path, "", "check")
	want := "routes[0].secret: missing: requests must be signed; give secret or secret_file"
	if err == nil || !strings.Contains(out, path) || !strings.Contains(out, want) {
		t.Errorf("check: %v\n%s\nwant the file and %q", err, out, want)
	}

	secret := writeFile(t, "webhook.secret", hookSecret+"\n")
	n := 0
	for _, doc := range []string{"../README.md", "../plugins/README.md", "../docs/webhooks.md"} {
		for _, block := range tomlBlocks(t, doc) {
			if !strings.Contains(block, `name = "webhook"`) {
				continue
			}
			n++
			block = strings.ReplaceAll(block, "/etc/postline/webhook-shop.secret", secret)
			path := writeFile(t, "example.toml", validConfig+block)
			if out, err := runPostline(path, "", "check"); err != nil {
				t.Errorf("%s example:\n%s\ncheck: %v\n%s", doc, block, err, out)
			}
		}
	}
	if n != 3 {
		t.Errorf("%d webhook examples found, want one in each document", n)
	}
}

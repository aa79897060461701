package mta

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/lmtp"
	"postline/queue"
)

// queueWith stores a message whose recipients are given and hands it to
// m, like enqueue but with recipient states of the test's choosing.
func queueWith(t *testing.T, m *Manager, s *queue.Spool, from string, rcpts ...*queue.Recipient) *queue.Envelope {
	t.Helper()
	env := &queue.Envelope{ID: queue.NewID(time.Now()), From: from, Received: time.Now(), Recipients: rcpts}
	if err := s.Store(env, strings.NewReader("Subject: held\r\nX-Test: 1\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	m.Add(env.Clone())
	return env
}

// deferred is a local recipient that already failed once and waits an
// hour: the manager leaves it alone until Flush.
func deferred(addr string) *queue.Recipient {
	return &queue.Recipient{Address: addr, State: queue.Pending, Attempts: 1,
		NextAttempt: time.Now().Add(time.Hour), LastError: "451 4.3.0 busy"}
}

// remote is a recipient in another domain; with no Relay set up the
// manager never tries it, so the message stays queued as it is.
func remote(addr string) *queue.Recipient {
	return &queue.Recipient{Address: addr, State: queue.Pending}
}

func noDelivery(t *testing.T) func(int, call) (lmtp.Result, error) {
	return func(n int, c call) (lmtp.Result, error) {
		t.Errorf("unexpected delivery %d to %v", n, c.rcpts)
		return accept(c.rcpts), nil
	}
}

func TestSnapshotCopiesSortedByID(t *testing.T) {
	t.Parallel()
	m, s, _ := startManager(t, noDelivery(t))
	a := queueWith(t, m, s, "a@example.org", remote("x@remote.test"))
	b := queueWith(t, m, s, "b@example.org", remote("y@remote.test"), remote("z@remote.test"))

	if a.ID > b.ID { // made in the same millisecond: the random part decides
		a, b = b, a
	}
	snap := m.Snapshot()
	if len(snap) != 2 || snap[0].ID != a.ID || snap[1].ID != b.ID {
		t.Fatalf("snapshot = %v, want %s then %s", snap, a.ID, b.ID)
	}
	if len(snap[1].Recipients) != len(b.Recipients) || snap[1].From != b.From {
		t.Errorf("second envelope = %+v, want %+v", snap[1], b)
	}
	snap[0].Recipients[0].State = queue.Failed
	snap[0].From = "changed"
	if again := m.Snapshot(); again[0].Recipients[0].State != queue.Pending || again[0].From != a.From {
		t.Errorf("changing the snapshot changed the queue: %+v", again[0])
	}
}

// Flush makes a recipient deferred for an hour due at once, on disk
// before the attempt, and counts it.
func TestFlushRetriesDeferredNow(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, func(_ int, c call) (lmtp.Result, error) { return accept(c.rcpts), nil })
	env := queueWith(t, m, s, "a@example.org", deferred("a@example.test"),
		&queue.Recipient{Address: "done@example.test", State: queue.Delivered, Attempts: 1})
	if n := m.Flush(); n != 1 {
		t.Errorf("Flush() = %d, want 1", n)
	}
	c := nextCall(t, f)
	if len(c.rcpts) != 1 || c.rcpts[0] != "a@example.test" {
		t.Errorf("retried %v, want only the pending recipient", c.rcpts)
	}
	if r := c.env.Recipients[0]; !r.NextAttempt.IsZero() || r.Attempts != 1 {
		t.Errorf("spool before the retry: %+v, want NextAttempt zero and the attempt count kept", r)
	}
	waitRemoved(t, m, f, env.ID)
	if n := m.Flush(); n != 0 {
		t.Errorf("Flush() of an empty queue = %d", n)
	}
}

// A message being delivered while Flush runs is skipped, and the
// attempt's result is not overwritten.
func TestFlushSkipsBusyMessage(t *testing.T) {
	t.Parallel()
	inside, unblock := make(chan struct{}), make(chan struct{})
	m, s, f := startManager(t, func(n int, c call) (lmtp.Result, error) {
		if n == 0 {
			close(inside)
			<-unblock
			return lmtp.Result{c.rcpts[0]: smtpReply(452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full")}, nil
		}
		return accept(c.rcpts), nil
	})
	busy := enqueue(t, m, s, "x", "busy@example.test")
	<-inside
	other := queueWith(t, m, s, "a@example.org", deferred("other@example.test"))
	if n := m.Flush(); n != 1 {
		t.Errorf("Flush() = %d, want 1 (the busy message is skipped)", n)
	}
	if c := nextCall(t, f); c.rcpts[0] != "other@example.test" {
		t.Errorf("retried %v", c.rcpts)
	}
	close(unblock)
	nextCall(t, f) // the busy attempt reports
	got := waitEnvelope(t, f.spoolDir, busy.ID, func(e *queue.Envelope) bool { return e.Recipients[0].Attempts == 1 })
	if r := got.Recipients[0]; r.NextAttempt.IsZero() || !strings.Contains(r.LastError, "Mailbox full") {
		t.Errorf("busy message after its attempt: %+v, want its deferral kept", r)
	}
	waitRemoved(t, m, f, other.ID)
}

func TestDeleteRemovesMessage(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, noDelivery(t))
	env := queueWith(t, m, s, "a@example.org", deferred("a@example.test"), remote("x@remote.test"))
	if err := m.Delete(env.ID); err != nil {
		t.Fatal(err)
	}
	if m.has(env.ID) || readEnvelope(t, f.spoolDir, env.ID) != nil {
		t.Error("message still queued after Delete")
	}
	if _, err := os.Stat(filepath.Join(f.spoolDir, "msg", env.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("message data left: %v", err)
	}
	if err := m.Delete(env.ID); !errors.Is(err, ErrNoSuchMessage) || !strings.Contains(err.Error(), env.ID) {
		t.Errorf("second Delete: %v, want ErrNoSuchMessage naming the ID", err)
	}
	if len(m.Snapshot()) != 0 {
		t.Error("queue not empty")
	}
}

// Delete and BounceNow refuse a message that an attempt owns.
func TestAdminRefusesBusyMessage(t *testing.T) {
	t.Parallel()
	inside, unblock := make(chan struct{}), make(chan struct{})
	m, s, f := startManager(t, func(_ int, c call) (lmtp.Result, error) {
		close(inside)
		<-unblock
		return accept(c.rcpts), nil
	})
	env := enqueue(t, m, s, "x", "a@example.test")
	<-inside
	for name, op := range map[string]func(string) error{"Delete": m.Delete, "BounceNow": m.BounceNow} {
		if err := op(env.ID); !errors.Is(err, ErrBusy) {
			t.Errorf("%s of a busy message: %v, want ErrBusy", name, err)
		}
	}
	close(unblock)
	nextCall(t, f)
	waitRemoved(t, m, f, env.ID) // delivered as if nothing happened
}

// BounceNow fails the pending recipients, queues one bounce for them
// and removes the message.
func TestBounceNowReturnsPendingRecipients(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, noDelivery(t))
	env := queueWith(t, m, s, "sender@example.org", remote("x@remote.test"),
		&queue.Recipient{Address: "done@example.test", State: queue.Delivered, Attempts: 1},
		deferred("later@example.test"))
	if err := m.BounceNow(env.ID); err != nil {
		t.Fatal(err)
	}
	if m.has(env.ID) || readEnvelope(t, f.spoolDir, env.ID) != nil {
		t.Error("message still queued after BounceNow")
	}
	snap := m.Snapshot()
	if len(snap) != 1 || snap[0].From != "" || snap[0].Recipients[0].Address != "sender@example.org" {
		t.Fatalf("queue after BounceNow = %+v, want one bounce from <> to the sender", snap)
	}
	r, err := s.OpenMessage(snap[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, _ := io.ReadAll(r)
	report := string(data)
	for _, want := range []string{"multipart/report", "Final-Recipient: rfc822; x@remote.test",
		"Final-Recipient: rfc822; later@example.test", "Status: 5.0.0", "returned by the administrator",
		"Subject: held"} {
		if !strings.Contains(report, want) {
			t.Errorf("bounce lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "done@example.test") {
		t.Errorf("bounce reports the delivered recipient:\n%s", report)
	}
	if err := m.BounceNow("0000000000000000"); !errors.Is(err, ErrNoSuchMessage) {
		t.Errorf("BounceNow of an unknown ID: %v", err)
	}
}

// A message from <> is removed without a bounce (RFC 3464 §2).
func TestBounceNowNullSender(t *testing.T) {
	t.Parallel()
	m, s, _ := startManager(t, noDelivery(t))
	env := queueWith(t, m, s, "", remote("x@remote.test"))
	if err := m.BounceNow(env.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Snapshot()); n != 0 {
		t.Errorf("%d messages queued after returning a message from <>, want 0", n)
	}
}

// adminCall sends one raw request line to a test admin server.
func adminCall(t *testing.T, path, raw string) AdminResponse {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var resp AdminResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func startAdmin(t *testing.T, m *Manager) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pladm-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { (&AdminServer{Manager: m, Log: zerolog.Nop()}).Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done; os.RemoveAll(dir) })
	return path
}

func TestAdminProtocol(t *testing.T) {
	t.Parallel()
	m, s, _ := startManager(t, noDelivery(t))
	env := queueWith(t, m, s, "a@example.org", remote("x@remote.test"))
	path := startAdmin(t, m)

	if r := adminCall(t, path, `{"cmd":"list"}`); !r.OK || len(r.Envelopes) != 1 || r.Envelopes[0].ID != env.ID {
		t.Errorf("list: %+v", r)
	}
	r := adminCall(t, path, `{"cmd":"show","id":"`+env.ID+`"}`)
	if !r.OK || len(r.Envelopes) != 1 || r.Envelopes[0].Recipients[0].Address != "x@remote.test" ||
		r.Headers != "Subject: held\r\nX-Test: 1\r\n" {
		t.Errorf("show: %+v", r)
	}
	if r := adminCall(t, path, `{"cmd":"flush"}`); !r.OK || r.Count != 1 {
		t.Errorf("flush: %+v", r)
	}
	refused := []struct{ req, want string }{
		{`{"cmd":"show","id":"../../etc/passwd"}`, "is not a queue ID"},
		{`{"cmd":"delete"}`, "is not a queue ID"},
		{`{"cmd":"delete","id":"0000000000000000"}`, "no such message in the queue: 0000000000000000"},
		{`{"cmd":"list","id":"` + env.ID + `"}`, "takes no queue ID"},
		{`{"cmd":"frob"}`, `unknown command "frob"`},
		{`not json`, "bad request"},
		{`{"cmd":"list","id":"` + strings.Repeat("x", maxAdminRequest) + `"}`, "bad request"},
	}
	for _, c := range refused {
		if r := adminCall(t, path, c.req); r.OK || !strings.Contains(r.Error, c.want) {
			t.Errorf("%.60s: %+v, want an error with %q", c.req, r, c.want)
		}
	}
	resp, err := AdminCall(path, AdminRequest{Cmd: "bounce", ID: env.ID}, 10*time.Second)
	if err != nil || len(resp.Envelopes) != 1 || resp.Envelopes[0].From != "a@example.org" {
		t.Errorf("bounce: %+v, %v", resp, err)
	}
	if _, err := AdminCall(path, AdminRequest{Cmd: "delete", ID: env.ID}, 10*time.Second); err == nil ||
		!strings.Contains(err.Error(), "no such message") {
		t.Errorf("delete after bounce: %v", err)
	}
}

// A request cut short gets an error answer, not silence.
func TestAdminHalfRequest(t *testing.T) {
	t.Parallel()
	m, _, _ := startManager(t, noDelivery(t))
	path := startAdmin(t, m)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, `{"cmd":`)
	c.(*net.UnixConn).CloseWrite()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var resp AdminResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil || resp.OK || !strings.Contains(resp.Error, "bad request") {
		t.Errorf("half a request: %+v, %v", resp, err)
	}
	c.Close()
}

package mta

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/config"
	"postline/durable"
	"postline/lmtp"
	"postline/queue"
)

func TestManagerDelivers(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, func(_ int, c call) (lmtp.Result, error) { return accept(c.rcpts), nil })
	body := "Subject: x\r\n\r\nhello\r\n"
	env := enqueue(t, m, s, body, "a@example.test", "B@Example.TEST")

	c := nextCall(t, f)
	if !slices.Equal(c.rcpts, []string{"a@example.test", "B@Example.TEST"}) {
		t.Errorf("recipients = %q", c.rcpts)
	}
	if c.data != body || c.msg.QueueID != env.ID || c.msg.From != env.From {
		t.Errorf("message = %+v, data %q", c.msg, c.data)
	}
	waitRemoved(t, m, f, env.ID)
}

// A 4xx is retried after localBackoff(1) = 1s, then delivered.
func TestManagerRetriesTemporaryFailure(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, func(n int, c call) (lmtp.Result, error) {
		if n == 0 {
			return lmtp.Result{c.rcpts[0]: smtpReply(451, smtp.EnhancedCode{4, 3, 0}, "busy")}, nil
		}
		return accept(c.rcpts), nil
	})
	env := enqueue(t, m, s, "x", "a@example.test")

	first := nextCall(t, f)
	second := nextCall(t, f)
	// second.env is what the first attempt committed.
	r := second.env.Recipients[0]
	if r.State != queue.Pending || r.Attempts != 1 || !strings.HasPrefix(r.LastError, "451 ") || !strings.HasSuffix(r.LastError, " busy") {
		t.Errorf("after a 451: %+v", r)
	}
	wait := r.NextAttempt.Sub(first.at)
	if wait < 900*time.Millisecond || wait > time.Second {
		t.Errorf("NextAttempt is %v after the first attempt, want 1s", wait)
	}
	if second.at.Before(r.NextAttempt) {
		t.Errorf("retried at %v, before NextAttempt %v", second.at, r.NextAttempt)
	}
	waitRemoved(t, m, f, env.ID)
}

// A 5xx fails that recipient for good; the message leaves the queue once
// no recipient is pending.
func TestManagerPermanentFailure(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, func(n int, c call) (lmtp.Result, error) {
		if n == 0 {
			return lmtp.Result{
				"a@example.test": smtpReply(550, smtp.EnhancedCode{5, 1, 1}, "User unknown"),
				"b@example.test": smtpReply(452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full"),
			}, nil
		}
		return accept(c.rcpts), nil
	})
	env := enqueue(t, m, s, "x", "a@example.test", "b@example.test")
	nextCall(t, f)
	second := nextCall(t, f)
	if !slices.Equal(second.rcpts, []string{"b@example.test"}) {
		t.Errorf("retry went to %q, want only the deferred recipient", second.rcpts)
	}
	a, b := second.env.Recipients[0], second.env.Recipients[1]
	if a.State != queue.Failed || a.LastError != "550 5.1.1 User unknown" || a.Attempts != 1 {
		t.Errorf("after a 550: %+v", a)
	}
	if b.State != queue.Pending || !strings.HasPrefix(b.LastError, "452 ") || !strings.HasSuffix(b.LastError, " Mailbox full") || b.NextAttempt.IsZero() {
		t.Errorf("after a 452: %+v", b)
	}
	waitRemoved(t, m, f, env.ID)
}

func TestManagerAllFailedIsRemoved(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, func(_ int, c call) (lmtp.Result, error) {
		return lmtp.Result{c.rcpts[0]: smtpReply(550, smtp.EnhancedCode{5, 1, 1}, "User unknown")}, nil
	})
	env := enqueue(t, m, s, "x", "gone@example.test")
	nextCall(t, f)
	waitRemoved(t, m, f, env.ID)
}

// A transport error (MDA down, connection broken) defers every recipient
// of the attempt.
func TestManagerTransportErrorDefersAll(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, func(n int, c call) (lmtp.Result, error) {
		if n == 0 {
			return nil, errors.New("lmtp: connect mda.sock: connection refused")
		}
		return accept(c.rcpts), nil
	})
	env := enqueue(t, m, s, "x", "a@example.test", "b@example.test")
	first := nextCall(t, f)
	second := nextCall(t, f)
	if len(second.rcpts) != 2 {
		t.Errorf("retry went to %q, want both", second.rcpts)
	}
	for _, r := range second.env.Recipients {
		if r.State != queue.Pending || r.Attempts != 1 || !strings.HasSuffix(r.LastError, "lmtp: connect mda.sock: connection refused") ||
			r.NextAttempt.Sub(first.at) > time.Second || r.NextAttempt.Sub(first.at) < 900*time.Millisecond {
			t.Errorf("after a transport error: %+v", r)
		}
	}
	waitRemoved(t, m, f, env.ID)
}

// Outbound relay does not exist yet: remote recipients are never handed
// to the MDA and keep their message in the queue.
func TestManagerKeepsRemoteRecipients(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, func(_ int, c call) (lmtp.Result, error) { return accept(c.rcpts), nil })
	remoteOnly := enqueue(t, m, s, "x", "r@example.org")
	mixed := enqueue(t, m, s, "y", "r@example.org", "a@example.test")

	c := nextCall(t, f)
	if c.msg.QueueID != mixed.ID || !slices.Equal(c.rcpts, []string{"a@example.test"}) {
		t.Fatalf("MDA got %s for %q, want %s for the local recipient only", c.msg.QueueID, c.rcpts, mixed.ID)
	}
	env := waitEnvelope(t, f.spoolDir, mixed.ID, func(e *queue.Envelope) bool {
		return e.Recipients[1].State == queue.Delivered
	})
	if r := env.Recipients[0]; r.State != queue.Pending || r.Attempts != 0 {
		t.Errorf("remote recipient after the local delivery: %+v", r)
	}
	if m.Len() != 2 || readEnvelope(t, f.spoolDir, remoteOnly.ID) == nil {
		t.Errorf("queue has %d messages, want both still queued", m.Len())
	}
	select {
	case c := <-f.calls:
		t.Errorf("unexpected delivery of %s to %q", c.msg.QueueID, c.rcpts)
	case <-time.After(100 * time.Millisecond):
	}
}

// On shutdown an attempt in flight is abandoned, and the spool keeps the
// state from before it, so the message is retried at the next start.
func TestManagerShutdownKeepsState(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	m, s, f, stop := startManagerStoppable(t, func(_ int, c call) (lmtp.Result, error) {
		close(started)
		<-c.ctx.Done() // an MDA that does not answer before the shutdown
		return nil, c.ctx.Err()
	})
	env := enqueue(t, m, s, "x", "a@example.test")
	<-started
	stop()
	got := readEnvelope(t, f.spoolDir, env.ID)
	if got == nil {
		t.Fatal("envelope removed by the shutdown")
	}
	if r := got.Recipients[0]; r.State != queue.Pending || r.Attempts != 0 || !r.NextAttempt.IsZero() || r.LastError != "" {
		t.Errorf("recipient after an abandoned attempt: %+v", r)
	}
	if m.Len() != 1 {
		t.Errorf("Len = %d, want 1", m.Len())
	}
}

func TestLocalBackoff(t *testing.T) {
	tests := []struct {
		attempts  int
		max, want time.Duration
	}{
		{0, time.Minute, time.Second},
		{1, time.Minute, time.Second},
		{2, time.Minute, 2 * time.Second},
		{3, time.Minute, 4 * time.Second},
		{6, time.Minute, 32 * time.Second},
		{7, time.Minute, time.Minute}, // 64s capped
		{1000, time.Minute, time.Minute},
		{3, 3 * time.Second, 3 * time.Second},
		{1, time.Second, time.Second},
		{1 << 30, time.Hour, time.Hour}, // no overflow however many attempts
	}
	for _, tt := range tests {
		if got := localBackoff(tt.attempts, tt.max); got != tt.want {
			t.Errorf("localBackoff(%d, %v) = %v, want %v", tt.attempts, tt.max, got, tt.want)
		}
	}
}

// When every worker is busy, a due message must not make Run wake up at
// once: it would spin on the CPU until a worker is free, which can be
// the whole LMTP timeout (2 × smtp_timeout) with a hanging MDA. A worker
// that finishes wakes Run anyway.
func TestTakeDueWithNoFreeWorkerDoesNotSpin(t *testing.T) {
	m := NewManager(testConfig(), nil, nil, zerolog.Nop())
	m.Add(&queue.Envelope{ID: queue.NewID(time.Now()), Recipients: []*queue.Recipient{
		{Address: "a@example.test", State: queue.Pending}}})
	now := time.Now()
	due, next := m.takeDue(now, 0)
	if len(due) != 0 {
		t.Fatalf("took %d messages with no free worker", len(due))
	}
	if !next.After(now) {
		t.Errorf("takeDue asks Run to wake up again in %v, want a time in the future", next.Sub(now))
	}
}

// A failed attempt ends a recipient's delivery on a 5xx, on a local
// mailbox still full after mda.quota_grace (5.2.2), and on any 4xx after
// the queue lifetime (4.4.7); other 4xx replies are retried.
func TestFinalStatus(t *testing.T) {
	m := &Manager{Config: testConfig()}
	received := time.Now()
	full := smtpReply(452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full")
	tests := []struct {
		rcpt   string
		reply  *smtp.SMTPError
		age    time.Duration
		status string
		final  bool
	}{
		{"a@example.test", smtpReply(550, smtp.EnhancedCode{5, 1, 1}, "User unknown"), 0, "5.1.1", true},
		{"a@example.test", full, 59 * time.Minute, "", false},
		{"a@example.test", full, time.Hour, "5.2.2", true},
		{"a@example.org", full, time.Hour, "", false}, // a remote full mailbox waits for the lifetime
		{"a@example.org", full, 24 * time.Hour, "4.4.7", true},
		{"a@example.test", smtpReply(451, smtp.EnhancedCode{4, 3, 0}, "later"), 23 * time.Hour, "", false},
	}
	for _, tt := range tests {
		env := &queue.Envelope{Received: received}
		r := &queue.Recipient{Address: tt.rcpt}
		status, final := m.finalStatus(env, r, tt.reply, received.Add(tt.age))
		if status != tt.status || final != tt.final {
			t.Errorf("%s %v after %s: %q %v, want %q %v", tt.rcpt, tt.reply, tt.age, status, final, tt.status, tt.final)
		}
	}
}

// A message recovered with no pending recipient (the MTA died between
// recording the last delivery and removing the message) leaves the
// queue at once instead of staying in it for ever.
func TestRecoveredFinishedMessageIsRemoved(t *testing.T) {
	spool, err := queue.Open(t.TempDir(), durable.OS{})
	if err != nil {
		t.Fatal(err)
	}
	env := &queue.Envelope{ID: queue.NewID(time.Now()), Recipients: []*queue.Recipient{
		{Address: "a@example.test", State: queue.Delivered}, {Address: "b@example.test", State: queue.Failed}}}
	if err := spool.Store(env, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	m := NewManager(testConfig(), spool, nil, zerolog.Nop())
	recovered, err := spool.Recover()
	if err != nil || len(recovered) != 1 {
		t.Fatalf("recovered %v, %v", recovered, err)
	}
	m.Add(recovered[0])
	if m.Len() != 0 || spool.Has(env.ID) {
		t.Errorf("finished message still queued: len %d, in spool %v", m.Len(), spool.Has(env.ID))
	}
	if q, _ := spool.Queued(env.ID); !q {
		t.Error("the removed message is not remembered as queued")
	}
}

// A message deferred for longer than keepEnvelopeFor keeps no envelope
// in memory; its next attempt reads it back from the queue, with the
// state the last attempt recorded.
func TestDeferredEnvelopeReadBack(t *testing.T) {
	t.Parallel()
	m, s, f := startManager(t, func(n int, c call) (lmtp.Result, error) {
		if n == 0 {
			return lmtp.Result{"a@example.test": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "later"}}, nil
		}
		return lmtp.Result{"a@example.test": nil}, nil
	})
	m.Config.MTA.LocalRetryMax = config.Duration(time.Hour)
	env := &queue.Envelope{ID: queue.NewID(time.Now()), From: "sender@example.org", Received: time.Now(),
		Recipients: []*queue.Recipient{{Address: "a@example.test", State: queue.Pending, Attempts: 11}}}
	if err := s.Store(env, strings.NewReader("body\r\n")); err != nil {
		t.Fatal(err)
	}
	m.Add(env)
	nextCall(t, f) // deferred: the 12th attempt waits 1 s doubled 11 times, capped at an hour
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m.mu.Lock()
		e := m.queued[env.ID]
		kept := e.busy || e.env != nil
		m.mu.Unlock()
		if !kept {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deferred message still holds its envelope in memory")
		}
	}
	m.Flush()
	c := nextCall(t, f)
	if c.env == nil || c.env.Recipients[0].Attempts != 12 || c.env.Recipients[0].LastError == "" {
		t.Errorf("second attempt saw envelope %+v, want the first attempt's record", c.env)
	}
	waitRemoved(t, m, f, env.ID)
}

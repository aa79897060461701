package mta

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/config"
	"postline/durable"
	"postline/lmtp"
	"postline/queue"
)

func testConfig() *config.Config {
	return &config.Config{
		Hostname:    "mx.example.test",
		Domains:     []string{"example.test"},
		SMTPTimeout: config.Duration(5 * time.Second),
		MTA: config.MTA{LocalRetryMax: config.Duration(time.Minute), RetryMin: config.Duration(time.Minute),
			RetryMax: config.Duration(time.Hour), QueueLifetime: config.Duration(24 * time.Hour)},
		MDA: config.MDA{QuotaGrace: config.Duration(time.Hour)},
	}
}

// call is one invocation of the fake MDA, as the manager made it.
type call struct {
	ctx   context.Context
	at    time.Time
	rcpts []string
	data  string
	msg   lmtp.Message
	env   *queue.Envelope // the spool's envelope when the call was made
}

// fakeMDA is the manager's DeliverFunc: answer decides each call's
// outcome from its number (0-based), and every call is reported on calls.
type fakeMDA struct {
	t        *testing.T
	spoolDir string
	answer   func(n int, c call) (lmtp.Result, error)

	mu    sync.Mutex
	n     int
	calls chan call
}

func (f *fakeMDA) deliver(ctx context.Context, m lmtp.Message) (lmtp.Result, error) {
	data, err := io.ReadAll(m.Data)
	if err != nil {
		f.t.Errorf("reading the queued message: %v", err)
	}
	c := call{ctx: ctx, at: time.Now(), rcpts: m.Recipients, data: string(data), msg: m,
		env: readEnvelope(f.t, f.spoolDir, m.QueueID)}
	f.mu.Lock()
	n := f.n
	f.n++
	f.mu.Unlock()
	res, err := f.answer(n, c)
	f.calls <- c
	return res, err
}

// readEnvelope reads id's envelope as the spool last committed it, or nil.
func readEnvelope(t *testing.T, spoolDir, id string) *queue.Envelope {
	envs, err := queue.Inspect(spoolDir)
	if err != nil {
		t.Errorf("reading envelope %s: %v", id, err)
		return nil
	}
	return envs[id]
}

// startManager runs a manager over a fresh spool until the test ends.
func startManager(t *testing.T, answer func(n int, c call) (lmtp.Result, error)) (*Manager, *queue.Spool, *fakeMDA) {
	t.Helper()
	m, s, f, _ := startManagerStoppable(t, answer)
	return m, s, f
}

// startManagerStoppable also returns stop, which cancels Run's context
// and returns once Run has returned.
func startManagerStoppable(t *testing.T, answer func(n int, c call) (lmtp.Result, error)) (*Manager, *queue.Spool, *fakeMDA, func()) {
	t.Helper()
	dir := t.TempDir()
	spool, err := queue.Open(dir, durable.OS{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMDA{t: t, spoolDir: dir, answer: answer, calls: make(chan call, 100)}
	m := NewManager(testConfig(), spool, f.deliver, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return m, spool, f, stop
}

// enqueue stores a message as the SMTP session does and hands it over.
func enqueue(t *testing.T, m *Manager, s *queue.Spool, body string, rcpts ...string) *queue.Envelope {
	t.Helper()
	env := &queue.Envelope{ID: queue.NewID(time.Now()), From: "sender@example.org", Received: time.Now()}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, &queue.Recipient{Address: r, State: queue.Pending})
	}
	if err := s.Store(env, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	m.Add(env)
	return env
}

func nextCall(t *testing.T, f *fakeMDA) call {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery attempt within 10s")
		return call{}
	}
}

// waitRemoved waits until the manager has dropped id and its files.
func waitRemoved(t *testing.T, m *Manager, f *fakeMDA, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		_, err := os.Stat(filepath.Join(f.spoolDir, "msg", id))
		if !m.has(id) && errors.Is(err, os.ErrNotExist) && readEnvelope(t, f.spoolDir, id) == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("message %s still queued after 10s", id)
}

// waitEnvelope waits until the committed envelope of id satisfies ok.
func waitEnvelope(t *testing.T, dir, id string, ok func(*queue.Envelope) bool) *queue.Envelope {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if env := readEnvelope(t, dir, id); env != nil && ok(env) {
			return env
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("envelope %s never reached the expected state", id)
	return nil
}

func smtpReply(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

func accept(rcpts []string) lmtp.Result {
	res := lmtp.Result{}
	for _, r := range rcpts {
		res[r] = nil
	}
	return res
}

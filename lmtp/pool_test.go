package lmtp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"postline/lmtp"
)

func poolDeliver(t *testing.T, p *lmtp.Pool, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.Deliver(ctx, lmtp.Message{QueueID: id, From: "x@example.org", Recipients: []string{"alice@example.test"},
		Data: strings.NewReader("Subject: " + id + "\r\n\r\nbody\r\n")})
	if err != nil || res["alice@example.test"] != nil {
		t.Fatalf("delivery %s: %v, %v", id, res, err)
	}
}

// Deliveries one after the other share one session.
func TestPoolReusesSession(t *testing.T) {
	m := startMDA(t)
	p := &lmtp.Pool{Socket: m.socket, LHLO: "mta.test", MaxIdle: 2, IdleTimeout: time.Minute}
	defer p.Close()
	for _, id := range []string{"Q1", "Q2", "Q3"} {
		poolDeliver(t, p, id)
	}
	if n := m.accepted.Load(); n != 1 {
		t.Errorf("%d connections for 3 deliveries, want 1", n)
	}
	if got := m.messages(t, "alice"); len(got) != 3 {
		t.Errorf("alice got %d copies, want 3", len(got))
	}
}

// A kept session the MDA closed (it restarted) is replaced: the delivery
// goes through on a new one, once.
func TestPoolReplacesClosedSession(t *testing.T) {
	m := startMDA(t)
	p := &lmtp.Pool{Socket: m.socket, LHLO: "mta.test", MaxIdle: 2, IdleTimeout: time.Minute}
	defer p.Close()
	poolDeliver(t, p, "Q1")
	m.srv.Close() // closes the kept session's connection too
	m.serve(t)
	poolDeliver(t, p, "Q2")
	if got := m.messages(t, "alice"); len(got) != 2 {
		t.Errorf("alice got %d copies, want 2", len(got))
	}
	if n := m.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the first, then one after the restart", n)
	}
}

// A session kept longer than IdleTimeout is not used again.
func TestPoolDropsIdleSession(t *testing.T) {
	m := startMDA(t)
	p := &lmtp.Pool{Socket: m.socket, LHLO: "mta.test", MaxIdle: 2, IdleTimeout: time.Millisecond}
	defer p.Close()
	poolDeliver(t, p, "Q1")
	time.Sleep(5 * time.Millisecond)
	poolDeliver(t, p, "Q2")
	if n := m.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

package mta

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"postline/queue"
)

func envAt(addr string, at time.Time) *queue.Envelope {
	return &queue.Envelope{ID: queue.NewID(time.Now()), Recipients: []*queue.Recipient{
		{Address: addr, State: queue.Pending, NextAttempt: at}}}
}

// Messages are taken when due, earliest first, and Run is told when the
// next one falls due.
func TestScheduleTakesDueInOrder(t *testing.T) {
	m := NewManager(testConfig(), nil, nil, zerolog.Nop())
	now := time.Now()
	later, soon, overdue := envAt("a@example.test", now.Add(3*time.Second)),
		envAt("b@example.test", now.Add(time.Second)), envAt("c@example.test", now.Add(-time.Second))
	for _, env := range []*queue.Envelope{later, soon, overdue} {
		m.Add(env)
	}
	for _, step := range []struct {
		at   time.Time
		want *queue.Envelope
		next time.Time
	}{
		{now, overdue, now.Add(time.Second)}, // one taken: Run looks again within a second
		{now.Add(2 * time.Second), soon, now.Add(3 * time.Second)},
		{now.Add(4 * time.Second), later, now.Add(4 * time.Second).Add(time.Second)},
	} {
		due, next := m.takeDue(step.at, 10)
		if len(due) != 1 || due[0].env != step.want {
			t.Fatalf("at +%v: took %d messages, want %s", step.at.Sub(now), len(due), step.want.Recipients[0].Address)
		}
		if !next.Equal(step.next) {
			t.Errorf("at +%v: next wake at +%v, want +%v", step.at.Sub(now), next.Sub(now), step.next.Sub(now))
		}
	}
}

// A message with nothing to try (a remote recipient, relaying off) is
// parked, not taken, and looked at again later: relaying turned on, it
// is taken at the next look.
func TestScheduleRechecksParked(t *testing.T) {
	m := NewManager(testConfig(), nil, nil, zerolog.Nop())
	env := envAt("someone@example.org", time.Time{})
	env.Relay = true
	m.Add(env)
	now := time.Now()
	if due, next := m.takeDue(now, 10); len(due) != 0 || next.After(now.Add(parkedRecheck)) {
		t.Fatalf("took %d, next wake at +%v: want none, and a look again within %v", len(due), next.Sub(now), parkedRecheck)
	}
	m.Relay = func(context.Context, *queue.Envelope, string, []string, func() (io.ReadCloser, error)) Outcome {
		return Outcome{}
	}
	if due, _ := m.takeDue(now.Add(parkedRecheck), 10); len(due) != 1 {
		t.Errorf("took %d after relaying was turned on, want the parked message", len(due))
	}
}

// BenchmarkScheduleWithBacklog is the scheduling cost of one new message
// (Add, then taken by Run) with 100,000 deferred messages queued: with
// the heap it does not grow with the backlog.
func BenchmarkScheduleWithBacklog(b *testing.B) {
	for _, backlog := range []int{0, 100_000} {
		b.Run(fmt.Sprint(backlog), func(b *testing.B) {
			m := NewManager(testConfig(), nil, nil, zerolog.Nop())
			now := time.Now()
			for range backlog {
				m.Add(envAt("a@example.test", now.Add(time.Hour)))
			}
			for b.Loop() {
				env := envAt("a@example.test", time.Time{})
				m.Add(env)
				due, _ := m.takeDue(now, 1)
				if len(due) != 1 {
					b.Fatalf("took %d", len(due))
				}
				m.mu.Lock()
				delete(m.queued, env.ID)
				m.mu.Unlock()
			}
		})
	}
}

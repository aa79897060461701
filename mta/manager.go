package mta

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"postline/config"
	"postline/lmtp"
	"postline/outcomes"
	"postline/queue"
	"postline/srs"
)

// DeliverFunc hands a message to the MDA; lmtp.Deliver in production.
type DeliverFunc func(ctx context.Context, m lmtp.Message) (lmtp.Result, error)

// Manager schedules deliveries of queued messages. It owns the queued
// envelopes: a message is worked on by one attempt at a time, and every
// state change goes to the spool before the next attempt.
type Manager struct {
	Config  *config.Config
	Queue   queue.Queue
	Deliver DeliverFunc
	// Relay delivers to other domains; nil keeps such recipients queued.
	Relay RelayFunc
	Log   zerolog.Logger
	// Workers bounds concurrent deliveries to the MDA.
	Workers int
	Metrics *Metrics // nil: none
	// SRS rewrites the sender of forwarded mail (nil: off).
	SRS *srs.Rewriter
	// Outcomes records the final states of submitted messages as they
	// leave the queue, for the HTTP API (nil: none).
	Outcomes *outcomes.Store
	// Events posts submitters' delivery events to their webhooks; nil: none.
	Events *Events

	mu       sync.Mutex
	queued   map[string]*entry
	ready    readyHeap       // idle entries by next attempt (schedule.go)
	parked   map[*entry]bool // idle entries with nothing to try now
	parkedAt time.Time       // when the parked ones are looked at again
	wake     chan struct{}
}

// entry is one queued message. Its envelope stays in memory only while
// an attempt is near (keepEnvelopeFor); a message deferred for longer
// keeps just what the schedule needs, and its envelope is read back from
// the queue when its turn comes: with 100,000 messages deferred, the
// envelopes in memory cost 1.2 KB each and most of the MTA's CPU went
// to the garbage collector marking them (issue 11).
type entry struct {
	id    string
	env   *queue.Envelope // nil: read it from the queue (m.envelope)
	busy  bool
	due   time.Time // the next attempt: in the heap when deliverable
	ready bool      // a pending recipient can be tried (else parked)
	index int       // in the heap; -1 when not in it
}

// keepEnvelopeFor is how soon an entry's next attempt must be for its
// envelope to stay in memory.
const keepEnvelopeFor = time.Minute

// NewManager returns a manager for cfg's queue delivering with deliver.
func NewManager(cfg *config.Config, q queue.Queue, deliver DeliverFunc, log zerolog.Logger) *Manager {
	return &Manager{Config: cfg, Queue: q, Deliver: deliver, Log: log, Workers: max(4, cfg.MTA.MaxDeliveries),
		queued: map[string]*entry{}, wake: make(chan struct{}, 1)}
}

// Add schedules a newly queued (or recovered) message for delivery. A
// recovered message with no pending recipient, left by a crash between
// its last update and its removal, is removed instead.
func (m *Manager) Add(env *queue.Envelope) {
	if env.Done() {
		if err := m.Queue.Remove(env.ID); err != nil {
			m.Log.Error().Err(err).Str("queue_id", env.ID).Msg("cannot remove finished message")
			return
		}
		m.Log.Info().Str("queue_id", env.ID).Msg("removed (finished before a restart)")
		return
	}
	m.mu.Lock()
	if old := m.queued[env.ID]; old != nil && !old.busy {
		m.unschedule(old)
	}
	e := &entry{id: env.ID, env: env, index: -1}
	m.queued[env.ID] = e
	m.schedule(e)
	m.mu.Unlock()
	m.poke()
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queued[id] != nil
}

// Len returns the number of queued messages.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queued)
}

// Run delivers due messages until ctx is done, then waits for the
// attempts in flight.
func (m *Manager) Run(ctx context.Context) {
	sem := make(chan struct{}, m.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		due, next := m.takeDue(time.Now(), cap(sem)-len(sem))
		for _, e := range due {
			sem <- struct{}{}
			wg.Add(1)
			go func(e *entry) {
				defer func() { <-sem; wg.Done(); m.poke() }()
				m.attempt(ctx, e)
			}(e)
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-m.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// takeDue marks up to max idle messages with a due recipient busy and
// returns them, with the time the next one falls due.
func (m *Manager) takeDue(now time.Time, max int) ([]*entry, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	due, next := m.popDue(now, max)
	// Due messages left waiting for a free worker: a worker that
	// finishes wakes Run, so they must not make Run spin meanwhile.
	if len(due) > 0 && next.After(now.Add(time.Second)) {
		next = now.Add(time.Second)
	}
	return due, next
}

// nextAttempt is the earliest attempt time of env's pending recipients
// that can be delivered; ok is false when it has none.
func (m *Manager) nextAttempt(env *queue.Envelope) (at time.Time, ok bool) {
	for _, r := range env.Recipients {
		if r.State != queue.Pending || !m.deliverable(env, r) {
			continue
		}
		if !ok || r.NextAttempt.Before(at) {
			at, ok = r.NextAttempt, true
		}
	}
	return at, ok
}

// deliverable reports whether r can be tried: local recipients always,
// others only when relaying is set up and allowed for this message.
func (m *Manager) deliverable(env *queue.Envelope, r *queue.Recipient) bool {
	return m.isLocal(r.Address) || m.Relay != nil && env.Relay
}

func (m *Manager) isLocal(addr string) bool {
	_, domain, ok := splitAddress(addr)
	return ok && m.Config.IsLocalDomain(domain)
}

// release ends an attempt: with a new envelope state, or nil to keep the
// old one. A message with no pending recipient leaves the queue. The
// spool removes it while e is still busy, so that its fsync runs without
// m.mu and nobody else works on the message meanwhile.
func (m *Manager) release(e *entry, env *queue.Envelope) {
	if env != nil && env.Done() {
		err := m.recordOutcome(env)
		if err == nil {
			err = m.Queue.Remove(env.ID)
		}
		if err == nil {
			m.mu.Lock()
			delete(m.queued, env.ID)
			m.mu.Unlock()
			m.Log.Info().Str("queue_id", env.ID).Msg("removed")
			return
		}
		m.Log.Error().Err(err).Str("queue_id", env.ID).Msg("cannot remove finished message")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e.busy = false
	if env != nil {
		e.env = env
	}
	m.schedule(e)
}

// recordOutcome keeps a submitted message's final states before it
// leaves the queue (flushed first: a crash then leaves it queued, and
// the queue's state is what a query answers).
func (m *Manager) recordOutcome(env *queue.Envelope) error {
	if m.Outcomes == nil || env.AuthUser == "" {
		return nil
	}
	return m.Outcomes.Record(outcomes.FromEnvelope(env))
}

// envelope returns a copy of e's envelope, read back from the queue when
// e keeps none in memory; e must be busy (claimed) or m.mu held.
func (m *Manager) envelope(e *entry) (*queue.Envelope, error) {
	if env := e.env; env != nil {
		return env.Clone(), nil
	}
	return m.Queue.Envelope(e.id)
}

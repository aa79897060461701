package mta

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/config"
	"postline/lmtp"
	"postline/queue"
)

// DeliverFunc hands a message to the MDA; lmtp.Deliver in production.
type DeliverFunc func(ctx context.Context, m lmtp.Message) (lmtp.Result, error)

// Manager schedules deliveries of queued messages. It owns the queued
// envelopes: a message is worked on by one attempt at a time, and every
// state change goes to the spool before the next attempt.
type Manager struct {
	Config  *config.Config
	Spool   *queue.Spool
	Deliver DeliverFunc
	Log     zerolog.Logger
	// Workers bounds concurrent deliveries to the MDA.
	Workers int

	mu     sync.Mutex
	queued map[string]*entry
	wake   chan struct{}
}

type entry struct {
	env  *queue.Envelope
	busy bool
}

// NewManager returns a manager for cfg's queue delivering with deliver.
func NewManager(cfg *config.Config, spool *queue.Spool, deliver DeliverFunc, log zerolog.Logger) *Manager {
	return &Manager{Config: cfg, Spool: spool, Deliver: deliver, Log: log, Workers: 4,
		queued: map[string]*entry{}, wake: make(chan struct{}, 1)}
}

// Add schedules a newly queued (or recovered) message for delivery.
func (m *Manager) Add(env *queue.Envelope) {
	m.mu.Lock()
	m.queued[env.ID] = &entry{env: env}
	m.mu.Unlock()
	for _, r := range env.Recipients {
		if r.State == queue.Pending && !m.isLocal(r.Address) {
			m.Log.Warn().Str("queue_id", env.ID).Str("rcpt", r.Address).
				Msg("remote recipient kept in queue: outbound relay is not implemented yet")
		}
	}
	m.poke()
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
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

// takeDue marks up to max idle messages with a due local recipient busy
// and returns them, with the time the next one falls due.
func (m *Manager) takeDue(now time.Time, max int) ([]*entry, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := now.Add(time.Hour)
	var due []*entry
	for _, e := range m.queued {
		if e.busy {
			continue
		}
		at, ok := m.nextAttempt(e.env)
		switch {
		case !ok:
		case !at.After(now):
			// Due; without a free worker it waits for one, and a worker
			// that finishes wakes Run, so it must not make Run spin.
			if len(due) < max {
				e.busy = true
				due = append(due, e)
			}
		case at.Before(next):
			next = at
		}
	}
	if len(due) > 0 && next.After(now.Add(time.Second)) {
		next = now.Add(time.Second)
	}
	return due, next
}

// nextAttempt is the earliest attempt time of env's pending local
// recipients; ok is false when it has none.
func (m *Manager) nextAttempt(env *queue.Envelope) (at time.Time, ok bool) {
	for _, r := range env.Recipients {
		if r.State != queue.Pending || !m.isLocal(r.Address) {
			continue
		}
		if !ok || r.NextAttempt.Before(at) {
			at, ok = r.NextAttempt, true
		}
	}
	return at, ok
}

func (m *Manager) isLocal(addr string) bool {
	_, domain, ok := splitAddress(addr)
	return ok && m.Config.IsLocalDomain(domain)
}

// attempt delivers e's due local recipients over LMTP and records each
// result in the spool.
func (m *Manager) attempt(ctx context.Context, e *entry) {
	env := e.env.Clone()
	log := m.Log.With().Str("queue_id", env.ID).Logger()
	now := time.Now()
	var rcpts []*queue.Recipient
	for _, r := range env.Recipients {
		if r.State == queue.Pending && m.isLocal(r.Address) && !r.NextAttempt.After(now) {
			rcpts = append(rcpts, r)
		}
	}
	res, err := m.deliverLocal(ctx, env, rcpts)
	if ctx.Err() != nil && err != nil {
		m.release(e, nil) // shutting down: the spool still has the last state
		return
	}
	for _, r := range rcpts {
		r.Attempts++
		m.record(log, r, res, err, now)
	}
	if err := m.Spool.Update(env); err != nil {
		log.Error().Err(err).Msg("cannot record delivery results; will retry")
		m.release(e, nil)
		return
	}
	m.release(e, env)
}

func (m *Manager) deliverLocal(ctx context.Context, env *queue.Envelope, rcpts []*queue.Recipient) (lmtp.Result, error) {
	f, err := m.Spool.OpenMessage(env.ID)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	msg := lmtp.Message{QueueID: env.ID, From: env.From, Body8Bit: env.Body8Bit, SMTPUTF8: env.SMTPUTF8, Data: f}
	for _, r := range rcpts {
		msg.Recipients = append(msg.Recipients, r.Address)
	}
	dctx, cancel := context.WithTimeout(ctx, m.Config.SMTPTimeout.D()*2)
	defer cancel()
	return m.Deliver(dctx, msg)
}

// record applies one recipient's outcome: delivered, failed for good
// (5xx), or deferred with a backoff from 1s doubling to local_retry_max.
func (m *Manager) record(log zerolog.Logger, r *queue.Recipient, res lmtp.Result, err error, now time.Time) {
	var serr *smtp.SMTPError
	if err == nil {
		var answered bool
		if serr, answered = res[r.Address]; !answered {
			err = fmt.Errorf("no result for %s", r.Address) // never count silence as delivery
		}
	}
	l := log.With().Str("rcpt", r.Address).Int("attempt", r.Attempts).Logger()
	switch {
	case err == nil && serr == nil:
		r.State, r.LastError = queue.Delivered, ""
		l.Info().Str("relay", "mda").Msg("delivered")
	case err == nil && serr.Code >= 500:
		r.State, r.LastError = queue.Failed, fmt.Sprintf("%d %d.%d.%d %s", serr.Code,
			serr.EnhancedCode[0], serr.EnhancedCode[1], serr.EnhancedCode[2], serr.Message)
		l.Error().Int("code", serr.Code).Str("error", serr.Message).Msg("delivery failed permanently")
	default:
		if err != nil {
			r.LastError = err.Error()
		} else {
			r.LastError = fmt.Sprintf("%d %s", serr.Code, serr.Message)
		}
		r.NextAttempt = now.Add(localBackoff(r.Attempts, m.Config.MTA.LocalRetryMax.D()))
		l.Warn().Str("error", r.LastError).Time("next_attempt", r.NextAttempt).Msg("delivery deferred")
	}
}

func localBackoff(attempts int, max time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < attempts && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// release ends an attempt: with a new envelope state, or nil to keep the
// old one. A message with no pending recipient leaves the queue.
func (m *Manager) release(e *entry, env *queue.Envelope) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.busy = false
	if env == nil {
		return
	}
	e.env = env
	if env.Done() {
		if err := m.Spool.Remove(env.ID); err != nil {
			m.Log.Error().Err(err).Str("queue_id", env.ID).Msg("cannot remove finished message")
			return
		}
		delete(m.queued, env.ID)
		m.Log.Info().Str("queue_id", env.ID).Msg("removed")
	}
}

package mta

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"postline/dsn"
	"postline/queue"
)

// The administrator's view of the queue: what `postline queue` asks the
// MTA for over its admin socket (adminserver.go). Every change goes to
// the spool before it counts, as an attempt's does.

var (
	// ErrNoSuchMessage: no queued message has that ID (it may have been
	// delivered or removed meanwhile).
	ErrNoSuchMessage = errors.New("no such message in the queue")
	// ErrBusy: the message is being delivered right now; its attempt owns
	// it until it ends, so a change made now would be overwritten.
	ErrBusy = errors.New("message is being delivered right now; try again in a moment")
)

// adminStatus is the status and diagnostic of recipients returned to
// the sender by `postline queue bounce` (RFC 3463 X.0.0: other, no
// better code fits a decision made here rather than by a server).
const (
	adminStatus     = "5.0.0"
	adminDiagnostic = adminStatus + " returned by the administrator"
)

// Snapshot returns a copy of every queued envelope, sorted by ID (so by
// arrival). The copies are the caller's to keep. Envelopes kept on disk
// are read back under m.mu, so that none changes meanwhile: a listing
// of a long queue holds the queue's work up for as long.
func (m *Manager) Snapshot() []*queue.Envelope {
	m.mu.Lock()
	envs := make([]*queue.Envelope, 0, len(m.queued))
	for _, e := range m.queued {
		env, err := m.envelope(e)
		if err != nil {
			m.Log.Error().Err(err).Str("queue_id", e.id).Msg("cannot read the envelope back for a listing")
			continue
		}
		envs = append(envs, env)
	}
	m.mu.Unlock()
	sort.Slice(envs, func(i, j int) bool { return envs[i].ID < envs[j].ID })
	return envs
}

// Envelope returns a copy of message id's envelope.
func (m *Manager) Envelope(id string) (*queue.Envelope, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.queued[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	}
	return m.envelope(e)
}

// Flush makes every pending recipient due now, persists each changed
// envelope and wakes the run loop; it returns how many recipients will
// be tried again.
//
// A message being delivered right now (busy) is left alone: its attempt
// works on a copy of the envelope that replaces ours, in memory and on
// disk, when it ends (release), so a change made here would be lost. That
// attempt is itself trying every recipient that was due. The others are
// claimed (marked busy) while their new state is written, so that neither
// the run loop nor Delete nor BounceNow works on them meanwhile, and the
// slow fsync happens without holding m.mu.
func (m *Manager) Flush() int {
	m.mu.Lock()
	var claimed []*entry
	skipped := 0
	for _, e := range m.queued {
		if e.busy {
			skipped++
			continue
		}
		m.markBusy(e)
		claimed = append(claimed, e)
	}
	m.mu.Unlock()
	count := 0
	for _, e := range claimed {
		env, err := m.envelope(e) // e is ours while busy: nobody else writes e.env
		if err != nil {
			m.Log.Error().Err(err).Str("queue_id", e.id).Msg("cannot read the envelope back; message keeps its schedule")
			m.release(e, nil)
			continue
		}
		count += countPending(env)
		if !hasScheduled(env) {
			m.release(e, nil)
			continue
		}
		for _, r := range env.Recipients {
			if r.State == queue.Pending {
				r.NextAttempt = time.Time{}
			}
		}
		if err := m.Queue.Update(env); err != nil {
			m.Log.Error().Err(err).Str("queue_id", env.ID).Msg("cannot record flush; message keeps its schedule")
			m.release(e, nil)
			count -= countPending(env)
			continue
		}
		m.release(e, env)
	}
	m.Log.Info().Int("recipients", count).Int("busy_messages", skipped).Msg("queue flushed by the administrator")
	m.poke()
	return count
}

func countPending(env *queue.Envelope) int {
	n := 0
	for _, r := range env.Recipients {
		if r.State == queue.Pending {
			n++
		}
	}
	return n
}

// hasScheduled reports whether a pending recipient of env waits for a
// later attempt; only then does Flush need to write env.
func hasScheduled(env *queue.Envelope) bool {
	for _, r := range env.Recipients {
		if r.State == queue.Pending && !r.NextAttempt.IsZero() {
			return true
		}
	}
	return false
}

// claim marks message id busy for an administrative change and returns
// its entry; the caller ends with m.release.
func (m *Manager) claim(id string) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.queued[id]
	switch {
	case e == nil:
		return nil, fmt.Errorf("%w: %s", ErrNoSuchMessage, id)
	case e.busy:
		return nil, fmt.Errorf("%s: %w", id, ErrBusy)
	}
	m.markBusy(e)
	return e, nil
}

// Delete removes message id from the queue and the spool without
// delivering or bouncing anything.
func (m *Manager) Delete(id string) error {
	e, err := m.claim(id)
	if err != nil {
		return err
	}
	if err := m.Queue.Remove(id); err != nil {
		m.release(e, nil)
		return err
	}
	m.mu.Lock()
	delete(m.queued, id)
	m.mu.Unlock()
	m.Log.Warn().Str("queue_id", id).Msg("deleted by the administrator")
	return nil
}

// BounceNow gives up on every pending recipient of message id: each is
// marked failed, one bounce (RFC 3464) goes to the sender, as for any
// permanent failure, and the message leaves the queue. As in an
// attempt, the bounce is queued before the new state is written, so a
// crash in between can repeat the bounce but never lose it.
func (m *Manager) BounceNow(id string) error {
	e, err := m.claim(id)
	if err != nil {
		return err
	}
	env, err := m.envelope(e)
	if err != nil {
		m.release(e, nil)
		return err
	}
	log := m.Log.With().Str("queue_id", id).Logger()
	now := time.Now()
	var failed []dsn.Recipient
	for _, r := range env.Recipients {
		if r.State != queue.Pending {
			continue
		}
		r.State, r.NextAttempt, r.LastError = queue.Failed, time.Time{}, adminDiagnostic
		l := log.With().Str("rcpt", r.Address).Logger()
		if n := notice(l, r, dsn.Recipient{Action: dsn.ActionFailed, Status: adminStatus, Diagnostic: adminDiagnostic}); n != nil {
			failed = append(failed, *n) // as NOTIFY asks (RFC 3461 §4.1)
		}
		l.Warn().Msg("returned to sender by the administrator")
	}
	m.report(log, env, failed, now) // calls m.Add, so m.mu must not be held here
	if err := m.Queue.Update(env); err != nil {
		m.release(e, nil)
		return err
	}
	m.release(e, env)
	if m.has(id) {
		return fmt.Errorf("%s: recipients returned, but the message could not be removed from the spool (see the MTA log)", id)
	}
	return nil
}

// QueueStats is the queue at a glance, for `postline status`.
type QueueStats struct {
	Messages int       `json:"messages"`
	Active   int       `json:"active"`   // being attempted now
	Due      int       `json:"due"`      // waiting for a free worker
	Deferred int       `json:"deferred"` // waiting for their next attempt
	Parked   int       `json:"parked"`   // nothing to try until the config changes
	Oldest   time.Time `json:"oldest"`   // the oldest message's arrival; zero when empty
	Totals
}

// Stats counts the queued messages by state, from what is in memory:
// no envelope is read back, so it costs little with a long queue.
func (m *Manager) Stats(now time.Time) QueueStats {
	m.mu.Lock()
	s := QueueStats{Messages: len(m.queued)}
	oldest := ""
	for id, e := range m.queued {
		switch {
		case e.busy:
			s.Active++
		case !e.ready:
			s.Parked++
		case e.due.After(now):
			s.Deferred++
		default:
			s.Due++
		}
		if oldest == "" || id < oldest { // IDs sort by arrival
			oldest = id
		}
	}
	m.mu.Unlock()
	s.Oldest, _ = queue.IDTime(oldest)
	s.Totals = m.Metrics.Totals()
	return s
}

package mta

import (
	"container/heap"
	"time"
)

// The manager's schedule: the idle messages that have a recipient it can
// try, in a heap by the time of their next attempt, so that finding what
// is due costs O(log n) per message taken, not a look at every queued
// envelope at every wake. An entry is in the heap exactly when it is
// idle and has a deliverable pending recipient; one with none (a remote
// recipient while relaying is off, a domain no longer local) is parked
// and looked at again every parkedRecheck, since a reloaded list of
// local domains can make it deliverable.
//
// Every function here is called with m.mu held.

// parkedRecheck is how often parked messages are looked at again.
const parkedRecheck = time.Minute

// readyHeap orders idle entries by their next attempt.
type readyHeap []*entry

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *readyHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *readyHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h, e.index = old[:len(old)-1], -1
	return e
}

// schedule puts the idle entry e in the heap at its next attempt, or
// parks it when it has nothing to try. The next attempt comes from e's
// envelope when it has one in memory, which it then lets go of when that
// attempt is not near; else e keeps the schedule it had. A parked entry
// keeps its envelope, for recheckParked (parked messages are rare: a
// remote recipient while relaying is off).
func (m *Manager) schedule(e *entry) {
	if e.env != nil {
		e.due, e.ready = m.nextAttempt(e.env)
		if e.ready && time.Until(e.due) > keepEnvelopeFor {
			e.env = nil
		}
	}
	if !e.ready {
		if m.parked == nil {
			m.parked = map[*entry]bool{}
		}
		m.parked[e] = true
		return
	}
	heap.Push(&m.ready, e)
}

// markBusy claims the idle entry e for an attempt or an administrative
// change: out of the schedule until release puts it back.
func (m *Manager) markBusy(e *entry) {
	e.busy = true
	m.unschedule(e)
}

// unschedule takes e out of the heap or the parked set: it is being
// worked on, or leaves the queue.
func (m *Manager) unschedule(e *entry) {
	if e.index >= 0 {
		heap.Remove(&m.ready, e.index)
	}
	delete(m.parked, e)
}

// popDue marks busy and returns up to max entries due at now, with the
// time the next one falls due.
func (m *Manager) popDue(now time.Time, max int) ([]*entry, time.Time) {
	if !now.Before(m.parkedAt) {
		m.recheckParked(now)
	}
	var due []*entry
	for len(due) < max && len(m.ready) > 0 && !m.ready[0].due.After(now) {
		e := m.ready[0]
		m.markBusy(e)
		due = append(due, e)
	}
	next := now.Add(time.Hour)
	switch {
	case len(m.ready) == 0:
	case !m.ready[0].due.After(now):
		// Due, but no worker is free: one that finishes wakes Run, which
		// must not spin meanwhile.
		next = now.Add(time.Second)
	case m.ready[0].due.Before(next):
		next = m.ready[0].due
	}
	if len(m.parked) > 0 && m.parkedAt.Before(next) {
		next = m.parkedAt
	}
	return due, next
}

// recheckParked schedules the parked entries that have become
// deliverable.
func (m *Manager) recheckParked(now time.Time) {
	parked := m.parked
	m.parked = nil
	for e := range parked {
		m.schedule(e)
	}
	m.parkedAt = now.Add(parkedRecheck)
}

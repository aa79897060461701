package queue

import "io"

// Queue is what the MTA needs of its queue, and all it may rely on. The
// local spool (Spool) is one; a queue replicated over a cluster of
// postline nodes can be another without a change to the MTA. Whoever
// holds a Queue claims a message before working on it (the MTA's
// manager does so in memory, as the one process using the spool; a
// shared queue would claim with a lease), so no two attempts of one
// message overlap.
type Queue interface {
	// Store makes a new message durable: when it returns nil the MTA
	// may answer 250. env.Size is set from data.
	Store(env *Envelope, data io.Reader) error
	// Update durably records a queued message's new state.
	Update(env *Envelope) error
	// Remove durably takes a finished message out of the queue.
	Remove(id string) error
	// OpenMessage opens a queued message's bytes.
	OpenMessage(id string) (io.ReadCloser, error)
	// Envelope reads a queued message's envelope as last stored, into a
	// copy that is the caller's.
	Envelope(id string) (*Envelope, error)
	// Has reports whether message id is in the queue, so that an ID a
	// client proposes is never reused.
	Has(id string) bool
	// Queued reports whether message id was queued: it is in the queue,
	// or it left it lately (the MSA asks after a broken connection).
	Queued(id string) (bool, error)
	// Recover returns the queued messages at start, oldest first.
	Recover() ([]*Envelope, error)
}

var _ Queue = (*Spool)(nil)

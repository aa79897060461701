// Package outcomes is what the HTTP API reports of a submitted message:
// each recipient's state, from the MTA's queue while the message is
// there, and afterwards from a small record the MTA keeps of the final
// results (state_dir/mta/outcomes/, one append-only file per day, kept
// for Retention), asked over the MTA's status socket.
//
// outcomes never changes a delivery and never reads the queue's files:
// the MTA hands it envelopes, and the MSA only ever talks to the socket.
package outcomes

import (
	"time"

	"postline/queue"
)

// A recipient's state as the API names it.
const (
	Queued    = "queued"    // waiting for its first attempt
	Deferred  = "deferred"  // tried, refused for now (Reply), retried later
	Delivered = "delivered" // accepted by the MDA or the next hop
	Bounced   = "bounced"   // refused for good or expired (Reply); the sender got a bounce
)

// Recipient is one recipient's state.
type Recipient struct {
	Address     string    `json:"address"`
	State       string    `json:"state"`
	Reply       string    `json:"reply,omitempty"` // the last refusal, for deferred and bounced
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"` // deferred only
}

// Message is a message's recipients and whose message it is.
type Message struct {
	ID         string      `json:"id"`
	AuthUser   string      `json:"auth_user"` // the submitter; only they may see it
	Received   time.Time   `json:"received"`
	Finished   time.Time   `json:"finished,omitzero"` // when it left the queue
	Recipients []Recipient `json:"recipients"`
}

// FromEnvelope is env's state as the API reports it.
func FromEnvelope(env *queue.Envelope) Message {
	m := Message{ID: env.ID, AuthUser: env.AuthUser, Received: env.Received}
	for _, r := range env.Recipients {
		out := Recipient{Address: r.Address, Attempts: r.Attempts}
		switch {
		case r.State == queue.Delivered:
			out.State = Delivered
		case r.State == queue.Failed:
			out.State, out.Reply = Bounced, r.LastError
		case r.Attempts == 0 && r.LastError == "":
			out.State = Queued
		default:
			out.State, out.Reply, out.NextAttempt = Deferred, r.LastError, r.NextAttempt
		}
		m.Recipients = append(m.Recipients, out)
	}
	return m
}

package queue

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// State is where one recipient of a queued message stands.
type State string

const (
	// Pending recipients wait for their next delivery attempt.
	Pending State = "pending"
	// Delivered recipients were accepted by the next hop.
	Delivered State = "delivered"
	// Failed recipients got a permanent error.
	Failed State = "failed"
)

// Recipient is one envelope recipient and its delivery state.
type Recipient struct {
	Address     string    `json:"address"`
	State       State     `json:"state"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	// The client's DSN request for this recipient (RFC 3461 §4.1, §4.2):
	// NOTIFY as dsn.Notify and ORCPT as dsn.ORcpt, "" when not given.
	Notify string `json:"notify,omitempty"`
	ORcpt  string `json:"orcpt,omitempty"`
	// Warned says the delay warning for this recipient went out.
	Warned bool `json:"warned,omitempty"`
	// Forwarded marks a recipient an alias sent out of the local
	// domains: its mail leaves with an SRS sender (package srs).
	Forwarded bool `json:"forwarded,omitempty"`
	// TLS is how the last session with a remote host went: the TLS
	// policy that applied and the certificate check (mta's describeTLS).
	TLS string `json:"tls,omitempty"`
}

// Envelope is everything the queue knows about a message besides its bytes.
type Envelope struct {
	ID       string    `json:"id"`
	From     string    `json:"from"`
	AuthUser string    `json:"auth_user,omitempty"` // authenticated submitter, if any
	Received time.Time `json:"received"`
	Size     int64     `json:"size"`
	// Checksum is the CRC-32C of the message data, by which Recover
	// tells complete data from a Store a crash cut short.
	Checksum uint32 `json:"crc32c,omitempty"`
	Body8Bit bool   `json:"body_8bit,omitempty"`
	SMTPUTF8 bool   `json:"smtputf8,omitempty"`
	// Relay allows delivery to other domains: set for mail from the MSA's
	// trusted socket and for bounces, never for mail from the internet.
	Relay bool `json:"relay,omitempty"`
	// Folder is the mailbox folder a filter plugin chose for local
	// recipients (e.g. "Junk"), "" for the inbox.
	Folder string `json:"folder,omitempty"`
	// The client's DSN request for the message (RFC 3461 §4.3, §4.4):
	// RET ("FULL", "HDRS" or "") and ENVID.
	Return string `json:"dsn_ret,omitempty"`
	EnvID  string `json:"dsn_envid,omitempty"`
	// RequireTLS is MAIL's REQUIRETLS (RFC 8689): relay only over
	// verified TLS to next hops that offer REQUIRETLS, else bounce.
	RequireTLS bool `json:"requiretls,omitempty"`

	Recipients []*Recipient `json:"recipients"`
}

// Done reports whether no recipient is pending any more.
func (e *Envelope) Done() bool {
	for _, r := range e.Recipients {
		if r.State == Pending {
			return false
		}
	}
	return true
}

// attempted reports whether any delivery of the message was tried, so it
// was acknowledged and queued long ago.
func (e *Envelope) attempted() bool {
	for _, r := range e.Recipients {
		if r.Attempts > 0 || r.State != Pending {
			return true
		}
	}
	return false
}

// Clone returns a deep copy, so a delivery can work on its own copy.
func (e *Envelope) Clone() *Envelope {
	c := *e
	c.Recipients = make([]*Recipient, len(e.Recipients))
	for i, r := range e.Recipients {
		rc := *r
		c.Recipients[i] = &rc
	}
	return &c
}

// idAlphabet is in ASCII order, so IDs sort as their times do; vowels
// but A are left out, so IDs spell no words.
const idAlphabet = "0123456789ABCDFGHJKLMNPQRSTVWXYZ"

var idEncoding = base32.NewEncoding(idAlphabet).WithPadding(base32.NoPadding)

// NewID returns a queue ID: 48 bits of milliseconds then 32 random bits,
// so IDs sort by arrival, never repeat in practice, and are safe as file
// names and in logs (16 characters of [0-9A-Z]).
func NewID(now time.Time) string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	return idEncoding.EncodeToString(b[:])
}

// IDTime returns when the message with ID id arrived (NewID's
// milliseconds); ok is false for a string that is no queue ID.
func IDTime(id string) (time.Time, bool) {
	if !ValidID(id) {
		return time.Time{}, false
	}
	b, err := idEncoding.DecodeString(id)
	if err != nil || len(b) != 10 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8]) >> 16)), true
}

// IDParam is the MAIL FROM parameter with which the MSA hands the queue
// ID it allocated to the MTA over the trusted socket, so that a message
// keeps one ID from submission to delivery.
const IDParam = "X-POSTLINE-ID"

// FolderParam is the MAIL FROM parameter that carries a filter's choice
// of folder (Envelope.Folder) from the MSA to the MTA over the trusted
// socket, and from the MTA to the MDA over LMTP.
const FolderParam = "X-POSTLINE-FOLDER"

// QueuedParam is the MAIL FROM parameter with which the MSA asks the MTA
// whether the message with that queue ID was queued, when its connection
// broke after the end of DATA: MAIL is answered 250 if so, 550 if not,
// and no transaction follows.
const QueuedParam = "X-POSTLINE-QUEUED"

// RequireTLSParam is the MAIL FROM parameter with which the MSA passes a
// submission's REQUIRETLS to the MTA over the trusted socket, which has
// no TLS and so cannot offer the extension itself (RFC 8689 §4.1).
const RequireTLSParam = "X-POSTLINE-REQUIRETLS"

// ForwardParam is the MAIL FROM parameter with which the MDA hands the MTA
// a message a user's Sieve script redirects (RFC 5228 §4.2): its
// recipients are forwarded mail, whose sender SRS rewrites as for an alias.
const ForwardParam = "X-POSTLINE-FORWARD"

// ValidID reports whether id has the shape NewID produces, so an ID from
// outside (an admin command, a file name) can be used as a path safely.
func ValidID(id string) bool {
	if len(id) != 16 {
		return false
	}
	return strings.Trim(id, idAlphabet) == ""
}

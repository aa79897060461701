// Package sdk is what a postline filter plugin written in Go imports. The
// author implements one or more of the small hook interfaces below on one
// type and calls Serve from main:
//
//	type filter struct{}
//
//	func (filter) Rcpt(ctx context.Context, r *sdk.Rcpt) (sdk.Verdict, error) {
//		if strings.HasPrefix(r.Recipient, "spamtrap@") {
//			return sdk.Reject(550, "5.7.1", "no thanks"), nil
//		}
//		return sdk.Continue(), nil
//	}
//
//	func main() { sdk.Serve(filter{}) }
//
// Hooks for different messages run concurrently, so the type must be safe
// for concurrent use. A returned error, a panic or a hook that outlives the
// configured timeout is the plugin's failure: the host answers 451 4.7.0
// (or continues, per the plugin's on_error) and restarts a crashed or hung
// plugin in a new process.
//
// sdk never writes to stdout (go-plugin's handshake travels there) and
// never holds a whole message body in memory: the body is an io.Reader fed
// by the host's 64 KiB chunks.
package sdk

import (
	"context"
	"io"

	"github.com/emersion/go-message/textproto"
)

// ConnectFilter runs once per SMTP session, after HELO/EHLO.
type ConnectFilter interface {
	Connect(ctx context.Context, c *Conn) (Verdict, error)
}

// DisconnectFilter is told when an SMTP session ends (also when STARTTLS
// starts it anew), to let go of what it keeps per connection. It runs
// whatever hooks the config lists.
type DisconnectFilter interface {
	Disconnect(ctx context.Context, c *Conn) error
}

// MailFilter runs for each MAIL FROM.
type MailFilter interface {
	Mail(ctx context.Context, m *Mail) (Verdict, error)
}

// RcptFilter runs for each RCPT TO.
type RcptFilter interface {
	Rcpt(ctx context.Context, r *Rcpt) (Verdict, error)
}

// DataFilter runs once the whole message is in, before the reply to the
// final dot. Header edits in its verdict change the stored message.
type DataFilter interface {
	Data(ctx context.Context, m *Message) (Verdict, error)
}

// HeadersOnly may be implemented by a DataFilter that never reads the
// body: the host then sends it the header block only, which saves
// streaming the body. It is asked once, right after Configure.
type HeadersOnly interface {
	HeadersOnly() bool
}

// BodyReplacer may be implemented by a DataFilter whose verdicts may
// carry a new body (Verdict.ReplaceBody): the host then asks through a
// call that can stream the new body back. It is asked once, right after
// Configure.
type BodyReplacer interface {
	ReplacesBody() bool
}

// DeliverFilter runs in the MDA once per recipient, just before the
// message is written into that recipient's Maildir.
type DeliverFilter interface {
	Deliver(ctx context.Context, d *Delivery) (Verdict, error)
}

// DeliverBody may be implemented by a DeliverFilter that reads the body
// (a Sieve body test, a webhook that posts the message): the host then
// streams it after the header. It is asked once, right after Configure.
type DeliverBody interface {
	DeliverBody() bool
}

// Configurable receives the plugin's [plugins.config] table at every
// start of the process, before any hook. TOML integers arrive as int64,
// floats as float64, tables as map[string]any, arrays as []any and
// datetimes as RFC 3339 strings. An error stops the daemon's start.
type Configurable interface {
	Configure(config map[string]any) error
}

// HostAware receives who runs the plugin, before Configure.
type HostAware interface {
	SetHost(h Host)
}

// Host says who runs the plugin.
type Host struct {
	Plugin   string // the plugin's name in the config
	Daemon   string // "msa", "mta" or "mda"
	Hostname string // the config's hostname, for trace headers
	StateDir string // a folder for the plugin's state across restarts, "" when none
}

// Conn describes the client's SMTP session.
type Conn struct {
	Daemon     string // "msa" or "mta"
	ClientIP   string
	ClientPort int
	ReverseDNS string // verified PTR name, "" when none
	Helo       string
	Protocol   string // "SMTP" (HELO), "ESMTP" (EHLO) or "LMTP"
	TLSVersion string // "" on a plaintext session, else e.g. "TLS1.3"
	TLSCipher  string
	AuthUser   string // "" when not authenticated
	QueueID    string // the current message's queue ID, when known
}

// Mail is one MAIL FROM.
type Mail struct {
	Conn   *Conn
	Sender string            // "" for the null sender <>
	Params map[string]string // ESMTP parameters, upper-case keys
}

// Rcpt is one RCPT TO.
type Rcpt struct {
	Conn      *Conn
	Sender    string
	Recipient string
}

// Message is one message at the end of DATA.
type Message struct {
	Conn       *Conn
	Sender     string
	Recipients []string
	Size       int64 // header plus body in bytes, 0 when unknown
	// Header is RawHeader parsed; a malformed header leaves the fields
	// before the bad line.
	Header textproto.Header
	// RawHeader is the header block as received, CRLF line ends,
	// including the empty line that ends it.
	RawHeader []byte
	// Body reads the body (everything after the header block) as it
	// arrives. It is empty for a HeadersOnly filter. A filter may return
	// without reading it all.
	Body io.Reader
}

// Delivery is one recipient's copy, just before the MDA writes it.
type Delivery struct {
	Recipient string
	Sender    string
	QueueID   string
	Folder    string // folder an earlier filter chose, "" for INBOX
	Header    textproto.Header
	RawHeader []byte
	// Body reads the body as the MDA stores it (LF line ends), for a
	// filter that implements DeliverBody; empty for the others.
	Body    io.Reader
	Size    int64  // the whole message's size in bytes, 0 when unknown
	Mailbox string // the recipient's Maildir folder (its INBOX)
}

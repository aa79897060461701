// Package host is the daemons' side of filter plugins: for one daemon it
// starts the configured plugin programs (hashicorp/go-plugin, gRPC),
// supervises them, and runs them in order as a Chain at each hook.
//
// A plugin that crashes, hangs past its timeout or fails a call never
// hangs a session or loses a message: the call turns into 451 4.7.0
// "filter NAME unavailable" (or, with on_error = "continue", into no
// objection), and a crashed or hung process is killed and started afresh
// with a doubling delay. host never answers an SMTP client and never
// writes a message itself: daemons turn a Result into their reply and
// apply header edits with ApplyEdits.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/rs/zerolog"

	"postline/plugins/pb"
)

// Options says which daemon the chain serves.
type Options struct {
	// Daemon is "msa", "mta" or "mda"; specs for other daemons are skipped.
	Daemon string
	// Hostname is passed to plugins at start (for trace headers).
	Hostname string
	// Log receives go-plugin's lines and the plugins' own, each with
	// plugin=NAME; its level is passed on to the plugins.
	Log zerolog.Logger
	// StateDir, when set, holds a folder per plugin for its state across
	// restarts (e.g. state_dir/mda/plugins), made as needed.
	StateDir string
	// AutoMTLS runs each plugin's unix socket under one-time mutual TLS.
	// The socket is private to the daemon's user already; this costs
	// 20-30 ms per start and 5-10 % per call.
	AutoMTLS bool
}

// Chain is one daemon's plugins in order. Its methods are safe for
// concurrent use and a nil *Chain (no plugins) continues everything.
type Chain struct {
	opts  Options
	procs atomic.Pointer[[]*proc] // replaced as a whole by Reload
}

// Start starts the plugins of specs meant for opts.Daemon, lowest Order
// first, and asks each which hooks it implements. Any invalid spec or any
// plugin that fails to start or to accept its config is an error (a
// daemon should refuse to start on it); after Start, failures only ever
// restart the plugin. With no plugins for the daemon the Chain is empty.
func Start(ctx context.Context, specs []Spec, opts Options) (*Chain, error) {
	if hooksOf(opts.Daemon) == nil {
		return nil, fmt.Errorf("plugins: unknown daemon %q", opts.Daemon)
	}
	procs, err := startProcs(ctx, specs, opts)
	if err != nil {
		return nil, err
	}
	c := &Chain{opts: opts}
	c.procs.Store(&procs)
	return c, nil
}

// startProcs validates specs and starts those of opts.Daemon in order.
func startProcs(ctx context.Context, specs []Spec, opts Options) ([]*proc, error) {
	var mine []Spec
	var errs []error
	seen := map[string]bool{}
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if s.Daemon != opts.Daemon {
			continue
		}
		if seen[s.Name] {
			errs = append(errs, &FieldError{s.Name, "name", "two plugins of the " + s.Daemon + " have this name"})
		}
		seen[s.Name] = true
		mine = append(mine, s.withDefaults())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.SliceStable(mine, func(i, j int) bool { return mine[i].Order < mine[j].Order })
	var procs []*proc
	for _, s := range mine {
		p, err := newProc(ctx, s, opts)
		if err != nil {
			closeAll(procs)
			return nil, fmt.Errorf("plugins: %s: %w", s.Name, err)
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// Reload starts the plugins of specs and, once they all run, puts them
// in place of the chain's: calls from then on go to the new ones, and
// the old ones are stopped when the calls they serve have had their
// timeout. On an error the chain keeps its plugins.
func (c *Chain) Reload(ctx context.Context, specs []Spec) error {
	procs, err := startProcs(ctx, specs, c.opts)
	if err != nil {
		return err
	}
	old := c.procs.Swap(&procs)
	var drain time.Duration
	for _, p := range *old {
		drain = max(drain, p.spec.Timeout)
	}
	time.AfterFunc(drain, func() { closeAll(*old) })
	return nil
}

// Close stops every plugin of the chain (in parallel, at most about 3 s).
func (c *Chain) Close() error {
	if c == nil {
		return nil
	}
	closeAll(c.active())
	return nil
}

func closeAll(procs []*proc) {
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.close)
	}
	wg.Wait()
}

// Cleanup kills every plugin process this daemon started, of any chain;
// for exit paths where Close cannot run (a fatal error, a signal handler).
func Cleanup() { goplugin.CleanupClients() }

// Has reports whether any plugin runs at hook, so a daemon can skip
// collecting what only plugins would need.
func (c *Chain) Has(h Hook) bool {
	for _, p := range c.active() {
		if p.hooks[h] {
			return true
		}
	}
	return false
}

// WantsBody reports whether any data plugin reads the body; if none
// does, Data may be given a nil body.
func (c *Chain) WantsBody() bool { return c.bodyReaders() > 0 }

// bodyReaders counts the data plugins that read the body.
func (c *Chain) bodyReaders() int {
	n := 0
	for _, p := range c.active() {
		if p.hooks[HookData] && !p.headersOnly {
			n++
		}
	}
	return n
}

func (c *Chain) active() []*proc {
	if c == nil {
		return nil
	}
	return *c.procs.Load()
}

// Status is one plugin's state, for logs, admin commands and tests.
type Status struct {
	Name        string
	PID         int // 0 while down
	Up          bool
	Restarts    int
	Hooks       []string
	HeadersOnly bool
}

// Status reports every plugin, in chain order.
func (c *Chain) Status() []Status {
	var out []Status
	for _, p := range c.active() {
		p.mu.Lock()
		s := Status{Name: p.spec.Name, Up: p.cur != nil, Restarts: p.restarts, Hooks: p.hookNames(), HeadersOnly: p.headersOnly}
		if p.cur != nil {
			s.PID = p.cur.pid
		}
		p.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// run calls hook on each plugin that has it, in order, until one decides.
func (c *Chain) run(ctx context.Context, hook Hook, queueID string,
	call func(ctx context.Context, p *proc, rpc pb.FilterClient) (*pb.Verdict, error)) Result {
	var r Result
	for _, p := range c.active() {
		if !p.hooks[hook] {
			continue
		}
		v := p.call(ctx, hook, queueID, func(ctx context.Context, rpc pb.FilterClient) (*pb.Verdict, error) {
			return call(ctx, p, rpc)
		})
		if r.add(p.spec.Name, v) {
			break
		}
	}
	return r
}

// Connect runs the connect hook, after HELO/EHLO.
func (c *Chain) Connect(ctx context.Context, ci ConnInfo) Result {
	req := &pb.ConnectRequest{Conn: c.conn(ci)}
	return c.run(ctx, HookConnect, ci.QueueID, func(ctx context.Context, _ *proc, rpc pb.FilterClient) (*pb.Verdict, error) {
		return rpc.Connect(ctx, req)
	})
}

// Disconnect tells the plugins that implement it that the SMTP session
// of ci ended; their answers count for nothing.
func (c *Chain) Disconnect(ctx context.Context, ci ConnInfo) {
	req := &pb.ConnectRequest{Conn: c.conn(ci)}
	c.run(ctx, HookDisconnect, ci.QueueID, func(ctx context.Context, _ *proc, rpc pb.FilterClient) (*pb.Verdict, error) {
		rpc.Disconnect(ctx, req) // a failure changes nothing: the next one is told too
		return &pb.Verdict{}, nil
	})
}

// Mail runs the mail hook for one MAIL FROM.
func (c *Chain) Mail(ctx context.Context, m MailInfo) Result {
	req := &pb.MailRequest{Conn: c.conn(m.Conn), Sender: m.Sender, Params: m.Params}
	return c.run(ctx, HookMail, m.Conn.QueueID, func(ctx context.Context, _ *proc, rpc pb.FilterClient) (*pb.Verdict, error) {
		return rpc.Mail(ctx, req)
	})
}

// Rcpt runs the rcpt hook for one RCPT TO.
func (c *Chain) Rcpt(ctx context.Context, r RcptInfo) Result {
	req := &pb.RcptRequest{Conn: c.conn(r.Conn), Sender: r.Sender, Recipient: r.Recipient}
	return c.run(ctx, HookRcpt, r.Conn.QueueID, func(ctx context.Context, _ *proc, rpc pb.FilterClient) (*pb.Verdict, error) {
		return rpc.Rcpt(ctx, req)
	})
}

// Deliver runs the deliver hook for one recipient in the MDA; header is
// the header block about to be written, and body, when not nil, gives
// a reader of the body from its start for each plugin that reads it
// (see WantsDeliverBody).
func (c *Chain) Deliver(ctx context.Context, d DeliveryInfo, header []byte, body func() io.Reader) Result {
	req := &pb.DeliverRequest{Recipient: d.Recipient, Sender: d.Sender, QueueId: d.QueueID, Folder: d.Folder,
		Header: header, Size: d.Size, Mailbox: d.Mailbox}
	return c.run(ctx, HookDeliver, d.QueueID, func(ctx context.Context, p *proc, rpc pb.FilterClient) (*pb.Verdict, error) {
		if !p.deliverBody || body == nil {
			return rpc.Deliver(ctx, req)
		}
		return sendDelivery(ctx, rpc, req, body())
	})
}

// WantsDeliverBody reports whether a deliver plugin reads the body.
func (c *Chain) WantsDeliverBody() bool {
	for _, p := range c.active() {
		if p.hooks[HookDeliver] && p.deliverBody {
			return true
		}
	}
	return false
}

// sendDelivery streams one copy to one plugin: the request, then the body.
func sendDelivery(ctx context.Context, rpc pb.FilterClient, req *pb.DeliverRequest, body io.Reader) (*pb.Verdict, error) {
	stream, err := rpc.DeliverMessage(ctx)
	if err != nil {
		return nil, err
	}
	err = stream.Send(&pb.DeliverChunk{Chunk: &pb.DeliverChunk_Start{Start: req}})
	if err == nil {
		err = streamBody(body, func(b []byte) error { return stream.Send(&pb.DeliverChunk{Chunk: &pb.DeliverChunk_Body{Body: b}}) })
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return stream.CloseAndRecv()
}

// Data runs the data hook at the end of DATA. header is the header block
// with its ending empty line; body is the rest of the message. The body
// is streamed in chunks of 64 KiB to each plugin that reads bodies; when
// more than one does, body must also be an io.Seeker (a spool file, a
// bytes.Reader): it is rewound to where it stood for each of them. A
// new body a plugin sends back is dropped (FilterMessage keeps it).
func (c *Chain) Data(ctx context.Context, tx TxInfo, header []byte, body io.Reader) Result {
	return c.data(ctx, tx, header, body, nil)
}

// data is Data that keeps a plugin's new body in sink, when sink is not
// nil; the plugins after it read that body instead of the one received.
func (c *Chain) data(ctx context.Context, tx TxInfo, header []byte, body io.Reader, sink *bodySink) Result {
	start := &pb.DataStart{Conn: c.conn(tx.Conn), Sender: tx.Sender, Recipients: tx.Recipients, Header: header, Size: tx.Size}
	rewind, err := c.rewinder(body)
	if err != nil {
		c.opts.Log.Error().Err(err).Str("queue_id", tx.Conn.QueueID).Msg("plugins: cannot stream the body")
		return Result{Action: Tempfail, Reply: localError}
	}
	return c.run(ctx, HookData, tx.Conn.QueueID, func(ctx context.Context, p *proc, rpc pb.FilterClient) (*pb.Verdict, error) {
		var b io.Reader
		switch {
		case p.headersOnly || body == nil:
		case sink.replaced():
			if err := sink.rewind(); err != nil {
				return nil, hostError{err}
			}
			b = sink.file
		default:
			if err := rewind(); err != nil {
				return nil, hostError{err}
			}
			b = body
		}
		if p.rewrites {
			return rewriteData(ctx, rpc, start, b, sink)
		}
		v, err := sendData(ctx, rpc, start, b)
		if v != nil {
			v.ReplaceBody = false // no body came back with a plain Data answer
		}
		return v, err
	})
}

// localError answers a message the chain could not read: the daemon's
// fault, so 4.3.0 (RFC 3463: other mail system status), whatever on_error says.
var localError = Reply{451, "4.3.0", "local error while filtering the message"}

func (c *Chain) rewinder(body io.Reader) (func() error, error) {
	readers := c.bodyReaders()
	if readers < 2 || body == nil {
		return func() error { return nil }, nil
	}
	s, ok := body.(io.Seeker)
	if !ok {
		return nil, fmt.Errorf("%d plugins read the body, so it must be an io.Seeker, not %T", readers, body)
	}
	pos, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("body position: %w", err)
	}
	return func() error {
		_, err := s.Seek(pos, io.SeekStart)
		return err
	}, nil
}

// sendData streams one message to one plugin and waits for its verdict;
// an answer that came early waits in CloseAndRecv.
func sendData(ctx context.Context, rpc pb.FilterClient, start *pb.DataStart, body io.Reader) (*pb.Verdict, error) {
	stream, err := rpc.Data(ctx)
	if err != nil {
		return nil, err
	}
	if err := sendChunks(stream, start, body); err != nil {
		return nil, err
	}
	return stream.CloseAndRecv()
}

// hostError is a failure on the daemon's side of a call (reading the
// body): not the plugin's fault, so no restart and no on_error.
type hostError struct{ err error }

func (e hostError) Error() string { return "reading the message: " + e.err.Error() }
func (e hostError) Unwrap() error { return e.err }

func (c *Chain) conn(ci ConnInfo) *pb.Connection {
	if c == nil {
		return nil // no plugin will see it
	}
	pc := &pb.Connection{
		Daemon: c.opts.Daemon, ClientIp: ci.ClientIP, ClientPort: uint32(max(ci.ClientPort, 0)),
		ReverseDns: ci.ReverseDNS, Helo: ci.Helo, Protocol: ci.Protocol, AuthUser: ci.AuthUser, QueueId: ci.QueueID,
	}
	if ci.TLSVersion != "" {
		pc.Tls = &pb.TLS{Version: ci.TLSVersion, Cipher: ci.TLSCipher}
	}
	return pc
}

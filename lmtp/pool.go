package lmtp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Pool keeps LMTP sessions to the MDA open between deliveries: a dial,
// a greeting and an LHLO for every message cost the MTA more system
// calls than the transaction itself. A session serves one delivery at a
// time, one transaction after the other (RFC 2033 §4.2 as RFC 5321
// §3.3: a session may hold any number of them).
//
// A kept session may have been closed by the MDA meanwhile (a restart,
// its idle timeout): a delivery whose MAIL FROM fails on a kept session
// is tried once more on a new one, since the MDA cannot have received
// anything of it.
type Pool struct {
	Socket, LHLO string
	// MaxIdle bounds the sessions kept between deliveries; IdleTimeout
	// is how long one is kept unused (below the MDA's smtp_timeout).
	MaxIdle     int
	IdleTimeout time.Duration

	mu   sync.Mutex
	idle []*pooled // the most recently used last
}

type pooled struct {
	conn    net.Conn
	c       *smtp.Client
	idleSet time.Time // when it was put back
}

// Deliver sends m on a kept session, or a new one; see Deliver.
func (p *Pool) Deliver(ctx context.Context, m Message) (Result, error) {
	if s := p.take(time.Now()); s != nil {
		res, err := p.use(ctx, s, m)
		var stale *mailError
		if !errors.As(err, &stale) {
			return res, err
		}
	}
	s, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	return p.use(ctx, s, m)
}

// take returns the most recently used kept session, closing those kept
// too long.
func (p *Pool) take(now time.Time) *pooled {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		s := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(s.idleSet) < p.IdleTimeout {
			return s
		}
		s.c.Close()
	}
	return nil
}

// put keeps s for the next delivery, or closes it when enough are kept.
func (p *Pool) put(s *pooled) {
	s.idleSet = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.MaxIdle {
		s.c.Close()
		return
	}
	p.idle = append(p.idle, s)
}

// Close closes the kept sessions.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.idle {
		s.c.Quit()
	}
	p.idle = nil
}

func (p *Pool) dial(ctx context.Context) (*pooled, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", p.Socket)
	if err != nil {
		return nil, fmt.Errorf("lmtp: connect %s: %w", p.Socket, err)
	}
	s := &pooled{conn: conn, c: smtp.NewClientLMTP(conn)}
	s.c.SetWriteBufferSize(64 << 10) // a message's data leaves 64 KiB per call, not 4
	err = withContext(ctx, conn, func() error { return s.c.Hello(p.LHLO) })
	if err != nil {
		s.c.Close()
		return nil, fmt.Errorf("lmtp: LHLO: %w", err)
	}
	return s, nil
}

// use runs one transaction on s and keeps s if it is still usable.
func (p *Pool) use(ctx context.Context, s *pooled, m Message) (Result, error) {
	var res Result
	err := withContext(ctx, s.conn, func() (err error) {
		res, err = transact(s.c, m)
		return err
	})
	switch {
	case err != nil:
		s.c.Close()
		return nil, err
	case ctx.Err() != nil: // the session may have been closed just after
		s.c.Close()
	default:
		p.put(s)
	}
	return res, nil
}

// withContext runs f, closing conn if ctx ends first: the MTA stopping
// aborts a delivery in progress, whose recipients without a reply stay
// queued (the MDA's ledger keeps a copy written meanwhile from being
// written twice). A deadline would not do: go-smtp's client sets its
// own before every command, over one set by a cancel that came between.
func withContext(ctx context.Context, conn net.Conn, f func() error) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	return f()
}

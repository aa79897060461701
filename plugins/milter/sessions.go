package main

import (
	"fmt"
	"sync"
	"time"

	"postline/plugins/sdk"
)

// idleLimit closes the milter sessions of an SMTP connection that has not
// been heard of for longer than any SMTP timeout (RFC 5321 §4.5.3.2 gives
// 5 minutes for most commands): the client went away without DATA.
const idleLimit = 10 * time.Minute

// maxConnections bounds the sessions kept between hook calls; past it the
// longest idle goes, and its next hook call opens a new session.
const maxConnections = 1000

// connection is the milter sessions of one SMTP connection, one per
// configured milter, in order.
type connection struct {
	mu    sync.Mutex // one hook call at a time
	convs []*conversation
	tls   string    // the TLS version when the sessions were opened
	dead  bool      // closed and out of the table (under mu)
	used  time.Time // guarded by the table's mu
}

func (c *connection) close() {
	for _, cv := range c.convs {
		cv.close()
	}
	c.convs = nil
}

// table keeps the milter sessions of SMTP connections between hook calls.
// The connect, mail and rcpt hooks of one connection come in order; a
// plugin process that was restarted in between has lost its sessions,
// and the data hook then replays the envelope to new ones.
type table struct {
	mu    sync.Mutex
	conns map[string]*connection
}

// key names an SMTP connection: a client's address and port are unique
// among live TCP connections of one daemon.
func key(c *sdk.Conn) string {
	return fmt.Sprintf("%s|%s|%d", c.Daemon, c.ClientIP, c.ClientPort)
}

// get returns the connection's sessions, locked, or nil. One evicted
// between the look-up and the lock is dead: it is looked up again, so no
// session is ever opened into a connection the table no longer holds.
func (t *table) get(k string) *connection {
	for {
		t.mu.Lock()
		c := t.conns[k]
		if c != nil {
			c.used = time.Now()
		}
		t.mu.Unlock()
		if c == nil {
			return nil
		}
		c.mu.Lock()
		if !c.dead {
			return c
		}
		c.mu.Unlock()
	}
}

// put keeps c (locked by the caller) for k, closing the one it replaces.
func (t *table) put(k string, c *connection) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = map[string]*connection{}
	}
	if old := t.conns[k]; old != nil && old != c {
		go closeLocked(old)
	}
	c.used = time.Now()
	t.conns[k] = c
	t.evict()
}

// take removes k's sessions from the table and returns them, locked.
func (t *table) take(k string) *connection {
	t.mu.Lock()
	c := t.conns[k]
	delete(t.conns, k)
	t.mu.Unlock()
	if c != nil {
		c.mu.Lock()
	}
	return c
}

// evict closes idle sessions and, past maxConnections, the oldest ones.
func (t *table) evict() {
	var oldest string
	for k, c := range t.conns {
		if time.Since(c.used) > idleLimit {
			delete(t.conns, k)
			go closeLocked(c)
			continue
		}
		if oldest == "" || c.used.Before(t.conns[oldest].used) {
			oldest = k
		}
	}
	if len(t.conns) > maxConnections {
		go closeLocked(t.conns[oldest])
		delete(t.conns, oldest)
	}
}

// closeLocked closes a connection taken out of the table.
func closeLocked(c *connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.close()
	c.dead = true
}

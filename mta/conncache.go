package mta

import (
	"sync"
	"time"
)

// connCache keeps a session that just finished a transaction open for a
// moment, so the next message to the same domain skips connect, EHLO and
// TLS, as Postfix's connection cache does. A session is taken by one
// delivery at a time and checked with RSET before reuse.
type connCache struct {
	ttl     time.Duration
	perDest int

	mu   sync.Mutex
	idle map[string][]*Conn // by destination domain, newest last
}

func newConnCache(ttl time.Duration, perDest int) *connCache {
	return &connCache{ttl: ttl, perDest: perDest, idle: map[string][]*Conn{}}
}

// get takes an idle session for domain that still answers RSET, or nil.
func (cc *connCache) get(domain string) *Conn {
	for {
		cc.mu.Lock()
		list := cc.idle[domain]
		if len(list) == 0 {
			cc.mu.Unlock()
			return nil
		}
		c := list[len(list)-1]
		cc.idle[domain] = list[:len(list)-1]
		cc.mu.Unlock()
		if c.Reset() == nil { // RSET: the server still talks to us
			return c
		}
		c.Close()
	}
}

// put parks c for reuse; it is closed when nobody takes it within ttl,
// or at once when the domain already has enough idle sessions.
func (cc *connCache) put(domain string, c *Conn) {
	cc.mu.Lock()
	if len(cc.idle[domain]) >= cc.perDest {
		cc.mu.Unlock()
		quit(c)
		return
	}
	cc.idle[domain] = append(cc.idle[domain], c)
	cc.mu.Unlock()
	time.AfterFunc(cc.ttl, func() { cc.expire(domain, c) })
}

func (cc *connCache) expire(domain string, c *Conn) {
	cc.mu.Lock()
	list := cc.idle[domain]
	for i, x := range list {
		if x == c {
			cc.idle[domain] = append(list[:i:i], list[i+1:]...)
			cc.mu.Unlock()
			quit(c)
			return
		}
	}
	cc.mu.Unlock() // taken by a delivery meanwhile
}

func quit(c *Conn) {
	c.Quit()
	c.Close()
}

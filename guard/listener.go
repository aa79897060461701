package guard

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// ConnLimits bounds concurrent connections to one server.
type ConnLimits struct {
	Max      int                      // in all
	PerIP    int                      // from one client address
	Trusted  func(ip netip.Addr) bool // exempt from PerIP, as Postfix exempts $mynetworks
	Greeting bool                     // write a 421 before closing (false on implicit-TLS ports)
	Log      zerolog.Logger
}

// LimitListener wraps l so that a connection over the limits is answered
// "421 4.7.0" and closed at once, without reaching the SMTP server.
func LimitListener(l net.Listener, limits ConnLimits) net.Listener {
	return &limitListener{Listener: l, limits: limits, perIP: map[netip.Addr]int{}}
}

type limitListener struct {
	net.Listener
	limits ConnLimits

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if reason := l.admit(ip); reason != "" {
			l.limits.Log.Warn().Str("remote", c.RemoteAddr().String()).Str("limit", reason).Msg("connection refused")
			go l.refuse(c, reason)
			continue
		}
		return &countedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

// admit counts a new connection from ip, or says which limit it exceeds.
func (l *limitListener) admit(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.limits.Max {
		return "max_connections"
	}
	trusted := l.limits.Trusted != nil && l.limits.Trusted(ip)
	if !trusted && l.perIP[ip] >= l.limits.PerIP {
		return "max_connections_per_ip"
	}
	l.total++
	l.perIP[ip]++
	return ""
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// refuse answers RFC 5321 §3.1's way of declining service and hangs up.
func (l *limitListener) refuse(c net.Conn, reason string) {
	defer c.Close()
	if !l.limits.Greeting {
		return
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	msg := "421 4.7.0 Too many connections, try again later\r\n"
	if reason == "max_connections_per_ip" {
		msg = "421 4.7.0 Too many connections from your address, try again later\r\n"
	}
	c.Write([]byte(msg))
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// countedConn releases its slot once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

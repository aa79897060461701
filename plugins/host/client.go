package host

import (
	"net"
	"strconv"
	"sync"

	"github.com/emersion/go-smtp"
)

// Client describes one SMTP connection to the plugins, the same way in
// every daemon. The reverse DNS lookup runs once, on first use, since it
// may take a DNS round trip and does not change within a connection.
type Client struct {
	conn   *smtp.Conn
	lookup func(ip string) string // verified PTR name; nil: none

	once sync.Once
	rdns string
}

// NewClient returns the description of c; lookup may be nil.
func NewClient(c *smtp.Conn, lookup func(ip string) string) *Client {
	return &Client{conn: c, lookup: lookup}
}

// Info returns the connection's details as the plugins see them. A nil
// Client (a session without a connection, in tests) gives just the protocol.
func (cl *Client) Info() ConnInfo {
	ci := ConnInfo{Protocol: "ESMTP"}
	if cl == nil || cl.conn == nil {
		return ci
	}
	if h, port, err := net.SplitHostPort(cl.conn.Conn().RemoteAddr().String()); err == nil {
		ci.ClientIP = h
		ci.ClientPort, _ = strconv.Atoi(port)
	}
	ci.Helo = cl.conn.Hostname()
	if cs, ok := cl.conn.TLSConnectionState(); ok {
		ci.SetTLS(cs)
	}
	if cl.lookup != nil && ci.ClientIP != "" {
		cl.once.Do(func() { cl.rdns = cl.lookup(ci.ClientIP) })
		ci.ReverseDNS = cl.rdns
	}
	return ci
}

// MailParams lists the ESMTP parameters of a MAIL FROM for the plugins,
// with upper-case keys, as the client gave them.
func MailParams(opts *smtp.MailOptions) map[string]string {
	p := map[string]string{}
	if opts == nil {
		return p
	}
	if opts.Size > 0 {
		p["SIZE"] = strconv.FormatInt(opts.Size, 10)
	}
	if opts.Body != "" {
		p["BODY"] = string(opts.Body)
	}
	if opts.UTF8 {
		p["SMTPUTF8"] = ""
	}
	if opts.RequireTLS {
		p["REQUIRETLS"] = ""
	}
	if opts.Return != "" {
		p["RET"] = string(opts.Return)
	}
	if opts.EnvelopeID != "" {
		p["ENVID"] = opts.EnvelopeID
	}
	if opts.Auth != nil {
		p["AUTH"] = *opts.Auth
	}
	return p
}

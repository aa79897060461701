package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"
)

// resolver is the one DNS client every check uses (SPF, DKIM keys, DMARC
// records, DNSBL zones), so dns_server and dns_timeout apply to all of
// them. It satisfies spf.DNSResolver. Errors stay *net.DNSError, unwrapped:
// the spf, dkim and dmarc packages tell a temporary failure (temperror)
// from a missing record by type-asserting exactly that.
type resolver struct {
	net     *net.Resolver
	timeout time.Duration // bounds each lookup, not a whole check
}

// newResolver asks server ("host:port") for every lookup, or the system's
// resolvers when server is "". The pure-Go resolver is required for the
// Dial hook; it still reads /etc/resolv.conf for its retry settings,
// which the per-lookup deadline overrides.
func newResolver(server string, timeout time.Duration) *resolver {
	r := &net.Resolver{PreferGo: true}
	if server != "" {
		var d net.Dialer
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		}
	}
	return &resolver{net: r, timeout: timeout}
}

// fqdn adds the root dot so the resolver never tries the search list of
// resolv.conf: a DKIM key or DNSBL name is always absolute.
func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func (r *resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	txts, err := r.net.LookupTXT(ctx, fqdn(name))
	return txts, transient(err)
}

func (r *resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	mxs, err := r.net.LookupMX(ctx, fqdn(name))
	return mxs, transient(err)
}

func (r *resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	addrs, err := r.net.LookupIPAddr(ctx, fqdn(host))
	return addrs, transient(err)
}

func (r *resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	names, err := r.net.LookupAddr(ctx, addr)
	return names, transient(err)
}

// lookupA asks for IPv4 addresses only: a DNSBL answers with A records.
func (r *resolver) lookupA(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	addrs, err := r.net.LookupNetIP(ctx, "ip4", fqdn(host))
	return addrs, transient(err)
}

// transient marks every DNS failure but "no such name" as temporary. Go
// calls a REFUSED answer or a lame referral permanent, and go-msgauth
// would make that a DKIM permerror that costs points; but it says our
// resolver is broken, not that the sender is: RFC 8601 §2.7 temperror.
func transient(err error) error {
	var de *net.DNSError
	if errors.As(err, &de) && !de.IsNotFound && !de.IsTemporary {
		c := *de
		c.IsTemporary = true
		return &c
	}
	return err
}

// txtFunc adapts LookupTXT to go-msgauth, whose callbacks take no context.
func (r *resolver) txtFunc(ctx context.Context) func(string) ([]string, error) {
	return func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }
}

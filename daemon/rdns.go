package daemon

import (
	"context"
	"net"
	"slices"
	"strings"
	"time"
)

// ReverseDNS returns a function that looks up an IP address's verified
// PTR name (the name must resolve back to the address), "" when there is
// none or the look-up fails or takes longer than timeout. server, when
// set (mta.dns_server), is the DNS server to ask instead of the system's.
func ReverseDNS(server string, timeout time.Duration) func(ip string) string {
	r := net.DefaultResolver
	if server != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	return func(ip string) string {
		addr := net.ParseIP(ip)
		if addr == nil {
			return ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		names, err := r.LookupAddr(ctx, ip)
		if err != nil {
			return ""
		}
		for _, name := range names {
			addrs, err := r.LookupIPAddr(ctx, name)
			if err != nil {
				continue
			}
			if slices.ContainsFunc(addrs, func(a net.IPAddr) bool { return a.IP.Equal(addr) }) {
				return strings.TrimSuffix(name, ".")
			}
		}
		return ""
	}
}

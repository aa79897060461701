package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// checkDNSBL asks every zone about ip at once and returns, in config
// order, the zones that list it. A zone that fails to answer lists
// nothing: a DNS problem must never cost a message points.
func checkDNSBL(ctx context.Context, res *resolver, ip netip.Addr, zones []string, log hclog.Logger) []string {
	if !ip.IsValid() || len(zones) == 0 {
		return nil
	}
	listed := make([]bool, len(zones))
	var wg sync.WaitGroup
	for i, zone := range zones {
		wg.Go(func() {
			listed[i] = queryDNSBL(ctx, res, reverseName(ip)+"."+zone, zone, log)
		})
	}
	wg.Wait()
	var out []string
	for i, zone := range zones {
		if listed[i] {
			out = append(out, zone)
		}
	}
	return out
}

// queryDNSBL reports whether name has an A record meaning "listed"
// (RFC 5782 §2.1: 127.0.0.0/8). Answers in 127.255.255.0/24 are the
// return codes Spamhaus and others use for "query refused" (e.g. through
// a public resolver); taken as listings they would list every client.
func queryDNSBL(ctx context.Context, res *resolver, name, zone string, log hclog.Logger) bool {
	addrs, err := res.lookupA(ctx, name)
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return false
	}
	if err != nil {
		log.Warn("dnsbl lookup failed", "zone", zone, "error", reason(err))
		return false
	}
	for _, a := range addrs {
		switch {
		case dnsblRefused.Contains(a):
			log.Warn("dnsbl refused the query", "zone", zone, "answer", a.String())
			return false
		case dnsblListing.Contains(a):
			return true
		}
	}
	return false
}

var (
	dnsblListing = netip.MustParsePrefix("127.0.0.0/8")
	dnsblRefused = netip.MustParsePrefix("127.255.255.0/24")
)

// reverseName is the DNSBL query label for ip (RFC 5782 §2.1, §2.4):
// 192.0.2.99 → "99.2.0.192"; IPv6 as 32 reversed nibbles.
func reverseName(ip netip.Addr) string {
	ip = ip.Unmap()
	b := ip.AsSlice()
	var parts []string
	if ip.Is4() {
		for i := len(b) - 1; i >= 0; i-- {
			parts = append(parts, strconv.Itoa(int(b[i])))
		}
		return strings.Join(parts, ".")
	}
	const hex = "0123456789abcdef"
	for i := len(b) - 1; i >= 0; i-- {
		parts = append(parts, string(hex[b[i]&0xf]), string(hex[b[i]>>4]))
	}
	return strings.Join(parts, ".")
}

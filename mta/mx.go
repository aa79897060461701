package mta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"postline/address"
	"postline/config"
	"postline/dane"
	"postline/reply"
)

// Host is one place to deliver a domain's mail: an MX target, or the
// domain itself when it has no MX (RFC 5321 §5.1 "implicit MX").
type Host struct {
	Name  string // no trailing dot; an address literal ("[192.0.2.1]") as given
	Pref  uint16
	Addrs []netip.Addr
	// Secure says the MX answer and the host's address answers were
	// DNSSEC-validated by a resolver we trust (Resolver.TrustsAD), so
	// its TLSA records may be looked up and used (RFC 7672 §2.2).
	Secure bool
}

// Resolver finds the hosts to deliver a domain's mail to. It asks one
// DNS server itself, with miekg/dns, because the MX rules need the
// difference between "no such domain" (bounce) and "no MX record"
// (use the domain's own address), which net.Resolver hides.
type Resolver struct {
	// Server is the DNS server, "host:port"; "" is the first nameserver
	// of /etc/resolv.conf (mta.dns_server).
	Server string
	// Timeout bounds each query; 0 means 5 seconds.
	Timeout time.Duration
	// Shuffle orders MX hosts of equal preference; nil is math/rand/v2's
	// Shuffle. Tests pass a seeded one.
	Shuffle func(n int, swap func(i, j int))
	// DNSSECResolver is a resolver not on loopback whose validated
	// answers (the AD bit) are trusted all the same (mta.dnssec_resolver).
	DNSSECResolver string
}

// maxMXHosts bounds the DNS work one domain can cause, as Postfix's
// smtp_mx_address_limit does: hosts beyond it are never tried anyway.
const maxMXHosts = 10

// resolvConf is read when Resolver.Server is empty; a variable for tests.
var resolvConf = "/etc/resolv.conf"

// Route returns the hosts to try for domain, best first: MX targets by
// preference, equal preferences in random order (RFC 5321 §5.1), each
// with its IPv4 and IPv6 addresses. Hosts without addresses are left
// out. Errors are *smtp.SMTPError: 5.1.2 for a domain that does not
// exist, 5.1.10 for a null MX (RFC 7505), and temporary 4.4.3 (DNS
// failure) or 4.4.4 (no usable host) otherwise.
func (r *Resolver) Route(ctx context.Context, domain string) ([]Host, error) {
	d, err := address.NormalizeDomain(domain)
	if err != nil {
		return nil, routeError(550, 5, 1, 2, "bad destination domain %q: %v", domain, err)
	}
	if strings.HasPrefix(d, "[") {
		return literalRoute(d)
	}
	server, err := r.server() // once per route, not once per query
	if err != nil {
		return nil, err
	}
	hosts, err := r.lookupMX(ctx, server, d)
	if err != nil {
		return nil, err
	}
	var usable []Host
	for _, h := range hosts {
		var secure bool
		if h.Addrs, secure, err = r.lookupAddrs(ctx, server, h.Name); err == nil && len(h.Addrs) > 0 {
			h.Secure = h.Secure && secure
			usable = append(usable, h)
		}
	}
	if len(usable) == 0 {
		// RFC 5321 §5.1: no usable MX host MUST be reported as an error;
		// transient, since an address record may appear (and a lookup
		// that failed may succeed) before the queue lifetime runs out.
		return nil, routeError(451, 4, 4, 4, "no address for any mail host of %s", d)
	}
	return usable, nil
}

// lookupMX returns d's MX hosts in the order to try them, without addresses.
func (r *Resolver) lookupMX(ctx context.Context, server, d string) ([]Host, error) {
	in, err := r.query(ctx, server, d, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, routeError(550, 5, 1, 2, "domain %s does not exist (NXDOMAIN)", d)
	default:
		return nil, routeError(451, 4, 4, 3, "DNS lookup of MX for %s failed: %s", d, dns.RcodeToString[in.Rcode])
	}
	secure := r.validated(in, server)
	var hosts []Host
	for _, rr := range in.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			hosts = append(hosts, Host{Name: strings.ToLower(strings.TrimSuffix(mx.Mx, ".")), Pref: mx.Preference, Secure: secure})
		}
	}
	if len(hosts) == 0 {
		// No MX: the domain is its own mail host (implicit MX, RFC 5321 §5.1).
		return []Host{{Name: d, Secure: secure}}, nil
	}
	// RFC 7505 §3: "MX 0 ." alone says the domain accepts no mail at all;
	// a "." target among real ones is a misconfiguration and skipped.
	if len(hosts) == 1 && hosts[0].Name == "" {
		return nil, routeError(556, 5, 1, 10, "domain %s accepts no mail (null MX, RFC 7505)", d)
	}
	hosts = slices.DeleteFunc(hosts, func(h Host) bool { return h.Name == "" })
	return r.order(hosts), nil
}

// order sorts hosts by preference, shuffles each run of equal
// preference (RFC 5321 §5.1: no reason to favour one, so pick at
// random), drops repeated names and keeps the first maxMXHosts.
func (r *Resolver) order(hosts []Host) []Host {
	shuffle := r.Shuffle
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	slices.SortStableFunc(hosts, func(a, b Host) int { return cmp.Compare(a.Pref, b.Pref) })
	for i := 0; i < len(hosts); {
		j := i + 1
		for j < len(hosts) && hosts[j].Pref == hosts[i].Pref {
			j++
		}
		run := hosts[i:j]
		shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		i = j
	}
	seen := map[string]bool{}
	hosts = slices.DeleteFunc(hosts, func(h Host) bool {
		dup := seen[h.Name]
		seen[h.Name] = true
		return dup
	})
	return hosts[:min(len(hosts), maxMXHosts)]
}

// lookupAddrs returns name's A then AAAA addresses, and whether every
// answer was validated (validated). A name that does not exist or has no
// address records gives none and no error.
func (r *Resolver) lookupAddrs(ctx context.Context, server, name string) ([]netip.Addr, bool, error) {
	var addrs []netip.Addr
	var errs []error
	secure := true
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		in, err := r.query(ctx, server, name, qtype)
		if err == nil && in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
			err = fmt.Errorf("lookup %s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[in.Rcode])
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		secure = secure && r.validated(in, server)
		for _, rr := range in.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				addrs = appendAddr(addrs, rr.A)
			case *dns.AAAA:
				addrs = appendAddr(addrs, rr.AAAA)
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, secure && len(errs) == 0, nil
	}
	return nil, false, errors.Join(errs...)
}

// validated reports whether in carries the AD bit (RFC 4035 §3.2.3) from
// a resolver trusted to set it (TrustsAD).
func (r *Resolver) validated(in *dns.Msg, server string) bool {
	return in.AuthenticatedData && r.TrustsAD(server)
}

// TrustsAD reports whether server's AD bit is believed: the network
// between us and a resolver on loopback cannot forge it; for any other,
// only mta.dnssec_resolver, as Postfix's smtp_dns_support_level =
// dnssec wants a trusted local resolver (RFC 6698 §4.1).
func (r *Resolver) TrustsAD(server string) bool {
	if r.DNSSECResolver != "" && server == r.DNSSECResolver {
		return true
	}
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func appendAddr(addrs []netip.Addr, ip net.IP) []netip.Addr {
	if a, ok := netip.AddrFromSlice(ip); ok {
		return append(addrs, a.Unmap())
	}
	return addrs
}

// query asks server about name over UDP, and again over TCP when the
// answer was truncated (RFC 1035 §4.2.1, RFC 7766). A timeout or network
// error is a temporary *smtp.SMTPError.
func (r *Resolver) query(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false) // the size DNS Flag Day 2020 settled on
	// RFC 6840 §5.7: asking with AD gets the validating resolver's
	// verdict in the answer's AD bit, without the RRSIGs that DO brings.
	m.AuthenticatedData = true
	timeout := cmp.Or(r.Timeout, 5*time.Second)
	in, _, err := (&dns.Client{Net: "udp", Timeout: timeout}).ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		in, _, err = (&dns.Client{Net: "tcp", Timeout: timeout}).ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, routeError(451, 4, 4, 3, "DNS lookup of %s %s at %s failed: %v",
			dns.TypeToString[qtype], name, server, err)
	}
	return in, nil
}

func (r *Resolver) server() (string, error) {
	if r.Server != "" {
		return r.Server, nil
	}
	conf, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil || len(conf.Servers) == 0 {
		return "", routeError(451, 4, 4, 3, "no DNS server: mta.dns_server is empty and %s has none (%v)", resolvConf, err)
	}
	return net.JoinHostPort(conf.Servers[0], conf.Port), nil
}

// literalRoute is RFC 5321 §5.1 for an address literal: deliver to that
// address, no DNS involved.
func literalRoute(d string) ([]Host, error) {
	s := strings.TrimSuffix(strings.TrimPrefix(d, "["), "]")
	if v6, ok := strings.CutPrefix(s, "ipv6:"); ok { // NormalizeDomain lower-cased the tag
		s = v6
	} else if strings.Contains(s, ":") {
		s = "" // RFC 5321 §4.1.3: IPv6 literals need the tag
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, routeError(550, 5, 1, 2, "bad address literal %s", d)
	}
	return []Host{{Name: d, Addrs: []netip.Addr{a.Unmap()}}}, nil
}

// WithoutSelf applies RFC 5321 §5.1's loop rule to hosts: when this
// host is among them, by its name or by an address self recognises
// as its own (nil: by name only), it is dropped together with every
// host of equal or lower preference, which would only hand the mail
// back (as Postfix's smtp_truncate_self). found says it was there.
func WithoutSelf(hosts []Host, hostname string, self func(netip.Addr) bool) (rest []Host, found bool) {
	hostname = strings.TrimSuffix(hostname, ".")
	var selfPref uint16
	for _, h := range hosts {
		if strings.EqualFold(h.Name, hostname) || self != nil && slices.ContainsFunc(h.Addrs, self) {
			if !found || h.Pref < selfPref {
				selfPref, found = h.Pref, true
			}
		}
	}
	if !found {
		return hosts, false
	}
	for _, h := range hosts {
		if h.Pref < selfPref {
			rest = append(rest, h)
		}
	}
	return rest, true
}

// SelfIsBestMX reports whether this host is among the most preferred
// of hosts: then no host is left to try, and RFC 5321 §5.1 says to
// treat it as an error (postline bounces with 5.4.6) rather than
// connect to itself. A backup MX behind others is not best.
func SelfIsBestMX(hosts []Host, hostname string, self func(netip.Addr) bool) bool {
	rest, found := WithoutSelf(hosts, hostname, self)
	return found && len(rest) == 0
}

func routeError(code, class, subject, detail int, format string, args ...any) *smtp.SMTPError {
	return reply.New(code, class, subject, detail, fmt.Sprintf(format, args...))
}

// HopHosts returns the hosts of a next hop (relayhost or route):
// bracketed, the host itself, by its address or its A/AAAA records (no
// MX lookup, as Postfix's "[host]"); else the MX hosts of its name.
func (r *Resolver) HopHosts(ctx context.Context, hop config.NextHop) ([]Host, error) {
	if a, err := netip.ParseAddr(hop.Host); err == nil {
		return []Host{{Name: hop.Host, Addrs: []netip.Addr{a.Unmap()}}}, nil
	}
	if !hop.NoMX {
		return r.Route(ctx, hop.Host)
	}
	server, err := r.server()
	if err != nil {
		return nil, err
	}
	addrs, _, err := r.lookupAddrs(ctx, server, hop.Host)
	if err != nil || len(addrs) == 0 {
		return nil, routeError(451, 4, 4, 4, "no address for the next hop %s (%v)", hop.Host, err)
	}
	return []Host{{Name: hop.Host, Addrs: addrs}}, nil
}

// LookupTXT returns name's TXT records, each one string; none and no
// error when name or its TXT records do not exist (for mtasts.Resolver).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	in, _, err := r.answer(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var txts []string
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(t.Txt, "")) // RFC 7208 §3.3 style: strings joined
		}
	}
	return txts, nil
}

// LookupAddrs returns name's A and AAAA addresses (for mtasts.Resolver).
func (r *Resolver) LookupAddrs(ctx context.Context, name string) ([]netip.Addr, error) {
	server, err := r.server()
	if err != nil {
		return nil, err
	}
	addrs, _, err := r.lookupAddrs(ctx, server, name)
	return addrs, err
}

// LookupTLSA returns the TLSA records of port on host (RFC 6698 §3:
// _port._tcp.host) and whether the answer was validated; records of an
// answer that was not are no DANE policy (RFC 7672 §2.2).
func (r *Resolver) LookupTLSA(ctx context.Context, port int, host string) ([]dane.Record, bool, error) {
	in, validated, err := r.answer(ctx, fmt.Sprintf("_%d._tcp.%s", port, host), dns.TypeTLSA)
	if err != nil {
		return nil, false, err
	}
	var recs []dane.Record
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			rec, err := dane.ParseHex(t.Usage, t.Selector, t.MatchingType, t.Certificate)
			if err == nil {
				recs = append(recs, rec)
			}
		}
	}
	return recs, validated, nil
}

// answer asks the configured server about name: the answer (a name that
// does not exist has no records, and no error) and whether it was
// validated (see validated).
func (r *Resolver) answer(ctx context.Context, name string, qtype uint16) (*dns.Msg, bool, error) {
	server, err := r.server()
	if err != nil {
		return nil, false, err
	}
	in, err := r.query(ctx, server, name, qtype)
	if err != nil {
		return nil, false, err
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, false, routeError(451, 4, 4, 3, "DNS lookup of %s %s failed: %s", name, dns.TypeToString[qtype], dns.RcodeToString[in.Rcode])
	}
	return in, r.validated(in, server), nil
}

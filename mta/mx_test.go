package mta

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"postline/dnstest"
)

// resolver asks d with a short timeout, so that a silent name fails fast.
func resolver(d *dnstest.Server) *Resolver {
	return &Resolver{Server: d.Addr, Timeout: 200 * time.Millisecond}
}

func hostNames(hosts []Host) []string {
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	return names
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// wantRouteError checks err is an *smtp.SMTPError with code and enh.
func wantRouteError(t *testing.T, err error, code int, enh smtp.EnhancedCode, temporary bool) {
	t.Helper()
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) {
		t.Fatalf("error %v (%T), want *smtp.SMTPError", err, err)
	}
	if serr.Code != code || serr.EnhancedCode != enh || serr.Temporary() != temporary {
		t.Fatalf("error %d %v %q temporary=%v, want %d %v temporary=%v",
			serr.Code, serr.EnhancedCode, serr.Message, serr.Temporary(), code, enh, temporary)
	}
}

func TestRouteSortsMXByPreference(t *testing.T) {
	f := dnstest.Start(t,
		"example.test. 300 IN MX 20 mx2.example.test.",
		"example.test. 300 IN MX 10 MX1.example.test.",
		"example.test. 300 IN MX 30 mx3.example.net.",
		"mx1.example.test. 300 IN A 192.0.2.1",
		"mx1.example.test. 300 IN AAAA 2001:db8::1",
		"mx2.example.test. 300 IN A 192.0.2.2",
		"mx2.example.test. 300 IN A 192.0.2.22",
		"mx3.example.net. 300 IN AAAA 2001:db8::3",
	)
	hosts, err := resolver(f).Route(context.Background(), "Example.TEST.")
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{
		{Name: "mx1.example.test", Pref: 10, Addrs: addrs("192.0.2.1", "2001:db8::1")},
		{Name: "mx2.example.test", Pref: 20, Addrs: addrs("192.0.2.2", "192.0.2.22")},
		{Name: "mx3.example.net", Pref: 30, Addrs: addrs("2001:db8::3")},
	}
	if !slices.EqualFunc(hosts, want, func(a, b Host) bool {
		return a.Name == b.Name && a.Pref == b.Pref && slices.Equal(a.Addrs, b.Addrs)
	}) {
		t.Fatalf("hosts %+v, want %+v", hosts, want)
	}
	for _, q := range f.Queries() {
		if !strings.HasSuffix(q, ".") {
			t.Errorf("query %q is not for an FQDN", q)
		}
	}
}

func TestRouteShufflesEqualPreferencesOnly(t *testing.T) {
	f := dnstest.Start(t,
		"example.test. 300 IN MX 10 a.example.test.",
		"example.test. 300 IN MX 10 b.example.test.",
		"example.test. 300 IN MX 10 c.example.test.",
		"example.test. 300 IN MX 5 first.example.test.",
		"example.test. 300 IN MX 20 last.example.test.",
		"example.test. 300 IN MX 20 last.example.test.", // a repeated record counts once
		"a.example.test. 300 IN A 192.0.2.1", "b.example.test. 300 IN A 192.0.2.2",
		"c.example.test. 300 IN A 192.0.2.3", "first.example.test. 300 IN A 192.0.2.4",
		"last.example.test. 300 IN A 192.0.2.5",
	)
	seen := map[string]bool{}
	for seed := range uint64(30) {
		r := resolver(f)
		r.Shuffle = rand.New(rand.NewPCG(seed, 1)).Shuffle
		hosts, err := r.Route(context.Background(), "example.test")
		if err != nil {
			t.Fatal(err)
		}
		names := hostNames(hosts)
		if len(names) != 5 || names[0] != "first.example.test" || names[4] != "last.example.test" {
			t.Fatalf("seed %d: order %v: preferences 5 and 20 must stay first and last, once each", seed, names)
		}
		middle := slices.Clone(names[1:4])
		seen[strings.Join(middle, ",")] = true
		slices.Sort(middle)
		if !slices.Equal(middle, []string{"a.example.test", "b.example.test", "c.example.test"}) {
			t.Fatalf("seed %d: middle %v", seed, names[1:4])
		}
	}
	if len(seen) < 3 {
		t.Fatalf("30 seeds gave only the orders %v of the three preference-10 hosts", seen)
	}
}

func TestRouteImplicitMX(t *testing.T) {
	f := dnstest.Start(t,
		"a-only.test. 300 IN A 192.0.2.9",
		"v6-only.test. 300 IN AAAA 2001:db8::9",
		"v6-only.test. 300 IN TXT \"not an MX\"",
	)
	for domain, want := range map[string][]netip.Addr{
		"a-only.test":  addrs("192.0.2.9"),
		"v6-only.test": addrs("2001:db8::9"),
	} {
		hosts, err := resolver(f).Route(context.Background(), domain)
		if err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
		if len(hosts) != 1 || hosts[0].Name != domain || hosts[0].Pref != 0 || !slices.Equal(hosts[0].Addrs, want) {
			t.Fatalf("%s: hosts %+v, want the domain itself with %v", domain, hosts, want)
		}
	}
}

func TestRouteNullMX(t *testing.T) {
	f := dnstest.Start(t,
		"nomail.test. 300 IN MX 0 .",
		"nomail.test. 300 IN A 192.0.2.1", // an A record must not revive it
		"mixed.test. 300 IN MX 0 .",
		"mixed.test. 300 IN MX 10 mx.mixed.test.",
		"mx.mixed.test. 300 IN A 192.0.2.10",
	)
	_, err := resolver(f).Route(context.Background(), "nomail.test")
	wantRouteError(t, err, 556, smtp.EnhancedCode{5, 1, 10}, false)
	hosts, err := resolver(f).Route(context.Background(), "mixed.test")
	if err != nil || !slices.Equal(hostNames(hosts), []string{"mx.mixed.test"}) {
		t.Fatalf("null MX next to a real one: hosts %v, %v; want the real one", hostNames(hosts), err)
	}
}

func TestRouteNXDOMAIN(t *testing.T) {
	f := dnstest.Start(t, "example.test. 300 IN MX 10 mx.example.test.")
	_, err := resolver(f).Route(context.Background(), "nowhere.test")
	wantRouteError(t, err, 550, smtp.EnhancedCode{5, 1, 2}, false)
	if !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("message %q should say the domain does not exist", err)
	}
}

func TestRouteServerFailuresAreTemporary(t *testing.T) {
	f := dnstest.Start(t)
	f.Fail("servfail.test.", dns.RcodeServerFailure)
	f.Fail("refused.test.", dns.RcodeRefused)
	for _, domain := range []string{"servfail.test", "refused.test"} {
		_, err := resolver(f).Route(context.Background(), domain)
		wantRouteError(t, err, 451, smtp.EnhancedCode{4, 4, 3}, true)
	}
}

func TestRouteTimeoutIsTemporary(t *testing.T) {
	f := dnstest.Start(t)
	f.Silent("slow.test.")
	r := resolver(f)
	r.Timeout = 100 * time.Millisecond
	start := time.Now()
	_, err := r.Route(context.Background(), "slow.test")
	wantRouteError(t, err, 451, smtp.EnhancedCode{4, 4, 3}, true)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v with a 100ms timeout", took)
	}
}

func TestRouteRetriesTruncatedAnswerOverTCP(t *testing.T) {
	f := dnstest.Start(t,
		"big.test. 300 IN MX 10 mx.big.test.",
		"mx.big.test. 300 IN A 192.0.2.50",
	)
	f.Truncate("big.test.")
	f.Truncate("mx.big.test.")
	hosts, err := resolver(f).Route(context.Background(), "big.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || hosts[0].Name != "mx.big.test" || !slices.Equal(hosts[0].Addrs, addrs("192.0.2.50")) {
		t.Fatalf("hosts %+v", hosts)
	}
	tcp := 0
	for _, q := range f.Queries() {
		if strings.HasPrefix(q, "tcp ") {
			tcp++
		}
	}
	if tcp < 2 {
		t.Fatalf("%d TCP queries, want the MX and the A query retried over TCP", tcp)
	}
}

func TestRouteSkipsHostsWithoutAddresses(t *testing.T) {
	f := dnstest.Start(t,
		"example.test. 300 IN MX 10 gone.example.test.",   // NXDOMAIN
		"example.test. 300 IN MX 20 noaddr.example.test.", // exists, no A/AAAA
		"example.test. 300 IN MX 30 broken.example.test.", // SERVFAIL
		"example.test. 300 IN MX 40 ok.example.test.",
		"noaddr.example.test. 300 IN TXT \"hello\"",
		"ok.example.test. 300 IN A 192.0.2.40",
		"dead.test. 300 IN MX 10 gone.example.test.",
	)
	f.Fail("broken.example.test.", dns.RcodeServerFailure)
	hosts, err := resolver(f).Route(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hostNames(hosts), []string{"ok.example.test"}) {
		t.Fatalf("hosts %v, want only the one with an address", hostNames(hosts))
	}
	_, err = resolver(f).Route(context.Background(), "dead.test")
	wantRouteError(t, err, 451, smtp.EnhancedCode{4, 4, 4}, true)
}

func TestRouteInternationalizedDomain(t *testing.T) {
	f := dnstest.Start(t, "xn--bcher-kva.test. 300 IN A 192.0.2.77")
	hosts, err := resolver(f).Route(context.Background(), "Bücher.test")
	if err != nil || len(hosts) != 1 || hosts[0].Name != "xn--bcher-kva.test" {
		t.Fatalf("hosts %+v, %v; want the A-label name", hosts, err)
	}
}

func TestRouteAddressLiteral(t *testing.T) {
	r := &Resolver{Server: "127.0.0.1:1"} // never asked
	for literal, want := range map[string]string{
		"[192.0.2.7]":           "192.0.2.7",
		"[IPv6:2001:db8::7]":    "2001:db8::7",
		"[ipv6:::ffff:1.2.3.4]": "1.2.3.4",
	} {
		hosts, err := r.Route(context.Background(), literal)
		if err != nil || len(hosts) != 1 || !slices.Equal(hosts[0].Addrs, addrs(want)) {
			t.Fatalf("%s: hosts %+v, %v", literal, hosts, err)
		}
	}
	for _, bad := range []string{"[2001:db8::7]", "[not-an-ip]", "[300.1.1.1]"} {
		_, err := r.Route(context.Background(), bad)
		wantRouteError(t, err, 550, smtp.EnhancedCode{5, 1, 2}, false)
	}
}

func TestRouteWithoutResolvConf(t *testing.T) {
	old := resolvConf
	resolvConf = filepath.Join(t.TempDir(), "missing")
	defer func() { resolvConf = old }()
	_, err := (&Resolver{}).Route(context.Background(), "example.test")
	wantRouteError(t, err, 451, smtp.EnhancedCode{4, 4, 3}, true)
}

func TestSelfIsBestMX(t *testing.T) {
	own := netip.MustParseAddr("192.0.2.1")
	self := func(a netip.Addr) bool { return a == own }
	hosts := []Host{
		{Name: "mx1.example.test", Pref: 10, Addrs: addrs("192.0.2.10")},
		{Name: "mx2.example.test", Pref: 10, Addrs: addrs("192.0.2.11", "192.0.2.1")},
		{Name: "backup.example.test", Pref: 20, Addrs: addrs("192.0.2.20")},
	}
	tests := []struct {
		name     string
		hosts    []Host
		hostname string
		want     bool
	}{
		{"one of the best by address", hosts, "mail.example.org", true},
		{"best by name", hosts[:1], "MX1.example.test.", true},
		{"only a backup MX", hosts[2:], "backup.example.test", true}, // alone, it is the best
		{"backup behind others", []Host{hosts[0], hosts[2]}, "backup.example.test", false},
		{"not listed", hosts[:1], "mail.example.org", false},
		{"no hosts", nil, "mail.example.org", false},
	}
	for _, tt := range tests {
		if got := SelfIsBestMX(tt.hosts, tt.hostname, self); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if SelfIsBestMX(hosts, "other", nil) {
		t.Error("a nil self func must match by name only")
	}
}

func TestWithoutSelf(t *testing.T) {
	hosts := []Host{
		{Name: "mx1.example.test", Pref: 10}, {Name: "mx2.example.test", Pref: 10},
		{Name: "backup.example.test", Pref: 20}, {Name: "last.example.test", Pref: 30},
	}
	tests := []struct {
		hostname string
		want     []string
		found    bool
	}{
		{"backup.example.test", []string{"mx1.example.test", "mx2.example.test"}, true},
		{"last.example.test.", []string{"mx1.example.test", "mx2.example.test", "backup.example.test"}, true},
		{"mx2.example.test", nil, true}, // its equal-preference peer goes too
		{"mail.example.org", []string{"mx1.example.test", "mx2.example.test", "backup.example.test", "last.example.test"}, false},
	}
	for _, tt := range tests {
		rest, found := WithoutSelf(hosts, tt.hostname, nil)
		if !slices.Equal(hostNames(rest), tt.want) || found != tt.found {
			t.Errorf("%s: %v %v, want %v %v", tt.hostname, hostNames(rest), found, tt.want, tt.found)
		}
	}
}

// DANE trusts the AD bit only from a resolver on loopback or the one
// configured as mta.dnssec_resolver (RFC 6698 §4.1, RFC 7672 §2.2).
func TestTrustsAD(t *testing.T) {
	r := &Resolver{DNSSECResolver: "10.0.0.53:53"}
	for server, want := range map[string]bool{
		"127.0.0.1:53": true, "127.5.6.7:5353": true, "[::1]:53": true,
		"10.0.0.53:53": true, "10.0.0.54:53": false, "192.0.2.1:53": false, "bogus": false,
	} {
		if got := r.TrustsAD(server); got != want {
			t.Errorf("TrustsAD(%s) = %v", server, got)
		}
	}
}

package dnsrecords

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Every printed line is a valid zone-file record, a long TXT split into
// strings of at most 255 octets that join back to the record.
func TestZoneParses(t *testing.T) {
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 392)
	p := Plan{Hostname: "mail.example.org", Domains: []string{"example.org", "example.net"},
		Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
		DKIM:      map[string]DKIMKeyInfo{"example.org": {Selector: "s1", Record: long}}, STSID: "1"}
	rs := p.Records()
	for _, line := range strings.Split(Zone(rs), "\n") {
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if txt, ok := rr.(*dns.TXT); ok && strings.Contains(rr.Header().Name, "_domainkey") {
			if len(txt.Txt) != 2 || len(txt.Txt[0]) != 255 || strings.Join(txt.Txt, "") != long {
				t.Errorf("DKIM record split as %d strings", len(txt.Txt))
			}
		}
	}
	if n := strings.Count(Zone(rs), " IN MX 10 mail.example.org."); n != 2 {
		t.Errorf("%d MX records for two domains", n)
	}
}

func TestReverseAddr(t *testing.T) {
	for _, a := range []string{"192.0.2.1", "2001:db8::1", "2001:db8:1:2:3:4:5:6"} {
		name, _ := dns.ReverseAddr(a)
		got, err := reverseAddr(name)
		if err != nil || got != netip.MustParseAddr(a) {
			t.Errorf("reverseAddr(%s) = %v, %v; want %s", name, got, err, a)
		}
	}
	if _, err := reverseAddr("example.org."); err == nil {
		t.Error("reverseAddr of a forward name")
	}
}

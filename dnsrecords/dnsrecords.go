// Package dnsrecords says which DNS records a postline host and its mail
// domains need, in zone-file syntax: `postline setup` prints them for the
// admin to publish and `postline dns check` asks the DNS for each. It
// never changes the DNS.
package dnsrecords

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Kind tells a check what the published records must hold.
type Kind int

const (
	HostAddress   Kind = iota // A/AAAA of the host: Value among them
	ReverseName               // PTR of an address: Value among its names (and back)
	MailExchanger             // MX of a domain: Value among the exchangers
	SPF                       // TXT v=spf1 of a domain that lets the host's addresses send
	DKIMKey                   // TXT key record that matches the key on disk
	DMARC                     // TXT v=DMARC1 with a policy
	TagRecord                 // a TXT whose value starts with Value's first tag (v=STSv1 ...)
	Service                   // SRV: Value's target and port
)

// Record is one record to publish.
type Record struct {
	Name  string // fully qualified, with the final dot
	Type  uint16 // dns.TypeMX, ...
	Value string // the record's data in zone-file syntax; TXT text unquoted
	Kind  Kind
	// Optional records make mail better but not possible: a check says
	// so without failing.
	Optional bool
	Comment  string // why, for the printed zone
	// KeyFile is the DKIM key a DKIMKey record must match.
	KeyFile string
}

// Plan is what the records are made from.
type Plan struct {
	Hostname  string       // the host's name, as in EHLO
	Domains   []string     // the mail domains
	Addresses []netip.Addr // the host's public addresses, if known
	// DKIM holds each domain's signing key, when it has one.
	DKIM map[string]DKIMKeyInfo
	// STSID is the MTA-STS policy id (RFC 8461 §3.1): new whenever the
	// policy changes.
	STSID string
}

// DKIMKeyInfo is a domain's signing key.
type DKIMKeyInfo struct {
	Selector string
	Record   string // "v=DKIM1; k=...; p=..."
	KeyFile  string
}

// Records lists every record, the host's first, then each domain's.
func (p Plan) Records() []Record {
	host := dns.Fqdn(p.Hostname)
	var rs []Record
	for _, a := range p.Addresses {
		typ := dns.TypeA
		if a.Is6() {
			typ = dns.TypeAAAA
		}
		rs = append(rs, Record{Name: host, Type: typ, Value: a.String(), Kind: HostAddress,
			Comment: "the host's address, for its name"})
		rev, _ := dns.ReverseAddr(a.String())
		rs = append(rs, Record{Name: rev, Type: dns.TypePTR, Value: host, Kind: ReverseName,
			Comment: "reverse DNS, set at whoever gave you the address: many receivers refuse mail without it"})
	}
	for _, d := range p.Domains {
		rs = append(rs, p.domainRecords(dns.Fqdn(d), host)...)
	}
	return rs
}

func (p Plan) domainRecords(domain, host string) []Record {
	name := strings.TrimSuffix(domain, ".")
	rs := []Record{
		{Name: domain, Type: dns.TypeMX, Value: "10 " + host, Kind: MailExchanger, Comment: "mail for " + name + " comes to this host"},
		{Name: domain, Type: dns.TypeTXT, Value: "v=spf1 mx -all", Kind: SPF, Comment: "only the domain's MX hosts send its mail (RFC 7208)"},
	}
	if k, ok := p.DKIM[name]; ok {
		rs = append(rs, Record{Name: k.Selector + "._domainkey." + domain, Type: dns.TypeTXT, Value: k.Record,
			Kind: DKIMKey, KeyFile: k.KeyFile, Comment: "the public key that verifies this host's signatures (RFC 6376)"})
	}
	rs = append(rs,
		Record{Name: "_dmarc." + domain, Type: dns.TypeTXT, Value: "v=DMARC1; p=reject; rua=mailto:" + ReportsTo("dmarc", name),
			Kind: DMARC, Comment: "receivers refuse mail that fails both SPF and DKIM for " + name + " (RFC 7489)"},
		Record{Name: "_mta-sts." + domain, Type: dns.TypeTXT, Value: "v=STSv1; id=" + p.STSID, Kind: TagRecord, Optional: true,
			Comment: "senders must use TLS to this host (RFC 8461); publish once mta-sts." + name + " serves the policy"},
		Record{Name: "mta-sts." + domain, Type: dns.TypeCNAME, Value: host, Kind: HostAddress, Optional: true,
			Comment: "where senders fetch the MTA-STS policy"},
		Record{Name: "_smtp._tls." + domain, Type: dns.TypeTXT, Value: "v=TLSRPTv1; rua=mailto:" + ReportsTo("tls", name),
			Kind: TagRecord, Optional: true, Comment: "senders report TLS failures here (RFC 8460)"},
		Record{Name: "_submissions._tcp." + domain, Type: dns.TypeSRV, Value: "0 1 465 " + host, Kind: Service, Optional: true,
			Comment: "mail clients find the submission port (RFC 6186, RFC 8314)"},
		Record{Name: "_submission._tcp." + domain, Type: dns.TypeSRV, Value: "0 1 587 " + host, Kind: Service, Optional: true},
		Record{Name: "_imaps._tcp." + domain, Type: dns.TypeSRV, Value: "0 1 993 " + host, Kind: Service, Optional: true,
			Comment: "mail clients find IMAP (Dovecot) on this host"},
	)
	return rs
}

// ReportsTo is where the domain's DMARC aggregate reports (kind "dmarc",
// RFC 7489 §7.2) or TLS reports ("tls", RFC 8460) go: an alias setup
// makes for the admin.
func ReportsTo(kind, domain string) string { return kind + "-reports@" + domain }

// ttl is the TTL of the printed records: an hour, short enough to fix a
// mistake the same day.
const ttl = 3600

// String is r as a zone-file line. TXT text is split into strings of at
// most 255 octets (RFC 1035 §3.3.14), as a 2048-bit DKIM key needs.
func (r Record) String() string {
	value := r.Value
	if r.Type == dns.TypeTXT {
		value = quoteTXT(value)
	}
	return fmt.Sprintf("%s %d IN %s %s", r.Name, ttl, dns.TypeToString[r.Type], value)
}

func quoteTXT(s string) string {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, `"`+s[:255]+`"`)
		s = s[255:]
	}
	return strings.Join(append(parts, `"`+s+`"`), " ")
}

// Zone is the records as a zone-file fragment, each after its comment,
// optional ones marked.
func Zone(rs []Record) string {
	var b strings.Builder
	for _, r := range rs {
		switch {
		case r.Comment != "" && r.Optional:
			fmt.Fprintf(&b, "; (optional) %s\n", r.Comment)
		case r.Comment != "":
			fmt.Fprintf(&b, "; %s\n", r.Comment)
		}
		fmt.Fprintln(&b, r)
	}
	return b.String()
}

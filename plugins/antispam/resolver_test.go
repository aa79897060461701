package main

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"postline/plugins/sdk"
)

// TestDNSDown: a DNS server that never answers turns every check into a
// temperror within dns_timeout; the message is not failed and scores 0.
func TestDNSDown(t *testing.T) {
	w := newWorld(t) // only for its signing key
	f := &filter{}
	f.SetHost(sdk.Host{Hostname: hostname})
	if err := f.Configure(map[string]any{"dns_server": silentDNS(t), "dns_timeout": "300ms", "dnsbl_zones": []any{"bl.test"}}); err != nil {
		t.Fatal(err)
	}
	h := w.sign(t, plainHeader, plainBody)
	start := time.Now()
	got := run(t, f, message(session{ip: "192.0.2.1", helo: "h", sender: "a@example.test"}, h, strings.NewReader(plainBody)))
	took := time.Since(start)
	t.Logf("all checks timed out after %s (dns_timeout 300ms)", took.Round(time.Millisecond))
	checkVerdict(t, got, delivered("",
		`mx.example.test; spf=temperror reason="lookup example.test.: i/o timeout" smtp.mailfrom=a@example.test; `+
			`dkim=temperror reason="dkim: key unavailable: lookup sel._domainkey.example.test.: i/o timeout" header.d=example.test header.i=@example.test; `+
			`dmarc=temperror reason="dmarc: TXT record unavailable: lookup _dmarc.example.test.: i/o timeout" header.from=example.test`,
		"0.0", "No, score=0.0 required=5.0 tests=none"))
	if took > 5*time.Second { // does not hang: each lookup is bounded
		t.Errorf("took %s", took)
	}
}

func TestFQDN(t *testing.T) {
	for in, want := range map[string]string{"example.test": "example.test.", "example.test.": "example.test."} {
		if got := fqdn(in); got != want {
			t.Errorf("fqdn(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDNSRefused: a resolver that answers REFUSED or SERVFAIL is our
// problem, not the sender's: temperror, no points.
func TestDNSRefused(t *testing.T) {
	w := newWorld(t)
	w.dns.Fail("refused._domainkey.example.test.", dns.RcodeRefused)
	w.dns.Fail("servfail.test.", dns.RcodeServerFailure)
	w.dns.Fail("_dmarc.servfail.test.", dns.RcodeRefused)
	f := w.filter(t, nil)
	h := signWith(t, w.key, "refused", header("From: a@servfail.test", "To: b@example.test", "Subject: hi"), plainBody)
	got := run(t, f, message(session{ip: "192.0.2.1", helo: "h", sender: "a@servfail.test"}, h, strings.NewReader(plainBody)))
	checkVerdict(t, got, delivered("",
		`mx.example.test; spf=temperror reason="lookup servfail.test.: server misbehaving" smtp.mailfrom=a@servfail.test; `+
			`dkim=temperror reason="dkim: key unavailable: lookup refused._domainkey.example.test.: server misbehaving" header.d=example.test header.i=@example.test; `+
			`dmarc=temperror reason="dmarc: TXT record unavailable: lookup _dmarc.servfail.test.: server misbehaving" header.from=servfail.test`,
		"0.0", "No, score=0.0 required=5.0 tests=none"))
}

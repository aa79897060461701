package main

import (
	"net/netip"
	"strings"
	"testing"

	"postline/plugins/sdk"
)

func TestReverseName(t *testing.T) {
	// RFC 5782 §2.1 and §2.4 give these two examples.
	for ip, want := range map[string]string{
		"192.0.2.99":                "99.2.0.192",
		"2001:db8:1:2:3:4:567:89ab": "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",
		"::ffff:127.0.0.2":          "2.0.0.127",
		"10.0.0.0":                  "0.0.0.10",
	} {
		if got := reverseName(netip.MustParseAddr(ip)); got != want {
			t.Errorf("reverseName(%s) = %s, want %s", ip, got, want)
		}
	}
}

func TestDNSBL(t *testing.T) {
	w := newWorld(t)
	// bl.test lists; clean.test lists nobody; refused.test answers
	// 127.255.255.254 ("query refused"), which must not count.
	f := w.filter(t, map[string]any{"dnsbl_zones": []any{"bl.test", "clean.test", "refused.test."}})
	tests := []struct {
		name string
		s    session
		from string
		want sdk.Verdict
	}{
		{"listed IPv4", session{ip: "127.0.0.2", helo: "h", sender: "a@example.test"}, "a@example.test",
			delivered("", "mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=none; dmarc=pass header.from=example.test",
				"4.0", "No, score=4.0 required=5.0 tests=DNSBL_bl.test")},
		{"listed IPv6, nibble format", session{ip: "2001:db8::1", helo: "h", sender: "a@v6.test"}, "a@v6.test",
			delivered("", "mx.example.test; spf=pass smtp.mailfrom=a@v6.test; dkim=none; dmarc=none header.from=v6.test",
				"4.0", "No, score=4.0 required=5.0 tests=DNSBL_bl.test")},
		{"not listed", fromLocalhost, "a@example.test",
			delivered("", "mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=none; dmarc=pass header.from=example.test",
				"0.0", "No, score=0.0 required=5.0 tests=none")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, f, message(tt.s, header("From: "+tt.from, "Subject: hi"), strings.NewReader(plainBody)))
			checkVerdict(t, got, tt.want)
		})
	}
}

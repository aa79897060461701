package received

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"postline/plugins/sdk"
)

var date = time.Date(2026, 11, 22, 8, 45, 30, 0, time.UTC)

func TestField(t *testing.T) {
	tests := []struct {
		name string
		tr   Trace
		want string
	}{
		{"submission over TLS with AUTH", Trace{Helo: "laptop", ReverseDNS: "host.example.net", IP: "192.0.2.7",
			Hostname: "mail.example.test", Protocol: "ESMTP", TLSVersion: "TLS1.3", TLSCipher: "TLS_AES_128_GCM_SHA256",
			Authenticated: true, QueueID: "ABCDEFGHJKLMNPQR", Recipients: []string{"demo@example.test"}, Date: date},
			"from laptop (host.example.net [192.0.2.7])\r\n\tby mail.example.test with ESMTPSA" +
				"\r\n\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n\tid ABCDEFGHJKLMNPQR" +
				"\r\n\tfor <demo@example.test>; Sun, 22 Nov 2026 08:45:30 +0000"},
		{"plain ESMTP, no rDNS, two recipients", Trace{Helo: "mx.example.org", IP: "198.51.100.1",
			Hostname: "mail.example.test", Protocol: "ESMTP", QueueID: "ABCDEFGHJKLMNPQR",
			Recipients: []string{"a@example.test", "b@example.test"}, Date: date},
			"from mx.example.org (unknown [198.51.100.1])\r\n\tby mail.example.test with ESMTP" +
				"\r\n\tid ABCDEFGHJKLMNPQR; Sun, 22 Nov 2026 08:45:30 +0000"},
		{"HELO, IPv6, TLS without auth", Trace{Helo: "old", IP: "2001:db8::1", Hostname: "h", Protocol: "SMTP",
			TLSVersion: "TLS1.2", Date: date},
			"from old (unknown [IPv6:2001:db8::1])\r\n\tby h with SMTP\r\n\t(using TLSv1.2); Sun, 22 Nov 2026 08:45:30 +0000"},
		{"ESMTPS", Trace{Helo: "x", IP: "127.0.0.1", Hostname: "h", TLSVersion: "TLS1.3", TLSCipher: "C", Date: date},
			"from x (unknown [127.0.0.1])\r\n\tby h with ESMTPS\r\n\t(using TLSv1.3 with cipher C); Sun, 22 Nov 2026 08:45:30 +0000"},
		{"ESMTPA", Trace{Helo: "x", IP: "127.0.0.1", Hostname: "h", Authenticated: true, Date: date},
			"from x (unknown [127.0.0.1])\r\n\tby h with ESMTPA; Sun, 22 Nov 2026 08:45:30 +0000"},
		{"injection", Trace{Helo: "evil\r\nX-Injected: yes", ReverseDNS: "a\nb(c)", IP: "not an ip", Hostname: "h",
			Recipients: []string{"x\r\nBcc: <y@example.org>"}, Date: date},
			"from evilX-Injected:yes (abc [unknown])\r\n\tby h with ESMTP\r\n\tfor <xBcc: y@example.org>; Sun, 22 Nov 2026 08:45:30 +0000"},
		{"non-ASCII recipient left out, empty HELO", Trace{IP: "127.0.0.1", Hostname: "h",
			Recipients: []string{"dörte@example.test"}, Date: date},
			"from unknown (unknown [127.0.0.1])\r\n\tby h with ESMTP; Sun, 22 Nov 2026 08:45:30 +0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.tr.Field()
			if got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
			for i, line := range strings.Split(got, "\r\n") {
				if i > 0 && line[0] != '\t' || strings.ContainsAny(line, "\r\n") {
					t.Errorf("line %d %q breaks the field", i, line)
				}
			}
		})
	}
}

func TestDataPrependsReceived(t *testing.T) {
	f := &filter{now: func() time.Time { return date }}
	f.SetHost(sdk.Host{Hostname: "mail.example.test"})
	if !f.HeadersOnly() {
		t.Error("the received plugin must not ask for the body")
	}
	v, err := f.Data(context.Background(), &sdk.Message{
		Conn:       &sdk.Conn{Helo: "c", ClientIP: "127.0.0.1", Protocol: "ESMTP", QueueID: "ABCDEFGHJKLMNPQR"},
		Recipients: []string{"a@example.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, sdk.Continue().With(sdk.Prepend("Received",
		"from c (unknown [127.0.0.1])\r\n\tby mail.example.test with ESMTP\r\n\tid ABCDEFGHJKLMNPQR"+
			"\r\n\tfor <a@example.test>; Sun, 22 Nov 2026 08:45:30 +0000"))) {
		t.Errorf("verdict = %+v", v)
	}
}

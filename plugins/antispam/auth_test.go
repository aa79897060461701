package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	"postline/plugins/sdk"
)

func TestSPF(t *testing.T) {
	w := newWorld(t)
	f := w.filter(t, nil)
	tests := []struct {
		name   string
		s      session
		from   string
		want   string // Authentication-Results
		score  string
		status string
	}{
		{"pass, DMARC aligned", fromLocalhost, "a@example.test",
			"mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=none; dmarc=pass header.from=example.test",
			"0.0", "No, score=0.0 required=5.0 tests=none"},
		{"fail, no DMARC record", session{ip: "192.0.2.1", helo: "h.other.test", sender: "x@other.test"}, "x@other.test",
			"mx.example.test; spf=fail smtp.mailfrom=x@other.test; dkim=none; dmarc=none header.from=other.test",
			"3.0", "No, score=3.0 required=5.0 tests=SPF_FAIL"},
		{"softfail", session{ip: "127.0.0.1", helo: "h.soft.test", sender: "x@soft.test"}, "x@soft.test",
			"mx.example.test; spf=softfail smtp.mailfrom=x@soft.test; dkim=none; dmarc=none header.from=soft.test",
			"1.0", "No, score=1.0 required=5.0 tests=SPF_SOFTFAIL"},
		{"null sender checks HELO", session{ip: "127.0.0.1", helo: "example.test"}, "a@example.test",
			"mx.example.test; spf=pass smtp.helo=example.test; dkim=none; dmarc=pass header.from=example.test",
			"0.0", "No, score=0.0 required=5.0 tests=none"},
		{"no SPF record", session{ip: "192.0.2.1", helo: "h", sender: "x@nowhere.test"}, "x@nowhere.test",
			"mx.example.test; spf=none smtp.mailfrom=x@nowhere.test; dkim=none; dmarc=none header.from=nowhere.test",
			"0.0", "No, score=0.0 required=5.0 tests=none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := header("From: "+tt.from, "To: rcpt@mx.example.test", "Subject: hello")
			got := run(t, f, message(tt.s, h, strings.NewReader(plainBody)))
			checkVerdict(t, got, delivered("", tt.want, tt.score, tt.status))
		})
	}
}

func TestDKIM(t *testing.T) {
	w := newWorld(t)
	f := w.filter(t, nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	// A 2048-bit key does not fit one TXT string: served split in several.
	w.dns.Add(t, txt("rsa._domainkey.example.test.", "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(der)))

	spoofer := session{ip: "192.0.2.1", helo: "h.example.test", sender: "a@example.test"}
	tests := []struct {
		name, header, body string
		s                  session
		want               sdk.Verdict
	}{
		{"ed25519 pass makes DMARC pass although SPF fails", w.sign(t, plainHeader, plainBody), plainBody, spoofer,
			delivered("", "mx.example.test; spf=fail smtp.mailfrom=a@example.test; dkim=pass header.d=example.test header.i=@example.test; dmarc=pass header.from=example.test",
				"3.0", "No, score=3.0 required=5.0 tests=SPF_FAIL")},
		{"RSA key in a split TXT record", signWith(t, rsaKey, "rsa", plainHeader, plainBody), plainBody, fromLocalhost,
			delivered("", "mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=pass header.d=example.test header.i=@example.test; dmarc=pass header.from=example.test",
				"0.0", "No, score=0.0 required=5.0 tests=none")},
		{"tampered body fails", w.sign(t, plainHeader, plainBody), plainBody + "P.S. send money\r\n", fromLocalhost,
			delivered("", `mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=fail reason="dkim: body hash did not verify" header.d=example.test header.i=@example.test; dmarc=pass header.from=example.test`,
				"2.0", "No, score=2.0 required=5.0 tests=DKIM_FAIL")},
		{"tampered body and SPF fail: DMARC p=reject", w.sign(t, plainHeader, plainBody), plainBody + "P.S.\r\n", spoofer,
			sdk.Reject(550, "5.7.1", "message refused as spam (score 10.0)")},
		{"unknown selector is a permerror", signWith(t, w.key, "gone", plainHeader, plainBody), plainBody, fromLocalhost,
			delivered("", `mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=permerror reason="dkim: no key for signature: lookup gone._domainkey.example.test.: no such host" header.d=example.test header.i=@example.test; dmarc=pass header.from=example.test`,
				"2.0", "No, score=2.0 required=5.0 tests=DKIM_FAIL")},
		{"a bad signature beside a good one costs nothing", signWith(t, w.key, "gone", w.sign(t, plainHeader, plainBody), plainBody), plainBody, fromLocalhost,
			delivered("", `mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=permerror reason="dkim: no key for signature: lookup gone._domainkey.example.test.: no such host" header.d=example.test header.i=@example.test; `+
				`dkim=pass header.d=example.test header.i=@example.test; dmarc=pass header.from=example.test`,
				"0.0", "No, score=0.0 required=5.0 tests=none")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, f, message(tt.s, tt.header, strings.NewReader(tt.body)))
			checkVerdict(t, got, tt.want)
		})
	}
}

func TestDMARC(t *testing.T) {
	w := newWorld(t)
	f := w.filter(t, nil)
	local := func(sender string) session { return session{ip: "127.0.0.1", helo: "h.example.test", sender: sender} }
	tests := []struct {
		name string
		s    session
		from []string
		want sdk.Verdict
	}{
		{"fail with p=reject", session{ip: "192.0.2.1", helo: "h", sender: "x@other.test"}, []string{"a@example.test"},
			delivered("Junk", "mx.example.test; spf=fail smtp.mailfrom=x@other.test; dkim=none; dmarc=fail header.from=example.test",
				"8.0", "Yes, score=8.0 required=5.0 tests=SPF_FAIL,DMARC_REJECT")},
		{"relaxed alignment: MAIL FROM in a subdomain", local("bounce@mail.example.test"), []string{"a@example.test"},
			delivered("", "mx.example.test; spf=pass smtp.mailfrom=bounce@mail.example.test; dkim=none; dmarc=pass header.from=example.test",
				"0.0", "No, score=0.0 required=5.0 tests=none")},
		{"strict alignment (aspf=s) refuses the subdomain", local("bounce@mail.strict.test"), []string{"a@strict.test"},
			delivered("Junk", "mx.example.test; spf=pass smtp.mailfrom=bounce@mail.strict.test; dkim=none; dmarc=fail header.from=strict.test",
				"5.0", "Yes, score=5.0 required=5.0 tests=DMARC_REJECT")},
		{"subdomain without a record: the organizational domain's sp=quarantine", local("x@news.quar.test"), []string{"a@news.quar.test"},
			delivered("", "mx.example.test; spf=none smtp.mailfrom=x@news.quar.test; dkim=none; dmarc=fail header.from=news.quar.test",
				"3.0", "No, score=3.0 required=5.0 tests=DMARC_QUARANTINE")},
		{"p=none costs nothing", local("x@quar.test"), []string{"a@quar.test"},
			delivered("", "mx.example.test; spf=none smtp.mailfrom=x@quar.test; dkim=none; dmarc=fail header.from=quar.test",
				"0.0", "No, score=0.0 required=5.0 tests=none")},
		{"two From fields", local("a@example.test"), []string{"a@example.test", "b@example.test"},
			delivered("", `mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=none; dmarc=permerror reason="not one From field"`,
				"0.0", "No, score=0.0 required=5.0 tests=none")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines []string
			for _, from := range tt.from {
				lines = append(lines, "From: "+from)
			}
			h := header(append(lines, "To: rcpt@mx.example.test", "Subject: hi")...)
			checkVerdict(t, run(t, f, message(tt.s, h, strings.NewReader(plainBody))), tt.want)
		})
	}
}

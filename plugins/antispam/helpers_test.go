package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/dkim"

	"postline/dnstest"
	"postline/plugins/sdk"
)

const hostname = "mx.example.test"

// world is a small internet: a DNS server with SPF, DMARC, DKIM and DNSBL
// records, and the key example.test signs its mail with.
type world struct {
	dns *dnstest.Server
	key crypto.Signer // selector "sel" of example.test
}

func newWorld(t testing.TB) *world {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := dnstest.Start(t,
		txt("example.test.", "v=spf1 ip4:127.0.0.0/8 -all"),
		txt("_dmarc.example.test.", "v=DMARC1; p=reject"),
		txt("sel._domainkey.example.test.", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub)),
		txt("mail.example.test.", "v=spf1 ip4:127.0.0.0/8 -all"),
		txt("soft.test.", "v=spf1 ip4:10.0.0.0/8 ~all"),
		txt("other.test.", "v=spf1 -all"),
		txt("strict.test.", "v=spf1 -all"),
		txt("_dmarc.strict.test.", "v=DMARC1; p=reject; aspf=s"),
		txt("mail.strict.test.", "v=spf1 ip4:127.0.0.0/8 -all"),
		txt("_dmarc.quar.test.", "v=DMARC1; p=none; sp=quarantine"),
		txt("v6.test.", "v=spf1 ip6:2001:db8::/32 -all"),
		// DNSBL: 127.0.0.2 and 2001:db8::1 are listed; refused.test
		// answers every query with Spamhaus's "query refused" code.
		"2.0.0.127.bl.test. 300 IN A 127.0.0.2",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test. 300 IN A 127.0.0.2",
		"2.0.0.127.refused.test. 300 IN A 127.255.255.254",
	)
	return &world{dns: d, key: key}
}

// config is the plugin config for this world with extra keys on top.
func (w *world) config(extra map[string]any) map[string]any {
	cfg := map[string]any{"dns_server": w.dns.Addr, "dns_timeout": "2s"}
	maps.Copy(cfg, extra)
	return cfg
}

func (w *world) filter(t testing.TB, extra map[string]any) *filter {
	t.Helper()
	f := &filter{}
	f.SetHost(sdk.Host{Plugin: "antispam", Daemon: "mta", Hostname: hostname})
	if err := f.Configure(w.config(extra)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return f
}

// sign returns header with a DKIM-Signature of example.test, selector sel.
func (w *world) sign(t testing.TB, header, body string) string {
	t.Helper()
	return signWith(t, w.key, "sel", header, body)
}

func signWith(t testing.TB, key crypto.Signer, selector, header, body string) string {
	t.Helper()
	var out bytes.Buffer
	opts := &dkim.SignOptions{Domain: "example.test", Selector: selector, Signer: key,
		HeaderKeys: []string{"From", "To", "Subject"}}
	if err := dkim.Sign(&out, strings.NewReader(header+body), opts); err != nil {
		t.Fatalf("dkim.Sign: %v", err)
	}
	h, _, _ := strings.Cut(out.String(), "\r\n\r\n")
	return h + "\r\n\r\n"
}

// header builds a header block from lines, with the empty line at the end.
func header(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

// session is the SMTP side of a test message.
type session struct {
	ip, helo, sender, auth string
}

var fromLocalhost = session{ip: "127.0.0.1", helo: "client.example.test", sender: "a@example.test"}

// message is what the host would hand the plugin: the header parsed as
// sdk does (go-message textproto) and the body as a reader.
func message(s session, rawHeader string, body io.Reader) *sdk.Message {
	h, _ := textproto.ReadHeader(bufio.NewReader(strings.NewReader(rawHeader)))
	return &sdk.Message{
		Conn:   &sdk.Conn{Daemon: "mta", ClientIP: s.ip, Helo: s.helo, Protocol: "ESMTP", AuthUser: s.auth, QueueID: "TESTQUEUEID00001"},
		Sender: s.sender, Recipients: []string{"rcpt@mx.example.test"},
		Header: h, RawHeader: []byte(rawHeader), Body: body,
	}
}

// run calls Data as the sdk would.
func run(t testing.TB, f *filter, m *sdk.Message) sdk.Verdict {
	t.Helper()
	v, err := f.Data(context.Background(), m)
	if err != nil {
		t.Fatalf("Data: %v", err)
	}
	return v
}

// delivered is the verdict for a message that is kept: in the inbox
// (folder "") or in folder, with our three fields replacing any others.
func delivered(folder, authResults, score, status string) sdk.Verdict {
	v := sdk.Continue()
	if folder != "" {
		v = sdk.FileInto(folder)
	}
	return v.With(
		sdk.Remove("Authentication-Results"), sdk.Remove("X-Spam-Score"), sdk.Remove("X-Spam-Status"),
		sdk.Prepend("X-Spam-Status", status), sdk.Prepend("X-Spam-Score", score),
		sdk.Prepend("Authentication-Results", authResults))
}

func checkVerdict(t testing.TB, got, want sdk.Verdict) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("verdict\n got %+v\nwant %+v", got, want)
	}
}

// plainHeader is an unsigned message from a@example.test.
var plainHeader = header("From: A <a@example.test>", "To: rcpt@mx.example.test", "Subject: hello")

const plainBody = "Hi,\r\n\r\njust a note.\r\n"

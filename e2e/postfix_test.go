package e2e

// Interoperability with a real peer MTA: Debian's Postfix, run as a
// private instance (its own config, queue and data folders in a
// temporary folder, smtpd on a random 127.x.y.z address) next to the
// stack. Our MTA relays to it as the MX of remote.test, and it relays
// mail for example.test into our mta.listen. It needs root (Postfix's
// master starts as root) and skips without Postfix, unless
// POSTLINE_REQUIRE_INTEROP=1.

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestPostfixInterop(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/sbin/postfix"); err != nil {
		interopMissing(t, "postfix not installed; `apt-get install postfix` to run this test")
	}
	if os.Geteuid() != 0 {
		interopMissing(t, "a private Postfix instance needs root (its master process starts as root)")
	}
	n := newRelayNet(t)
	s := n.Stack(relayConfig{})
	pf := startPostfix(t, n, s.MTA)
	n.DNS.Add(t, "remote.test. MX 10 mx.remote.test.", "mx.remote.test. A "+pf.IP)

	t.Run("our MTA relays to Postfix", func(t *testing.T) {
		msg := relayMessage("to postfix", "user@remote.test")
		id := submitRelay(t, s, msg, "user@remote.test")
		got := pf.WaitMailbox(t, "user@remote.test", 1, 15*time.Second)[0]
		header, body, _ := strings.Cut(msg, "\r\n\r\n")
		for _, line := range append(strings.Split(header, "\r\n"), strings.TrimSuffix(body, "\r\n")) {
			if !bytes.Contains(got, []byte(line+"\n")) {
				t.Errorf("Postfix's mailbox copy lacks %q:\n%s", line, got)
			}
		}
		// Postfix's own trace header: our EHLO name, and ESMTPS, as we
		// took the STARTTLS it offered.
		if !bytes.Contains(got, []byte("Received: from mail.example.test (")) || !bytes.Contains(got, []byte("with ESMTPS id")) {
			t.Errorf("Postfix did not record an ESMTPS session from mail.example.test:\n%s", got)
		}
		var connected map[string]any
		waitEvents(t, s, "connected", func(evs []map[string]any) bool {
			for _, ev := range evs {
				if ev["queue_id"] == id {
					connected = ev // the last one
				}
			}
			return connected != nil
		})
		if connected["host"] != "mx.remote.test" || connected["tls"] != true {
			t.Errorf(`"connected" for %s: %v; want mx.remote.test over TLS`, id, connected)
		}
		waitSpoolEmpty(t, s, 5*time.Second)
	})

	t.Run("Postfix relays to our MTA", func(t *testing.T) {
		msg := "From: someone@remote.test\nTo: demo@example.test\nSubject: from postfix\n" +
			"Message-ID: <from-postfix@remote.test>\n\nrelayed by Postfix\n"
		pf.Sendmail(t, "someone@remote.test", msg, demoUser)
		got := s.WaitForMail(demoUser, 1, 15*time.Second)[0]
		for _, want := range []string{"Subject: from postfix\n", "Message-ID: <from-postfix@remote.test>\n",
			"Received: by postfix.remote.test (Postfix, ", "\n\nrelayed by Postfix\n"} {
			if !bytes.Contains(got, []byte(want)) {
				t.Errorf("delivered message lacks %q:\n%s", want, got)
			}
		}
		pf.WaitLog(t, "status=sent", 10*time.Second)
		// Postfix's client took our MTA's STARTTLS (self-signed, so "Untrusted").
		pf.WaitLog(t, "TLS connection established to "+hostOf(s.MTA), 10*time.Second)
		waitLogEvent(t, s, "queued", func(ev map[string]any) bool { return ev["from"] == "someone@remote.test" })
		if queued := logEvents(s, "queued"); queued[len(queued)-1]["from"] != "someone@remote.test" {
			t.Errorf("our MTA queued something after the message from someone@remote.test: %v", queued)
		}
	})

	// RFC 3461 both ways: Postfix's DSN request reaches our MTA, which
	// reports the delivery; ours reaches Postfix, which reports itself.
	t.Run("Postfix asks us for a success report", func(t *testing.T) {
		msg := "From: user@remote.test\nTo: demo@example.test\nSubject: dsn from postfix\n\nreport it\n"
		pf.Sendmail(t, "user@remote.test", msg, "-N", "success,delay", "-V", "pf-envid-1", demoUser)
		report := findMessage(t, pf.WaitMailbox(t, "user@remote.test", 2, 15*time.Second), "pf-envid-1")
		b := parseBounce(t, report)
		wantFields(t, b.PerMessage, map[string]string{"Original-Envelope-Id": "pf-envid-1",
			"Reporting-MTA": "dns; mail.example.test"})
		wantFields(t, b.Recipient(t, demoUser), map[string]string{"Action": "delivered", "Status": "2.0.0",
			"Original-Recipient": "rfc822; " + demoUser})
	})

	t.Run("our MTA passes the request on to Postfix", func(t *testing.T) {
		id := submitWith(t, s, demoUser, &smtp.MailOptions{EnvelopeID: "pl-envid-2", Return: smtp.DSNReturnHeaders},
			func(string) *smtp.RcptOptions {
				return &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifySuccess}}
			}, relayMessage("dsn to postfix", "user@remote.test"), "user@remote.test")
		report := findMessage(t, s.WaitForMail(demoUser, 3, 15*time.Second), "pl-envid-2")
		b := parseBounce(t, report)
		wantFields(t, b.PerMessage, map[string]string{"Original-Envelope-Id": "pl-envid-2",
			"Reporting-MTA": "dns; postfix.remote.test"})
		wantFields(t, b.Recipient(t, "user@remote.test"), map[string]string{"Action": "delivered", "Status": "2.0.0"})
		pf.WaitLog(t, "sender delivery status notification", 10*time.Second)
		for _, ev := range logEvents(s, "success report queued") {
			if ev["queue_id"] == id {
				t.Errorf("our MTA reported a delivery Postfix reports itself: %v", ev)
			}
		}
	})
}

// findMessage returns the one message among msgs that contains s.
func findMessage(t *testing.T, msgs [][]byte, s string) []byte {
	t.Helper()
	var found [][]byte
	for _, m := range msgs {
		if bytes.Contains(m, []byte(s)) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d messages contain %q, want 1", len(found), s)
	}
	return found[0]
}

func hostOf(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return host
}

// postfixInstance is one private Postfix: config_directory, queue and
// data folders and a virtual mailbox base under Dir.
type postfixInstance struct {
	Dir  string
	IP   string
	Addr string // smtpd: IP and the relay test's port
}

// postfixMaster lists the services the tests use, none in a chroot,
// and smtpd only on the instance's own address: never on port 25.
const postfixMaster = `{{addr}} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// postfixMain: remote.test is a virtual mailbox domain delivered into
// Maildirs under vmail/ as nobody; mail for example.test goes to our
// MTA; STARTTLS offered with a self-signed certificate and used when
// offered; no DNS (the transport names an address); logs to maillog.
// inet_interfaces is 127.0.0.1 because Postfix wants an address an
// interface has; the services in master.cf bind their own.
const postfixMain = `compatibility_level = 3.6
config_directory = {{dir}}
queue_directory = {{dir}}/queue
data_directory = {{dir}}/data
myhostname = postfix.remote.test
mydomain = remote.test
myorigin = remote.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
alias_maps =
alias_database =
virtual_mailbox_domains = remote.test
virtual_mailbox_base = {{dir}}/vmail
virtual_mailbox_maps = texthash:{{dir}}/vmailbox
virtual_uid_maps = static:{{uid}}
virtual_gid_maps = static:{{gid}}
transport_maps = texthash:{{dir}}/transport
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtpd_tls_security_level = may
smtpd_tls_cert_file = {{dir}}/cert.pem
smtpd_tls_key_file = {{dir}}/key.pem
smtp_tls_security_level = may
smtp_tls_loglevel = 1
maillog_file = {{dir}}/maillog
maillog_file_prefixes = {{dir}}
`

// startPostfix starts a private Postfix on a random loopback address at
// n's port that relays example.test to mta, and stops it when the test
// ends.
func startPostfix(t *testing.T, n *relayNet, mta string) *postfixInstance {
	t.Helper()
	pf := &postfixInstance{IP: n.DeadAddr()}
	pf.Addr = net.JoinHostPort(pf.IP, strconv.Itoa(n.Port))
	cert, key := postfixCert(t)
	runPostfix(t, pf, "pl-postfix-", "vmail", map[string]string{
		"main.cf":   postfixMain,
		"vmailbox":  "user@remote.test remote.test/user/\n",
		"transport": fmt.Sprintf("example.test smtp:[%s]:%s\n", hostOf(mta), portOf(mta)),
		"cert.pem":  cert,
		"key.pem":   key,
	})
	return pf
}

// runPostfix gives pf its own folder in the temporary folder (named
// prefix*), with the queue and data folders Postfix wants and the
// mailboxes folder virtual(8) delivers into as nobody; writes files
// there, and master.cf, with {{dir}}, {{addr}}, {{uid}} and {{gid}}
// filled in; starts the instance, waits for its smtpd, and stops it
// when the test ends.
func runPostfix(tb testing.TB, pf *postfixInstance, prefix, mailboxes string, files map[string]string) {
	tb.Helper()
	nobody, err := user.Lookup("nobody")
	if err != nil {
		tb.Fatalf("no user for Postfix's virtual mailboxes: %v", err)
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		tb.Fatalf("no postfix user (is Debian's postfix package installed?): %v", err)
	}
	if pf.Dir, err = os.MkdirTemp("", prefix); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		pf.shutdown(tb)
		if tb.Failed() {
			tb.Logf("postfix log:\n%s", pf.Log())
		}
		os.RemoveAll(pf.Dir)
	})
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	pfUID, _ := strconv.Atoi(pfUser.Uid)
	dir := pf.Dir
	for _, step := range []error{
		os.Chmod(dir, 0o755), // virtual(8) delivers as nobody: every folder on the way must be searchable
		os.Mkdir(filepath.Join(dir, "queue"), 0o755),
		os.Mkdir(filepath.Join(dir, "data"), 0o700),
		os.Chown(filepath.Join(dir, "data"), pfUID, -1),
		os.Mkdir(filepath.Join(dir, mailboxes), 0o700),
		os.Chown(filepath.Join(dir, mailboxes), uid, gid),
	} {
		if step != nil {
			tb.Fatal(step)
		}
	}
	fill := strings.NewReplacer("{{dir}}", dir, "{{addr}}", pf.Addr, "{{uid}}", nobody.Uid, "{{gid}}", nobody.Gid).Replace
	files["master.cf"] = postfixMaster
	for name, content := range files {
		mode := os.FileMode(0o644) // virtual(8) reads the maps as nobody
		if name == "key.pem" {
			mode = 0o600 // smtpd reads it as root
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fill(content)), mode); err != nil {
			tb.Fatal(err)
		}
	}
	if out, err := exec.Command("/usr/sbin/postfix", "-c", dir, "start").CombinedOutput(); err != nil {
		tb.Fatalf("postfix start: %v\n%s\nmaillog:\n%s", err, out, pf.Log())
	}
	pf.waitListening(tb)
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// postfixCert returns a self-signed certificate and its key as PEM.
func postfixCert(t *testing.T) (cert, key string) {
	t.Helper()
	c, err := selfSigned("postfix.remote.test")
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// waitListening waits until Postfix's smtpd greets on pf.Addr.
func (pf *postfixInstance) waitListening(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := smtp.Dial(pf.Addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postfix does not answer on %s; maillog:\n%s", pf.Addr, pf.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns Postfix's log so far.
func (pf *postfixInstance) Log() string {
	b, _ := os.ReadFile(filepath.Join(pf.Dir, "maillog"))
	return string(b)
}

// WaitLog waits until Postfix's log holds substr.
func (pf *postfixInstance) WaitLog(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(pf.Log(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("Postfix's log never had %q", substr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Sendmail injects msg the way local programs do: Postfix's sendmail,
// postdrop and pickup. args are sendmail's options (e.g. "-N", "success")
// and then the recipients.
func (pf *postfixInstance) Sendmail(t *testing.T, from, msg string, args ...string) {
	t.Helper()
	cmd := exec.Command("/usr/sbin/sendmail", append([]string{"-C", pf.Dir, "-f", from}, args...)...)
	cmd.Stdin = strings.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postfix sendmail: %v\n%s", err, out)
	}
}

// WaitMailbox waits until the virtual mailbox of addr holds n messages
// and returns them.
func (pf *postfixInstance) WaitMailbox(t *testing.T, addr string, n int, timeout time.Duration) [][]byte {
	t.Helper()
	local, domain, _ := strings.Cut(addr, "@")
	return readMaildir(t, filepath.Join(pf.Dir, "vmail", domain, local, "new"), n, timeout)
}

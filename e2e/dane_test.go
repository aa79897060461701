package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"postline/queue"
)

// unbound is Debian's validating resolver, run by a test on a loopback
// address: it serves the test's zones itself (auth-zone, as if from
// upstream) and validates the signed ones against the trust anchors the
// test made with ldns-keygen and ldns-signzone.
type unbound struct {
	Addr string
	dir  string
}

// startUnbound serves zones (name: zone file text); those in signed are
// signed first, each with a key of its own that unbound trusts.
func startUnbound(t *testing.T, zones map[string]string, signed ...string) *unbound {
	t.Helper()
	for _, tool := range []string{"unbound", "ldns-keygen", "ldns-signzone"} {
		if _, err := exec.LookPath(tool); err != nil {
			interopMissing(t, "%s not installed; `apt-get install unbound ldnsutils` to run this test", tool)
		}
	}
	u := &unbound{dir: t.TempDir()}
	var conf strings.Builder
	for name, zone := range zones {
		file := filepath.Join(u.dir, name+".zone")
		writeAt(t, file, zone)
		if slices.Contains(signed, name) {
			file = u.sign(t, name, file)
		}
		fmt.Fprintf(&conf, "auth-zone:\n  name: %q\n  zonefile: %q\n  for-upstream: yes\n  for-downstream: no\n  fallback-enabled: no\n", name+".", file)
	}
	for range 20 {
		u.Addr = net.JoinHostPort(randomLoopback(), strconv.Itoa(20000+int(time.Now().UnixNano()%20000)))
		if u.run(t, conf.String()) {
			return u
		}
	}
	t.Fatal("unbound did not start")
	return nil
}

// sign makes a key for zone, signs file with it and adds the key to the
// trust anchors; it returns the signed file.
func (u *unbound) sign(t *testing.T, zone, file string) string {
	t.Helper()
	key := strings.TrimSpace(u.cmd(t, "ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone))
	u.cmd(t, "ldns-signzone", "-n", file, key)
	dnskey, err := os.ReadFile(filepath.Join(u.dir, key+".key"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(u.dir, "anchors"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(dnskey)
	return file + ".signed"
}

func (u *unbound) cmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = u.dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

// run starts unbound on u.Addr and waits until it answers; false when it
// could not (the port was taken).
func (u *unbound) run(t *testing.T, zones string) bool {
	host, port, _ := net.SplitHostPort(u.Addr)
	conf := fmt.Sprintf(`server:
  interface: %s
  port: %s
  do-daemonize: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: ""
  use-syslog: no
  logfile: ""
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "validator iterator"
  trust-anchor-file: %q
  local-zone: "test." nodefault
%s`, host, port, u.dir, filepath.Join(u.dir, "anchors"), zones)
	writeAt(t, filepath.Join(u.dir, "unbound.conf"), conf)
	cmd := exec.Command("unbound", "-d", "-c", filepath.Join(u.dir, "unbound.conf"))
	cmd.Stderr = &syncBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		m := new(dns.Msg).SetQuestion("test.", dns.TypeSOA)
		if _, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, u.Addr); err == nil {
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })
			return true
		}
	}
	cmd.Process.Kill()
	t.Fatalf("unbound did not answer: %s", cmd.Stderr)
	return false
}

// writeAt writes text to path, readable by unbound.
func writeAt(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// spkiSHA256 is the data of a "3 1 1" TLSA record for c.
func spkiSHA256(t *testing.T, c tls.Certificate) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// zone is a minimal zone file for name with the records given.
func zone(name string, records ...string) string {
	return fmt.Sprintf("$ORIGIN %s.\n$TTL 300\n@ SOA ns.%s. admin.%s. 1 3600 600 86400 300\n@ NS ns.%s.\nns A 127.0.0.1\n%s\n",
		name, name, name, name, strings.Join(records, "\n"))
}

// DANE (RFC 7672) with Debian's unbound as the validating resolver on
// loopback: a signed zone's MX host whose certificate matches its TLSA
// record gets the message, even though the domain's MTA-STS policy
// would refuse that host (DANE first, RFC 8461 §2); a mismatch defers,
// with no plaintext attempt; an unsigned zone's TLSA records are
// ignored and delivery is opportunistic. In a domain with both, an MX
// host without TLSA records is still held to the MTA-STS policy; a host
// whose records are all unusable gets TLS without authentication, which
// is not enough for REQUIRETLS.
func TestDANE(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	goodCert, _ := selfSigned("mx.dane.test")
	otherCert, _ := selfSigned("mx.danebad.test")
	good := n.Sink(sinkOptions{TLS: &tls.Config{Certificates: []tls.Certificate{goodCert}}})
	bad := n.Sink(sinkOptions{TLS: &tls.Config{Certificates: []tls.Certificate{otherCert}}})
	plain := n.Sink(sinkOptions{StartTLS: true})
	mixed1 := n.Sink(sinkOptions{StartTLS: true})                                              // listed by MTA-STS, no TLSA, bad certificate
	mixed2 := n.Sink(sinkOptions{TLS: &tls.Config{Certificates: []tls.Certificate{goodCert}}}) // DANE
	unusable := n.Sink(sinkOptions{StartTLS: true, RequireTLS: true})
	ca := newTestCA(t)
	ph := startPolicyHost(t, ca, "dane.test", "mixed.test")
	ph.set("dane.test", enforcePolicy("mx.elsewhere.test")) // would refuse mx.dane.test
	ph.set("mixed.test", enforcePolicy("mx1.mixed.test"))
	tlsa := func(host string) string { return fmt.Sprintf("_%d._tcp.%s TLSA 3 1 1 ", n.Port, host) }
	u := startUnbound(t, map[string]string{
		"dane.test": zone("dane.test", "@ MX 10 mx", "mx A "+good.IP, tlsa("mx")+spkiSHA256(t, goodCert),
			"mta-sts A "+ph.IP, `_mta-sts TXT "v=STSv1; id=1;"`),
		"danebad.test": zone("danebad.test", "@ MX 10 mx", "mx A "+bad.IP, tlsa("mx")+spkiSHA256(t, goodCert)),
		"plain.test":   zone("plain.test", "@ MX 10 mx", "mx A "+plain.IP, tlsa("mx")+strings.Repeat("00", 32)),
		"mixed.test": zone("mixed.test", "@ MX 5 mx1", "@ MX 10 mx2", "mx1 A "+mixed1.IP, "mx2 A "+mixed2.IP,
			tlsa("mx2")+spkiSHA256(t, goodCert), "mta-sts A "+ph.IP, `_mta-sts TXT "v=STSv1; id=1;"`),
		"unusable.test": zone("unusable.test", "@ MX 10 mx", "mx A "+unusable.IP,
			fmt.Sprintf("_%d._tcp.mx TLSA 1 1 1 %s", n.Port, strings.Repeat("00", 32))), // PKIX-EE: unusable for SMTP
	}, "dane.test", "danebad.test", "mixed.test", "unusable.test")
	s := StartStackWith(t, StackConfig{MTA: fmt.Sprintf("dns_server = %q\nremote_port = %d\nretry_min = \"1s\"\nretry_max = \"2s\"\n"+
		"tls_roots = %q\nmta_sts_port = %d\n", u.Addr, n.Port, ca.File, ph.Port)})

	submitRelay(t, s, relayMessage("dane", "user@dane.test"), "user@dane.test")
	if got := good.WaitMessages(t, 1, 10*time.Second)[0]; got.TLS == nil {
		t.Error("dane.test: delivered without TLS")
	}
	waitLogEvent(t, s, "connected", func(ev map[string]any) bool {
		return ev["host"] == "mx.dane.test" && ev["policy"] == "dane+mta-sts"
	})

	mismatch := submitRelay(t, s, relayMessage("danebad", "user@danebad.test"), "user@danebad.test")
	env := waitEnvelope(t, s, mismatch, attempted)
	if r := env.Recipients[0]; r.State != queue.Pending || !strings.Contains(r.LastError, "4.7.10") ||
		!strings.Contains(r.LastError, "dane: no TLSA record") || r.TLS != "dane, no host usable" {
		t.Errorf("danebad.test: %+v", r)
	}
	if got := len(bad.Messages()); got != 0 || bad.Conns() == 0 {
		t.Errorf("danebad.test's MX: %d connections, %d messages; want tries and no message", bad.Conns(), got)
	}

	submitRelay(t, s, relayMessage("plain", "user@plain.test"), "user@plain.test")
	plain.WaitMessages(t, 1, 10*time.Second)
	waitLogEvent(t, s, "connected", func(ev map[string]any) bool {
		return ev["host"] == "mx.plain.test" && ev["policy"] == "opportunistic"
	})

	// mx1, preferred, has no TLSA and a certificate MTA-STS refuses: skipped.
	submitRelay(t, s, relayMessage("mixed", "user@mixed.test"), "user@mixed.test")
	mixed2.WaitMessages(t, 1, 10*time.Second)
	if got := len(mixed1.Messages()); got != 0 {
		t.Errorf("the MX host held to MTA-STS took %d messages over an unverified certificate", got)
	}

	// Unusable records: TLS without authentication, but not for REQUIRETLS.
	submitRelay(t, s, relayMessage("unusable", "user@unusable.test"), "user@unusable.test")
	if got := unusable.WaitMessages(t, 1, 10*time.Second)[0]; got.TLS == nil {
		t.Error("unusable.test: delivered without TLS")
	}
	submitWith(t, s, demoUser, &smtp.MailOptions{RequireTLS: true}, nil,
		relayMessage("unusable requiretls", "user@unusable.test"), "user@unusable.test")
	b := parseBounce(t, findMessage(t, s.WaitForMail(demoUser, 1, 10*time.Second), "Subject: unusable requiretls"))
	wantFields(t, b.Recipient(t, "user@unusable.test"), map[string]string{"Action": "failed", "Status": "5.7.10"})
	if got := len(unusable.Messages()); got != 1 {
		t.Errorf("unusable.test took %d messages, want only the one without REQUIRETLS", got)
	}
}

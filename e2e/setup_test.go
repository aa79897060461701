package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"postline/dkimkey"
	"postline/dnstest"
)

// setupHost is a host made by `postline setup` in a folder of its own.
type setupHost struct {
	base, config string
	args         []string // setup's flags
	user, mail   string   // system users, "" when not root
}

const setupPassword = "setup-password"

func newSetupHost(t *testing.T, s *Stack) *setupHost {
	t.Helper()
	base, err := os.MkdirTemp("", "pl-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	// Like /var/lib: the daemons' users pass through to state and mail.
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	h := &setupHost{base: base, config: filepath.Join(base, "etc", "postline.toml")}
	h.args = []string{"setup", "--hostname", "mail.example.test", "--domain", "example.test",
		"--dir", filepath.Join(base, "etc"), "--state", filepath.Join(base, "state"), "--mail", filepath.Join(base, "mail"),
		"--listen-smtp", s.MTA, "--listen-submission", s.Submission, "--listen-submissions", s.Submissions,
		"--ip", "192.0.2.10"}
	if os.Geteuid() == 0 {
		n := rand.IntN(1000000)
		h.user, h.mail = fmt.Sprintf("pls%06d", n), fmt.Sprintf("plv%06d", n)
		h.args = append(h.args, "--user", h.user, "--mail-user", h.mail)
		t.Cleanup(func() { // the mail user first: it is in the other's group
			exec.Command("userdel", h.mail).Run()
			exec.Command("userdel", h.user).Run()
		})
	}
	return h
}

// setup runs `postline setup` and returns its output.
func (h *setupHost) setup(t *testing.T, stdin string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "postline"), h.args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("postline setup: %v\n%s", err, out)
	}
	return string(out)
}

// zoneRecords parses the records setup printed; each line must be valid
// zone-file syntax.
func zoneRecords(t *testing.T, out string) []dns.RR {
	t.Helper()
	_, zone, ok := strings.Cut(out, "Publish these DNS records")
	if !ok {
		t.Fatalf("no DNS records printed:\n%s", out)
	}
	zone, _, _ = strings.Cut(zone, "\nThen:")
	var rrs []dns.RR
	for _, line := range strings.Split(zone, "\n")[1:] {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("printed record %q: %v", line, err)
		}
		rrs = append(rrs, rr)
	}
	return rrs
}

// From an empty folder to a DKIM-signed delivery: `postline setup`
// makes the config, users, folders, key and account and prints the
// records; run again it keeps all of it; `postline check` accepts the
// config; the stack it starts signs a submission with the new key, the
// signature verifies against the printed DKIM record, and `postline
// status` shows the message delivered.
func TestSetupToSignedDelivery(t *testing.T) {
	t.Parallel()
	s := &Stack{t: t, Submission: freeAddr(t), Submissions: freeAddr(t), MTA: freeAddr(t), log: newStackLog(t)}
	h := newSetupHost(t, s)
	out := h.setup(t, setupPassword+"\n")
	for _, want := range []string{"made DKIM key", "made account admin@example.test", "added aliases postmaster@example.test", "wrote " + h.config} {
		if !strings.Contains(out, want) {
			t.Errorf("setup did not say %q:\n%s", want, out)
		}
	}
	h.checkOwners(t)
	rrs := zoneRecords(t, out)
	dkimRecord := checkPrintedRecords(t, rrs)
	before := snapshot(t, filepath.Join(h.base, "etc"))

	again := h.setup(t, "")
	if strings.Contains(again, "made ") || strings.Contains(again, "wrote ") || strings.Contains(again, "added ") {
		t.Errorf("a second setup changed something:\n%s", again)
	}
	if after := snapshot(t, filepath.Join(h.base, "etc")); after != before {
		t.Errorf("a second setup changed the files:\n%s\nbecame\n%s", before, after)
	}
	if out, err := runPostline(h.config, "", "check"); err != nil || !strings.Contains(out, ": ok") {
		t.Fatalf("postline check on setup's config: %v\n%s", err, out)
	}

	s.Dir, s.Config, s.MailRoot = h.base, h.config, filepath.Join(h.base, "mail")
	s.start()
	body := "From: Admin <admin@example.test>\r\nTo: admin@example.test\r\nSubject: set up\r\n\r\nhello\r\n"
	if _, err := s.Submit(Submission{User: "admin@example.test", Pass: setupPassword, To: []string{"admin@example.test"}, Body: body}); err != nil {
		t.Fatal(err)
	}
	raw := s.WaitForRawMail("admin@example.test", 1, 20*time.Second)[0]
	verifyDKIM(t, raw, dkimRecord)
	// The MTA counts the delivery once the MDA's reply is in: poll.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		q := status(t, s).Queue
		if q != nil && q.Delivered == 1 && q.Messages == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postline status: queue %+v, want one message delivered and none queued", q)
		}
	}
}

// checkPrintedRecords checks that the records a mail domain needs are
// among those printed and returns the DKIM one.
func checkPrintedRecords(t *testing.T, rrs []dns.RR) *dns.TXT {
	t.Helper()
	var dkimRecord *dns.TXT
	have := map[string]bool{}
	for _, rr := range rrs {
		have[dns.TypeToString[rr.Header().Rrtype]+" "+rr.Header().Name] = true
		if txt, ok := rr.(*dns.TXT); ok && strings.Contains(rr.Header().Name, "._domainkey.") {
			dkimRecord = txt
		}
	}
	for _, want := range []string{"MX example.test.", "TXT example.test.", "TXT _dmarc.example.test.",
		"A mail.example.test.", "PTR 10.2.0.192.in-addr.arpa.", "TXT _mta-sts.example.test.",
		"TXT _smtp._tls.example.test.", "SRV _submissions._tcp.example.test.", "SRV _imaps._tcp.example.test."} {
		if !have[want] {
			t.Errorf("no %s record printed; printed: %v", want, have)
		}
	}
	if dkimRecord == nil {
		t.Fatal("no DKIM record printed")
	}
	return dkimRecord
}

// verifyDKIM verifies msg's signature against record, as published.
func verifyDKIM(t *testing.T, msg []byte, record *dns.TXT) {
	t.Helper()
	verifySigned(t, msg, strings.TrimSuffix(record.Hdr.Name, "."), strings.Join(record.Txt, ""))
}

// snapshot lists the files below dir with their modes and contents.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		data := []byte{}
		if info.Mode().IsRegular() {
			data, _ = os.ReadFile(path)
		}
		fmt.Fprintf(&b, "%s %v %x\n", path, info.Mode(), data)
		return nil
	})
	return b.String()
}

// `postline dkim keygen` makes a second key beside setup's, readable by
// the MSA's user, whose printed record matches it; the same selector
// again is refused, the existing key untouched.
func TestDKIMKeygen(t *testing.T) {
	t.Parallel()
	h := newSetupHost(t, &Stack{MTA: "127.0.0.1:25", Submission: "127.0.0.1:587", Submissions: "127.0.0.1:465"})
	h.setup(t, setupPassword+"\n")
	out, err := runPostline(h.config, "", "dkim", "keygen", "example.test", "--selector", "s2", "--ed25519")
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	path := filepath.Join(h.base, "etc", "dkim", "example.test.s2.pem")
	key, err := dkimkey.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	_, zone, _ := strings.Cut(out, "Publish:\n")
	line, _, _ := strings.Cut(zone, "\n")
	rr, err := dns.NewRR(line)
	if err != nil || rr.Header().Name != "s2._domainkey.example.test." {
		t.Fatalf("printed record %q: %v", line, err)
	}
	if err := dkimkey.Matches(strings.Join(rr.(*dns.TXT).Txt, ""), key); err != nil {
		t.Errorf("the printed record does not match the key: %v", err)
	}
	if !strings.Contains(out, `selector = "s2"`) || !strings.Contains(out, fmt.Sprintf("key_file = %q", path)) {
		t.Errorf("no dkim-sign table for the new key:\n%s", out)
	}
	if h.user != "" {
		owner := &user.User{Username: "root", Uid: "0"}
		group, _ := user.Lookup(h.user)
		checkOwner(t, path, owner, groupAsUser(&user.Group{Name: h.user, Gid: group.Gid}), 0o640)
	}
	before, _ := os.ReadFile(path)
	out, err = runPostline(h.config, "", "dkim", "keygen", "example.test", "--selector", "s2")
	if err == nil || !strings.Contains(out, "exists; give a new --selector") {
		t.Errorf("keygen of an existing selector: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("keygen replaced an existing key")
	}
}

// checkOwners checks the owners and modes of what setup made against
// README's Privileges table, when it ran as root.
func (h *setupHost) checkOwners(t *testing.T) {
	t.Helper()
	if h.user == "" {
		return
	}
	root := &user.User{Username: "root", Uid: "0", Gid: "0"}
	daemons, _ := user.Lookup(h.user)
	mail, _ := user.Lookup(h.mail)
	etc := filepath.Join(h.base, "etc")
	for _, c := range []struct {
		path         string
		owner, group *user.User
		mode         os.FileMode
	}{
		{etc, root, root, 0o755},
		{filepath.Join(etc, "dkim"), root, daemons, 0o750},
		{filepath.Join(etc, "users"), root, daemons, 0o640},
		{filepath.Join(etc, "aliases"), root, daemons, 0o640},
		{filepath.Join(etc, "postline.toml"), root, root, 0o644},
		{filepath.Join(h.base, "state"), root, root, 0o711},
		{filepath.Join(h.base, "mail"), mail, mail, 0o700},
	} {
		checkOwner(t, c.path, c.owner, c.group, c.mode)
	}
	if gids, _ := mail.GroupIds(); !slices.Contains(gids, daemons.Gid) {
		t.Errorf("%s is not in group %s: it could not read the users file", h.mail, h.user)
	}
}

// zoneLines are the record lines setup printed.
func zoneLines(t *testing.T, out string) []string {
	var lines []string
	for _, rr := range zoneRecords(t, out) {
		lines = append(lines, rr.String())
	}
	return lines
}

// dnsCheck points the config at server and runs `postline dns check`.
func (h *setupHost) dnsCheck(t *testing.T, server string, args ...string) (string, error) {
	t.Helper()
	data, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	data = regexp.MustCompile(`(?m)^dns_server = .*$`).ReplaceAll(data, []byte(fmt.Sprintf("dns_server = %q", server)))
	if err := os.WriteFile(h.config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return runPostline(h.config, "", append([]string{"dns", "check"}, args...)...)
}

// `postline dns check` against a zone holding what setup printed says
// ok to every record and exits 0, with the host's addresses given or
// found from its name; against a wrong zone it says what it found and
// what it wants of each wrong record; against an empty one, missing.
func TestDNSCheck(t *testing.T) {
	t.Parallel()
	h := newSetupHost(t, &Stack{MTA: "127.0.0.1:25", Submission: "127.0.0.1:587", Submissions: "127.0.0.1:465"})
	zone := zoneLines(t, h.setup(t, setupPassword+"\n"))
	right := dnstest.Start(t, zone...)
	for _, args := range [][]string{{"--ip", "192.0.2.10"}, nil} {
		out, err := h.dnsCheck(t, right.Addr, args...)
		if err != nil || strings.Count(out, "\nok ")+1 != len(strings.Split(strings.TrimSpace(out), "\n")) {
			t.Errorf("dns check %v against the printed zone: %v\n%s", args, err, out)
		}
	}

	other, _ := dkimkey.Generate(dkimkey.RSA)
	otherRecord, _ := dkimkey.Record(other)
	var wrongZone []string
	for _, line := range zone {
		switch {
		case strings.Contains(line, "\tMX\t"):
			line = "example.test. 3600 IN MX 10 mx.elsewhere.example."
		case strings.Contains(line, "v=spf1"):
			line = `example.test. 3600 IN TXT "v=spf1 -all"`
		case strings.Contains(line, "._domainkey."):
			line = strings.Fields(line)[0] + ` 3600 IN TXT "` + otherRecord + `"`
		case strings.Contains(line, "\tPTR\t"):
			line = strings.Fields(line)[0] + " 3600 IN PTR host.provider.example."
		}
		wrongZone = append(wrongZone, line)
	}
	out, err := h.dnsCheck(t, dnstest.Start(t, wrongZone...).Addr, "--ip", "192.0.2.10")
	for _, want := range []string{
		"wrong    MX example.test.: found 10 mx.elsewhere.example.; want 10 mail.example.test.",
		`wrong    TXT example.test.: found "v=spf1 -all", which gives fail for 192.0.2.10`,
		"p= is another key than the one on disk",
		"wrong    PTR 10.2.0.192.in-addr.arpa.: found host.provider.example.; want mail.example.test.",
		"ok       TXT _dmarc.example.test.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dns check against a wrong zone does not say %q:\n%s", want, out)
		}
	}
	if err == nil {
		t.Error("dns check exits 0 with wrong records")
	}

	out, err = h.dnsCheck(t, dnstest.Start(t, "mail.example.test. 3600 IN A 192.0.2.10").Addr)
	for _, want := range []string{"missing  MX example.test.: want 10 mail.example.test.", "missing  TXT _dmarc.example.test.",
		"missing  SRV _imaps._tcp.example.test. (optional)", "missing  PTR 10.2.0.192.in-addr.arpa."} {
		if !strings.Contains(out, want) {
			t.Errorf("dns check against an empty zone does not say %q:\n%s", want, out)
		}
	}
	if err == nil {
		t.Error("dns check exits 0 with missing records")
	}
}

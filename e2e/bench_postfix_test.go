package e2e

// A yardstick for BenchmarkInboundToMaildir: the same load against
// Debian's Postfix set up as a small mail host's final destination.
// smtpd takes plain SMTP on a free 127.x.y.z address, cleanup fsyncs
// the queue file before the 250, and virtual(8) writes each message into
// demo@example.test's Maildir (it fsyncs the file before it links it
// into new/). Everything else keeps Postfix's built-in defaults. Like
// TestPostfixInterop it runs a private instance (its own config, queue
// and data folders in a temporary folder), needs root and skips without
// Postfix, unless POSTLINE_REQUIRE_INTEROP=1.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// BenchmarkPostfixInboundToMaildir is BenchmarkInboundToMaildir against
// Postfix: each client sends its share of b.N messages over one plain
// SMTP connection, timed until all are in the Maildir's new/. Every run
// starts a fresh instance, so its queue and Maildir start empty.
func BenchmarkPostfixInboundToMaildir(b *testing.B) {
	if _, err := os.Stat("/usr/sbin/postfix"); err != nil {
		interopMissing(b, "postfix not installed; `apt-get install postfix` to run this benchmark")
	}
	if os.Geteuid() != 0 {
		interopMissing(b, "a private Postfix instance needs root (its master process starts as root)")
	}
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			pf := startPostfixMX(b)
			benchInbound(b, pf.Addr, clients, func() { waitFiles(b, pf.newDir(demoUser), b.N, 5*time.Minute) })
			pf.checkNew(b, demoUser, b.N, "Subject: bench\n")
		})
	}
}

// sendInboundTo sends n messages from
// sender@remote.test to demo@example.test over one connection to addr.
func sendInboundTo(tb testing.TB, addr string, n int, body string) {
	c, err := smtp.Dial(addr)
	if err != nil {
		tb.Error(err)
		return
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		if err := c.SendMail("sender@remote.test", []string{demoUser}, strings.NewReader(body)); err != nil {
			tb.Error(err)
			return
		}
	}
	c.Quit()
}

// postfixMXMain makes Postfix the final destination of example.test:
// virtual(8) delivers the mailboxes listed in vmailbox into Maildirs
// under mail/ as {{uid}}. Only what the instance needs is set (private
// folders, its own log, no local delivery, IPv4 loopback); durability,
// concurrency and process limits are Postfix's defaults.
// inet_interfaces is 127.0.0.1 because Postfix wants an address an
// interface has; smtpd binds its own address, given in master.cf.
const postfixMXMain = `compatibility_level = 3.6
config_directory = {{dir}}
queue_directory = {{dir}}/queue
data_directory = {{dir}}/data
myhostname = mx.example.test
mydomain = example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
alias_maps =
alias_database =
virtual_mailbox_domains = example.test
virtual_mailbox_base = {{dir}}/mail
virtual_mailbox_maps = texthash:{{dir}}/vmailbox
virtual_uid_maps = static:{{uid}}
virtual_gid_maps = static:{{gid}}
maillog_file = {{dir}}/maillog
maillog_file_prefixes = {{dir}}
`

// startPostfixMX starts a private Postfix that accepts mail for
// demo@example.test on a free loopback address, and stops it when the
// benchmark run ends. Its folder sits in the temporary folder, on the
// same filesystem as a postline stack's.
func startPostfixMX(tb testing.TB) *postfixInstance {
	tb.Helper()
	pf := &postfixInstance{Addr: freeAddr(tb)}
	pf.IP = hostOf(pf.Addr)
	runPostfix(tb, pf, "pl-postfix-bench-", "mail", map[string]string{
		"main.cf":  postfixMXMain,
		"vmailbox": "demo@example.test example.test/demo/\n", // trailing slash: a Maildir
	})
	return pf
}

// newDir is the new/ folder of addr's Maildir under virtual_mailbox_base.
func (pf *postfixInstance) newDir(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return filepath.Join(pf.Dir, "mail", domain, local, "new")
}

// checkNew fails unless addr's new/ holds exactly n messages, each with
// want (Postfix stores them with bare LF line ends).
func (pf *postfixInstance) checkNew(tb testing.TB, addr string, n int, want string) {
	tb.Helper()
	entries, err := os.ReadDir(pf.newDir(addr))
	if err != nil {
		tb.Fatal(err)
	}
	if len(entries) != n {
		tb.Errorf("Postfix's mailbox of %s has %d messages, want exactly %d", addr, len(entries), n)
	}
	for _, e := range entries {
		msg, err := os.ReadFile(filepath.Join(pf.newDir(addr), e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Contains(msg, []byte(want)) {
			tb.Fatalf("delivered message %s lacks %q:\n%.500s", e.Name(), want, msg)
		}
	}
}

// shutdown stops the instance with `postfix stop` and waits for every
// one of its processes (those started with MAIL_CONFIG=pf.Dir) to exit,
// then kills by PID whichever remain.
func (pf *postfixInstance) shutdown(tb testing.TB) {
	pids := pf.processes()
	if out, err := exec.Command("/usr/sbin/postfix", "-c", pf.Dir, "stop").CombinedOutput(); err != nil && len(pids) > 0 {
		tb.Logf("postfix stop: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, pid := range pf.processes() {
		tb.Logf("postfix process %d still running after `postfix stop`; killing it", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processes returns the PIDs of this instance's master and daemons:
// postfix(1) puts MAIL_CONFIG=pf.Dir in the environment of the master,
// and the master passes it on to every daemon it starts.
func (pf *postfixInstance) processes() []int {
	mark := []byte("\x00MAIL_CONFIG=" + pf.Dir + "\x00")
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	var pids []int
	for _, p := range procs {
		env, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(append([]byte{0}, env...), mark) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

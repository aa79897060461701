package e2e

// Interoperability: real third-party Debian programs submit through the
// stack, and Dovecot reads the Maildirs and the users file postline wrote.
// Each test skips when its program is missing, unless
// POSTLINE_REQUIRE_INTEROP=1 (meant for CI) turns the skip into a failure.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// debianPackage names what to apt-get install for each program.
var debianPackage = map[string]string{
	"swaks":           "swaks libnet-ssleay-perl",
	"curl":            "curl",
	"python3":         "python3",
	"dovecot":         "dovecot-imapd",
	"systemd-analyze": "systemd",
	"pebble":          "pebble",
	"rspamd":          "rspamd",
	"opendkim":        "opendkim",
}

// requireProgram returns the path of program name, or skips the test.
func requireProgram(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		// Daemons live in sbin, often missing from a non-root PATH.
		path, err = exec.LookPath(filepath.Join("/usr/sbin", name))
	}
	if err != nil {
		interopMissing(t, "%s not installed; `apt-get install %s` to run this test", name, debianPackage[name])
	}
	return path
}

// interopMissing skips the test, or fails it where the environment
// promises every interop program (so a broken CI image cannot pass).
func interopMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("POSTLINE_REQUIRE_INTEROP") == "1" {
		t.Fatalf("POSTLINE_REQUIRE_INTEROP=1: "+format, args...)
	}
	t.Skipf(format, args...)
}

// requireCurlSMTP returns curl's path if this build speaks SMTP.
func requireCurlSMTP(t *testing.T) string {
	t.Helper()
	curl := requireProgram(t, "curl")
	out, err := exec.Command(curl, "--version").Output()
	if err != nil {
		t.Fatalf("curl --version: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if after, ok := strings.CutPrefix(line, "Protocols:"); ok {
			for _, p := range strings.Fields(after) {
				if p == "smtp" {
					return curl
				}
			}
		}
	}
	interopMissing(t, "curl built without smtp; `apt-get install curl` to run this test")
	return ""
}

// requireSwaksTLS returns swaks's path if it can speak TLS, which needs
// Net::SSLeay, only a Recommends of Debian's swaks package.
func requireSwaksTLS(t *testing.T) string {
	t.Helper()
	swaks := requireProgram(t, "swaks")
	out, _ := exec.Command(swaks, "--support").CombinedOutput()
	if !strings.Contains(string(out), "=== TLS supported") {
		interopMissing(t, "swaks cannot do TLS; `apt-get install libnet-ssleay-perl` to run this test")
	}
	return swaks
}

// interopMessage is a message the MSA must pass untouched (it has its own
// Message-ID and Date), with what a client may mangle: lines starting
// with dots, a line holding only a dot, and 8-bit UTF-8.
func interopMessage(client string) string {
	return "From: demo@example.test\r\nTo: demo@example.test\r\n" +
		"Subject: interop via " + client + "\r\n" +
		"Message-ID: <interop-" + client + "@example.test>\r\n" +
		"Date: Sun, 22 Nov 2026 06:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n" +
		".leading dot\r\n..two dots\r\n.\r\n" +
		"Grüße aus Köln — ünïcödé ✓\r\n" +
		"last line\r\n"
}

// writeMessage stores msg in a temporary file for a client to upload.
func writeMessage(t *testing.T, msg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "message.eml")
	if err := os.WriteFile(path, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runClient runs a client program, feeding stdin, and returns its
// combined output; a non-zero exit fails the test.
func runClient(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// assertDelivered waits for the one message in demo's Maildir and checks
// it is msg byte for byte, apart from the Maildir's LF line ends.
func assertDelivered(t *testing.T, s *Stack, msg string) {
	t.Helper()
	got := s.WaitForMail(demoUser, 1, 10*time.Second)[0]
	if want := withReturnPath(demoUser, msg); !bytes.Equal(got, want) {
		t.Errorf("delivered message differs from the submitted one\n got: %q\nwant: %q", got, want)
	}
}

func TestSwaks(t *testing.T) {
	t.Parallel()
	swaks := requireSwaksTLS(t)
	cases := []struct {
		name, auth, tls string
		addr            func(*Stack) string
	}{
		{"starttls-plain", "PLAIN", "--tls", func(s *Stack) string { return s.Submission }},
		{"implicit-tls-login", "LOGIN", "--tlsc", func(s *Stack) string { return s.Submissions }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := StartStack(t)
			msg := interopMessage("swaks-" + c.name)
			// swaks always sends CRLF "." after the data, so a message
			// ending in CRLF would gain a blank last line; a final "."
			// line is what swaks strips first.
			out := runClient(t, "", swaks, "--server", c.addr(s), c.tls,
				"--auth", c.auth, "--auth-user", demoUser, "--auth-password", demoPassword,
				"--from", demoUser, "--to", demoUser, "--data", writeMessage(t, msg+".\r\n"))
			if !strings.Contains(out, "250 2.0.0 Ok: queued as") {
				t.Errorf("swaks output lacks the queued reply:\n%s", out)
			}
			assertDelivered(t, s, msg)
		})
	}
}

func TestCurl(t *testing.T) {
	t.Parallel()
	curl := requireCurlSMTP(t)
	cases := []struct {
		name string
		url  func(*Stack) string
	}{
		{"starttls", func(s *Stack) string { return "smtp://" + s.Submission }},
		{"implicit-tls", func(s *Stack) string { return "smtps://" + s.Submissions }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := StartStack(t)
			msg := interopMessage("curl-" + c.name)
			// -k: the stack's certificate is self-signed.
			runClient(t, "", curl, "-sS", "-k", "--ssl-reqd", "--max-time", "30",
				"--url", c.url(s), "--user", demoUser+":"+demoPassword,
				"--mail-from", demoUser, "--mail-rcpt", demoUser,
				"--upload-file", writeMessage(t, msg))
			assertDelivered(t, s, msg)
		})
	}
}

// smtplibScript sends the message on stdin with Python's smtplib; argv
// is host, port, "starttls" or "ssl", user, password. A refused login
// prints the SMTP code instead of failing, so the test can check it.
const smtplibScript = `
import smtplib, ssl, sys
host, port, mode, user, password = sys.argv[1:6]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if mode == "ssl":
    c = smtplib.SMTP_SSL(host, int(port), local_hostname="localhost", context=ctx, timeout=30)
else:
    c = smtplib.SMTP(host, int(port), local_hostname="localhost", timeout=30)
    c.starttls(context=ctx)
try:
    c.login(user, password)
except smtplib.SMTPAuthenticationError as e:
    print("auth-error", e.smtp_code)
    sys.exit(0)
refused = c.sendmail(user, [user], sys.stdin.buffer.read())
c.quit()
print("sent", refused)
`

func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	python := requireProgram(t, "python3")
	cases := []struct {
		mode string
		addr func(*Stack) string
	}{
		{"starttls", func(s *Stack) string { return s.Submission }},
		{"ssl", func(s *Stack) string { return s.Submissions }},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			t.Parallel()
			s := StartStack(t)
			host, port, _ := net.SplitHostPort(c.addr(s))
			msg := interopMessage("python-" + c.mode)
			out := runClient(t, msg, python, "-c", smtplibScript, host, port, c.mode, demoUser, demoPassword)
			if strings.TrimSpace(out) != "sent {}" {
				t.Errorf("smtplib printed %q, want \"sent {}\"", out)
			}
			assertDelivered(t, s, msg)
		})
	}
	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		s := StartStack(t)
		host, port, _ := net.SplitHostPort(s.Submission)
		out := runClient(t, "", python, "-c", smtplibScript, host, port, "starttls", demoUser, "wrong-password")
		if strings.TrimSpace(out) != "auth-error 535" {
			t.Errorf("smtplib printed %q, want \"auth-error 535\"", out)
		}
	})
}

func TestDovecotReadsMaildir(t *testing.T) {
	t.Parallel()
	dovecot := requireProgram(t, "dovecot")
	if os.Geteuid() != 0 {
		interopMissing(t, "dovecot must start as root to switch to the mail user; run the tests as root")
	}
	s := StartStack(t)
	msg := interopMessage("dovecot")
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: msg}); err != nil {
		t.Fatal(err)
	}
	assertDelivered(t, s, msg)

	// Dovecot checks demo's password against the users file postline
	// wrote: one password for SMTP and IMAP.
	addr := startDovecot(t, s, dovecot)
	c := dialIMAP(t, addr)
	c.must(fmt.Sprintf("LOGIN %q %q", demoUser, demoPassword))
	c.must("SELECT INBOX")
	got := c.must("UID FETCH 1:* (BODY.PEEK[])")
	if len(got) != 1 {
		t.Fatalf("IMAP INBOX holds %d messages, want 1", len(got))
	}
	// IMAP serves CRLF line ends (RFC 3501 §4.3), Return-Path included,
	// and postline's Received field (compared in TestReceivedField).
	served := bytes.ReplaceAll(dropOwnReceived(bytes.ReplaceAll(got[0], []byte("\r\n"), []byte("\n"))), []byte("\n"), []byte("\r\n"))
	if want := "Return-Path: <" + demoUser + ">\r\n" + msg; !bytes.Equal(served, []byte(want)) {
		t.Errorf("IMAP served a different message\n got: %q\nwant: %q", got[0], want)
	}
	// Proof that dovecot really checks the hash rather than letting anyone in.
	if status, _ := dialIMAP(t, addr).do(fmt.Sprintf("LOGIN %q %q", demoUser, "wrong-password")); !strings.HasPrefix(status, "NO") {
		t.Errorf("IMAP login with a wrong password: %s, want NO", status)
	}
}

// dovecotConf serves IMAP without TLS on one loopback port. Passwords are
// plain text on the wire, which is acceptable on loopback in a test.
const dovecotConf = `protocols = imap
listen = {{host}}
base_dir = {{dir}}/run
state_dir = {{dir}}/state
log_path = /dev/stderr
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# The wrong-password check need not wait out the anti-guessing delay.
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:{{mailroot}}/%d/%n
passdb {
  driver = passwd-file
  args = scheme=BLF-CRYPT username_format=%u {{users}}
}
userdb {
  driver = static
  args = uid={{uid}} gid={{gid}} home={{mailroot}}/%d/%n
}
service imap-login {
  inet_listener imap {
    port = {{port}}
  }
  inet_listener imaps {
    port = 0
  }
}
# The users file sits in the stack's private folder, readable by root only.
service auth {
  user = root
}
`

// startDovecot runs dovecot in the foreground on s's Maildirs and users
// file until the test ends, and returns its IMAP address.
func startDovecot(t *testing.T, s *Stack, dovecot string) string {
	t.Helper()
	uid, gid := shareMailRoot(t, s)
	// Not t.TempDir: dovecot's login process, as dovenull, chroots into
	// base_dir, so every folder on the way must be searchable; and a
	// short path keeps its unix sockets under the 108-byte limit.
	dir, err := os.MkdirTemp("", "pl-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	conf := strings.NewReplacer("{{host}}", host, "{{dir}}", dir, "{{mailroot}}", s.MailRoot,
		"{{users}}", filepath.Join(s.Dir, "users"), "{{uid}}", uid, "{{gid}}", gid,
		"{{port}}", port).Replace(dovecotConf)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cmd := exec.Command(dovecot, "-F", "-c", confPath)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stopProcess(cmd, exited)
		if t.Failed() {
			t.Logf("dovecot log:\n%s", log.String())
		}
	})
	waitForListener(t, addr, exited, log)
	return addr
}

// shareMailRoot hands the Maildirs to nobody, as dovecot refuses to serve
// mail as root, and lets nobody reach them through the stack's folder.
func shareMailRoot(t *testing.T, s *Stack) (uid, gid string) {
	t.Helper()
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no unprivileged user for dovecot's mail processes: %v", err)
	}
	u, _ := strconv.Atoi(nobody.Uid)
	g, _ := strconv.Atoi(nobody.Gid)
	err = filepath.Walk(s.MailRoot, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, u, g)
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir := filepath.Dir(s.MailRoot); strings.HasPrefix(dir, s.Dir); dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, st.Mode().Perm()|0o001); err != nil {
			t.Fatal(err)
		}
	}
	return nobody.Uid, nobody.Gid
}

// stopProcess ends a daemon gently, then for sure.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// waitForListener waits until addr accepts connections, failing early
// if the daemon exits instead.
func waitForListener(t *testing.T, addr string, exited <-chan struct{}, log *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("daemon exited before listening on %s; log:\n%s", addr, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s; log:\n%s", addr, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// imapConn is a minimal IMAP client: enough to log in and fetch.
type imapConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	tags int
}

func dialIMAP(t *testing.T, addr string) *imapConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &imapConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	if greeting, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("IMAP greeting %q, %v", greeting, err)
	}
	return c
}

var imapLiteral = regexp.MustCompile(`\{(\d+)\}\r\n$`)

// do sends one command and reads the responses up to its tagged reply.
// It returns that reply without the tag ("OK ...", "NO ...") and the
// literals received, which is where FETCH puts message bodies.
func (c *imapConn) do(command string) (status string, literals [][]byte) {
	c.t.Helper()
	c.tags++
	tag := fmt.Sprintf("a%d", c.tags)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, command); err != nil {
		c.t.Fatal(err)
	}
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("IMAP %s: %v", tag, err)
		}
		if m := imapLiteral.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			lit := make([]byte, n)
			if _, err := io.ReadFull(c.r, lit); err != nil {
				c.t.Fatalf("IMAP %s: literal: %v", tag, err)
			}
			literals = append(literals, lit)
			continue // the response goes on after the literal
		}
		if status, ok := strings.CutPrefix(line, tag+" "); ok {
			return strings.TrimRight(status, "\r\n"), literals
		}
	}
}

// must is do for commands that have to succeed.
func (c *imapConn) must(command string) [][]byte {
	c.t.Helper()
	status, literals := c.do(command)
	if !strings.HasPrefix(status, "OK") {
		c.t.Fatalf("IMAP %q: %s", strings.Fields(command)[0], status)
	}
	return literals
}

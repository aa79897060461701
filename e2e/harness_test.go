// Package e2e tests postline as a user runs it: the real binaries started
// by `postline start` with a config in a temporary folder, driven by real
// SMTP clients, checked by reading the Maildir.
package e2e

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"postline/queue"
)

// binDir holds the binaries built once for all tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postline-bin-")
	if err != nil {
		panic(err)
	}
	// 0755, not MkdirTemp's 0700: the MDA starts its plugins after
	// dropping root, as the mda user of TestPrivilegeSeparation.
	if err := os.Chmod(dir, 0o755); err != nil {
		panic(err)
	}
	// The daemons, and beside them the bundled plugins as `make build` names them.
	for _, args := range [][]string{
		{"-o", dir + "/", "./cmd/..."},
		{"-o", dir + "/postline-plugin-return-path", "./cmd/postline-plugin-return-path"},
		{"-o", dir + "/postline-plugin-received", "./cmd/postline-plugin-received"},
		{"-o", dir + "/postline-plugin-example", "./plugins/example"},
		{"-o", dir + "/postline-plugin-antispam", "./plugins/antispam"},
		{"-o", dir + "/postline-plugin-dkim-sign", "./plugins/dkimsign"},
		{"-o", dir + "/postline-plugin-milter", "./plugins/milter"},
		{"-o", dir + "/postline-plugin-sieve", "./plugins/sieve"},
		{"-o", dir + "/postline-plugin-webhook", "./plugins/webhook"},
	} {
		build := exec.Command("go", append([]string{"build"}, args...)...)
		build.Dir = ".."
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build failed:", err)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	demoUser     = "demo@example.test"
	demoPassword = "demo-password"
)

// Stack is one running postline: its folder, addresses and log.
type Stack struct {
	t           testing.TB
	Dir         string // holds postline.toml, users, var/
	Config      string
	Submission  string
	Submissions string
	MTA         string
	MailRoot    string

	cmd *exec.Cmd
	log *stackLog // see log_test.go
}

// StackConfig adds lines to the test config, table by table; each field
// holds TOML lines (e.g. Limits: "max_recipients = 3\n").
type StackConfig struct {
	TopLevel, MSA, MTA, MDA, Limits string
	Plugins                         string // [[plugins]] tables, at the end
	Domains                         string // default ["example.test", "other.example"]
	// Prepare runs on the stack's folder before postline starts (e.g. to
	// mount a small filesystem on var/queue).
	Prepare func(dir string)
}

// StartStack writes a config with free loopback ports, adds the demo
// user with `postline user add` and runs `postline start` until the test
// ends.
func StartStack(t testing.TB) *Stack {
	t.Helper()
	return StartStackWith(t, StackConfig{})
}

// StartStackWith is StartStack with extra config lines.
func StartStackWith(t testing.TB, extra StackConfig) *Stack {
	t.Helper()
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "pl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Stack{t: t, Dir: dir, Config: filepath.Join(dir, "postline.toml"),
		Submission: freeAddr(t), Submissions: freeAddr(t), MTA: freeAddr(t),
		MailRoot: filepath.Join(dir, "var", "mail"), log: newStackLog(t)}
	s.writeConfig(extra)
	s.Postline(demoPassword+"\n", "user", "add", demoUser)
	if extra.Prepare != nil {
		extra.Prepare(dir)
	}
	s.start()
	return s
}

func (s *Stack) writeConfig(extra StackConfig) {
	domains := extra.Domains
	if domains == "" {
		domains = `["example.test", "other.example"]`
	}
	cfg := fmt.Sprintf(`hostname = "mail.example.test"
state_dir = "var"
domains = %s
%s
[msa]
submission = [%q]
submissions = [%q]
%s
[mta]
listen = [%q]
local_retry_max = "2s"
%s
[mda]
mail_root = "var/mail"
%s
[limits]
%s
%s`, domains, extra.TopLevel, s.Submission, s.Submissions, extra.MSA, s.MTA, extra.MTA, extra.MDA, extra.Limits, extra.Plugins)
	if err := os.WriteFile(s.Config, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Stack) start() {
	t := s.t
	// A restarted stack's log holds the earlier start too.
	before := strings.Count(s.Log(), `"postline started"`)
	s.cmd = exec.Command(filepath.Join(binDir, "postline"), "-c", s.Config, "start")
	s.cmd.Stdout, s.cmd.Stderr = s.log.w, s.log.w
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	started := func(log string) bool { return strings.Count(log, `"postline started"`) > before }
	if !pollLog(s, 30*time.Second, started) {
		t.Fatalf("stack did not start; log:\n%s", s.Log())
	}
}

func (s *Stack) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	if s.t.Failed() {
		s.t.Logf("postline log:\n%s", s.log.String())
	}
}

// Postline runs the postline command with this stack's config, feeding
// stdin, and fails the test if it does not exit 0.
func (s *Stack) Postline(stdin string, args ...string) string {
	s.t.Helper()
	out, err := runPostline(s.Config, stdin, args...)
	if err != nil {
		s.t.Fatalf("postline %v: %v\n%s", args, err, out)
	}
	return out
}

func runPostline(config, stdin string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(binDir, "postline"), append([]string{"-c", config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ChildPID returns the PID of the running child daemon name ("mta"...).
func (s *Stack) ChildPID(name string) int {
	re := regexp.MustCompile(`"child":"` + name + `","pid":(\d+)`)
	m := re.FindAllStringSubmatch(s.Log(), -1)
	if m == nil {
		s.t.Fatalf("no pid for %s in log", name)
	}
	pid, _ := strconv.Atoi(m[len(m)-1][1])
	return pid
}

// Mailbox returns the Maildir folder of address.
func (s *Stack) Mailbox(address string) string {
	local, domain, _ := strings.Cut(address, "@")
	return filepath.Join(s.MailRoot, domain, local)
}

// WaitForMail waits until address's new/ holds n messages and returns
// them without the Received fields postline itself wrote (see
// dropOwnReceived), so tests can compare the rest byte for byte; the
// Return-Path field stays. WaitForRawMail keeps everything.
func (s *Stack) WaitForMail(address string, n int, timeout time.Duration) [][]byte {
	s.t.Helper()
	msgs := s.WaitForRawMail(address, n, timeout)
	for i, m := range msgs {
		msgs[i] = dropOwnReceived(m)
	}
	return msgs
}

// ownReceived matches one Received field that postline wrote (the bundled
// received plugin, at the MSA or the MTA): "by mail.example.test with".
var ownReceived = regexp.MustCompile(`^Received: from [^\n]*\n(?:[ \t][^\n]*\n)*?[ \t]by mail\.example\.test with [^\n]*\n(?:[ \t][^\n]*\n)*`)

// dropOwnReceived removes the Received fields postline wrote from the top
// of a delivered message: those right below the leading Return-Path field
// (or at the very top without one). Other Received fields stay.
func dropOwnReceived(msg []byte) []byte {
	var head []byte
	rest := msg
	if bytes.HasPrefix(rest, []byte("Return-Path: ")) {
		i := bytes.IndexByte(rest, '\n') + 1
		head, rest = rest[:i:i], rest[i:]
	}
	for {
		loc := ownReceived.FindIndex(rest)
		if loc == nil {
			break
		}
		rest = rest[loc[1]:]
	}
	return append(head, rest...)
}

// WaitForRawMail waits until address's new/ holds n messages and returns
// them as delivered.
func (s *Stack) WaitForRawMail(address string, n int, timeout time.Duration) [][]byte {
	s.t.Helper()
	return readMaildir(s.t, filepath.Join(s.Mailbox(address), "new"), n, timeout)
}

// readMaildir waits until the Maildir folder dir holds n files and
// returns their contents, in name order.
func readMaildir(tb testing.TB, dir string, n int, timeout time.Duration) [][]byte {
	tb.Helper()
	waitFiles(tb, dir, n, timeout)
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var msgs [][]byte
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	return msgs
}

// Submission describes one message submitted through the MSA.
type Submission struct {
	ImplicitTLS bool
	Helo        string // EHLO name, default "localhost"
	User, Pass  string
	From        string
	To          []string
	Body        string
}

// Submit sends sub with go-smtp's client and returns the final reply
// text, or the first error.
func (s *Stack) Submit(sub Submission) (string, error) {
	if sub.User == "" {
		sub.User = demoUser
	}
	if sub.Pass == "" {
		sub.Pass = demoPassword
	}
	if sub.From == "" {
		sub.From = sub.User
	}
	tlsConfig := &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test"}
	var c *smtp.Client
	var err error
	if sub.ImplicitTLS {
		c, err = smtp.DialTLS(s.Submissions, tlsConfig)
	} else if sub.Helo != "" {
		c, err = dialStartTLSAs(s.Submission, sub.Helo, tlsConfig)
	} else {
		c, err = smtp.DialStartTLS(s.Submission, tlsConfig)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", sub.User, sub.Pass)); err != nil {
		return "", err
	}
	text, err := sendMail(c, sub.From, sub.To, sub.Body)
	if err == nil {
		c.Quit()
	}
	return text, err
}

// sendMail runs one transaction on c and returns the reply text to the
// end of DATA, or the first error.
func sendMail(c *smtp.Client, from string, to []string, body string) (string, error) {
	w, err := startData(c, from, to)
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// startData starts a transaction on c, up to DATA, for a test that
// writes the message itself.
func startData(c *smtp.Client, from string, to []string) (*smtp.DataCommand, error) {
	if err := c.Mail(from, nil); err != nil {
		return nil, err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return nil, err
		}
	}
	return c.Data()
}

// dialStartTLSAs is smtp.DialStartTLS with helo as the EHLO name (go-smtp's
// client says "localhost" before STARTTLS): STARTTLS by hand, then a client
// on the TLS connection, fed a greeting since none follows STARTTLS.
func dialStartTLSAs(addr, helo string, tlsConfig *tls.Config) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(conn)
	step := func(cmd string, code int) error {
		if cmd != "" {
			if err := tp.PrintfLine("%s", cmd); err != nil {
				return err
			}
		}
		_, _, err := tp.ReadResponse(code)
		return err
	}
	if err := step("", 220); err != nil {
		conn.Close()
		return nil, err
	}
	if err := step("EHLO "+helo, 250); err != nil {
		conn.Close()
		return nil, err
	}
	if err := step("STARTTLS", 220); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	tc := tls.Client(conn, tlsConfig)
	c := smtp.NewClient(&greetedConn{Conn: tc, r: io.MultiReader(strings.NewReader("220 after STARTTLS\r\n"), tc)})
	if err := c.Hello(helo); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// greetedConn reads r, a greeting and then the connection.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }

// freeAddr returns an address no other test uses: a random 127.x.y.z
// and a port below the ephemeral range, so that neither a parallel test
// nor the source port of some client connection can take it before the
// daemon binds it.
func freeAddr(t testing.TB) string {
	l := listenFree(t)
	l.Close()
	return l.Addr().String()
}

// listenFree listens on an address chosen as freeAddr does.
func listenFree(t testing.TB) net.Listener {
	for range 100 {
		ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
		addr := net.JoinHostPort(ip, strconv.Itoa(10000+rand.IntN(20000)))
		if l, err := net.Listen("tcp", addr); err == nil {
			return l
		}
	}
	t.Fatal("no free loopback address")
	return nil
}

// syncBuffer is a bytes.Buffer safe for a child process's writes (the
// log of a third-party daemon; postline's own log is a stackLog).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// queuedEnvelopes reads the envelopes in the MTA's queue as its log
// holds them, leaving the queue as it is.
func queuedEnvelopes(t testing.TB, s *Stack) map[string]*queue.Envelope {
	t.Helper()
	envs, err := queue.Inspect(filepath.Join(s.Dir, "var", "queue"))
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

package e2e

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
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

// queueCLIConfig makes every relay attempt fail at once with a temporary
// DNS error: nothing answers on the discard port, so mail to another
// domain stays deferred (for mta.retry_min, 5 minutes) until flushed.
var queueCLIConfig = StackConfig{MTA: "dns_server = \"127.0.0.1:9\"\n"}

// The queue commands, as an administrator uses them on mail that cannot
// leave: list, show, flush, delete, bounce, and the mistakes.
func TestQueueCommands(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, queueCLIConfig)
	held := queueCLISubmit(t, s, "friend@remote.test", "held for the queue test")
	s.WaitLog(`"message":"delivery deferred"`, 1, 30*time.Second)

	// `postline queue`: the message, then its recipient, state and error.
	out := queueCLIWait(t, s, held+".*\n.*attempts 1 ")
	for _, want := range []string{
		`(?m)^` + held + `  \d+s  \d+ B  from demo@example\.test$`,
		`(?m)^    pending    friend@remote\.test  attempts 1  next in [45]m\d+s  last error: 451 4\.4\.3 DNS lookup of MX remote\.test at 127\.0\.0\.1:9 failed`,
		`(?m)^-- 1 message, 1 recipient pending$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("postline queue lacks %s:\n%s", want, out)
		}
	}

	// `queue show ID`: the envelope, then the header block but no body.
	out = s.Postline("", "queue", "show", held)
	for _, want := range []string{"id          " + held, "from        demo@example.test", "auth user   demo@example.test",
		"relay       yes", "    pending    friend@remote.test  attempts 1", "\nSubject: held for the queue test\n", "\nMessage-ID: <"} {
		if !strings.Contains(out, want) {
			t.Errorf("queue show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "body stays in the spool") {
		t.Errorf("queue show printed the body:\n%s", out)
	}

	// `queue flush`: deferred for minutes, retried at once.
	if out := s.Postline("", "queue", "flush"); out != "flushed 1 recipient\n" {
		t.Errorf("queue flush: %q", out)
	}
	s.WaitLog(`"message":"delivery deferred"`, 2, 30*time.Second)
	queueCLIWait(t, s, `friend@remote\.test  attempts 2  next in \d+m`)

	// `queue delete ID`: gone from the queue and the spool, no bounce.
	other := queueCLISubmit(t, s, "other@remote.test", "deleted by the administrator")
	queueCLIWait(t, s, other+".*\n.*other@remote\\.test  attempts 1 ")
	if out := s.Postline("", "queue", "delete", other); out != "deleted "+other+"\n" {
		t.Errorf("queue delete: %q", out)
	}
	if env := queuedEnvelopes(t, s)[other]; env != nil {
		t.Errorf("queue log still holds %s after delete", other)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "var", "queue", "msg", other)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("queue/msg/%s after delete: %v", other, err)
	}
	if out := s.Postline("", "queue"); strings.Contains(out, other) {
		t.Errorf("deleted message still listed:\n%s", out)
	}

	// `queue bounce ID`: the sender gets a report and the message is gone.
	if out := s.Postline("", "queue", "bounce", held); out != "returned "+held+" to demo@example.test\n" {
		t.Errorf("queue bounce: %q", out)
	}
	queueCLICheckBounce(t, s.WaitForMail(demoUser, 1, 30*time.Second)[0], held)
	if env := queuedEnvelopes(t, s)[held]; env != nil {
		t.Errorf("bounced message still in the spool")
	}
	queueCLIWait(t, s, "^the queue is empty\n$") // the bounce itself has gone too

	// Mistakes: exit 1 with what went wrong, 2 for a wrong command line.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"queue", "delete", "0000000000000000"}, 1, "postline: queue delete 0000000000000000: no such message in the queue: 0000000000000000\n"},
		{[]string{"queue", "bounce", held}, 1, "no such message in the queue: " + held},
		{[]string{"queue", "show", "nope"}, 1, `"nope" is not a queue ID`},
		{[]string{"queue", "show"}, 2, "usage: postline"},
		{[]string{"queue", "frob"}, 2, "queue flush"},
	} {
		out, code := queueCLIRun(t, s.Config, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("postline %v: exit %d, %q; want exit %d and %q", c.args, code, out, c.code, c.want)
		}
	}

	// A stopped MTA: name the socket and say what to do.
	s.stop()
	out, code := queueCLIRun(t, s.Config, "queue")
	sock := filepath.Join(s.Dir, "var", "run", "mta-admin.sock")
	if code != 1 || !strings.Contains(out, sock) || !strings.Contains(out, "postline -c "+s.Config+" start") {
		t.Errorf("queue with the stack stopped: exit %d, %q; want exit 1 naming %s and `postline start`", code, out, sock)
	}
}

// queueCLICheckBounce parses the bounce of message id: a multipart/report
// whose delivery-status part returns friend@remote.test with 5.0.0, and
// which carries the original header but not the body.
func queueCLICheckBounce(t *testing.T, raw []byte, id string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	media, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || media != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("bounce Content-Type %q (%v), want multipart/report; report-type=delivery-status", msg.Header.Get("Content-Type"), err)
	}
	if ret := msg.Header.Get("Return-Path"); ret != "" && ret != "<>" {
		t.Errorf("bounce Return-Path %q, want <>", ret)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		ctype, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ctype] = strings.ReplaceAll(string(body), "\r\n", "\n")
	}
	status := parts["message/delivery-status"]
	for _, want := range []string{"X-Postline-Queue-ID: " + id, "Final-Recipient: rfc822; friend@remote.test",
		"Action: failed", "Status: 5.0.0", "returned by the administrator"} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery-status part lacks %q:\n%s", want, status)
		}
	}
	if h := parts["text/rfc822-headers"]; !strings.Contains(h, "Subject: held for the queue test") || strings.Contains(h, "body stays") {
		t.Errorf("returned header part:\n%s", h)
	}
	if text := parts["text/plain"]; !strings.Contains(text, "<friend@remote.test>: 5.0.0 returned by the administrator") {
		t.Errorf("text part:\n%s", text)
	}
}

// Started as root with users, the admin socket is the mta user's, mode
// 0600: root and that user may run `postline queue`, the MSA's may not.
func TestQueueAdminSocketPrivileges(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		interopMissing(t, "the admin socket's owner needs root to create users; run `sudo go test -run QueueAdmin ./e2e`")
	}
	group := createGroup(t)
	msaU, mtaU, mdaU := createUser(t, group), createUser(t, group), createUser(t, group)
	s := newPrivilegedStack(t, group, msaU, mtaU, mdaU)
	checkOwner(t, filepath.Join(s.Dir, "var", "run", "mta-admin.sock"), mtaU, mtaU, 0o600)
	if err := os.Chmod(s.Config, 0o644); err != nil { // so the other users can read it
		t.Fatal(err)
	}
	// binDir is 0700: run a copy the other users may execute.
	bin, err := os.ReadFile(filepath.Join(binDir, "postline"))
	if err == nil {
		err = os.WriteFile(filepath.Join(s.Dir, "postline"), bin, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	if out := s.Postline("", "queue"); out != "the queue is empty\n" {
		t.Errorf("queue as root: %q", out)
	}
	for _, c := range []struct {
		u    *user.User
		code int
		want string
	}{{mtaU, 0, "the queue is empty"}, {msaU, 1, "permission denied; run this as root or as the mta user"}} {
		cmd := exec.Command(filepath.Join(s.Dir, "postline"), "-c", s.Config, "queue")
		uid, _ := strconv.Atoi(c.u.Uid)
		gid, _ := strconv.Atoi(c.u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		out, err := cmd.CombinedOutput()
		if code := queueCLIExitCode(t, err); code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("queue as %s: exit %d, %q; want exit %d and %q", c.u.Username, code, out, c.code, c.want)
		}
	}
}

// queueCLISubmit submits a message from the demo user to rcpt and returns
// its queue ID.
func queueCLISubmit(t *testing.T, s *Stack, rcpt, subject string) string {
	t.Helper()
	reply, err := s.Submit(Submission{To: []string{rcpt},
		Body: "Subject: " + subject + "\r\n\r\nThe body stays in the spool.\r\n"})
	m := regexp.MustCompile(`queued as ([0-9A-Z]{16})`).FindStringSubmatch(reply)
	if err != nil || m == nil {
		t.Fatalf("submission to %s: reply %q, err %v; want it queued", rcpt, reply, err)
	}
	return m[1]
}

// queueCLIWait runs `postline queue` until its output matches the regular
// expression want, and returns that output. (A result is logged just
// before the queue records it, so the log alone is not enough.)
func queueCLIWait(t *testing.T, s *Stack, want string) string {
	t.Helper()
	re := regexp.MustCompile(want)
	var out string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out = s.Postline("", "queue"); re.MatchString(out) {
			return out
		}
	}
	t.Fatalf("postline queue never matched %s; last:\n%s", want, out)
	return ""
}

// queueCLIRun runs postline with config and returns its output and
// exit code.
func queueCLIRun(t *testing.T, config string, args ...string) (string, int) {
	t.Helper()
	out, err := runPostline(config, "", args...)
	return out, queueCLIExitCode(t, err)
}

func queueCLIExitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatal(err)
	return -1
}

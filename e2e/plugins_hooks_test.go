package e2e

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testPlugins holds the test plugins of plugins/host/testdata built so
// far, by name. They are built as postline-test-NAME, a name no other
// test builds, so that parallel tests never overwrite a running binary.
var (
	testPluginsMu sync.Mutex
	testPlugins   = map[string]string{}
)

// testPlugin builds plugins/host/testdata/NAME once and returns its path.
func testPlugin(t testing.TB, name string) string {
	t.Helper()
	testPluginsMu.Lock()
	defer testPluginsMu.Unlock()
	if path, ok := testPlugins[name]; ok {
		return path
	}
	path := filepath.Join(binDir, "postline-test-"+name)
	build := exec.Command("go", "build", "-o", path, "./plugins/host/testdata/"+name)
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	testPlugins[name] = path
	return path
}

// inbound is one message sent to the MTA's public port.
type inbound struct {
	Helo, From string
	To         []string
	Msg        string
}

// sendInboundMsg sends m and returns the reply to the end of DATA, or the
// first refusal together with the command it answered.
func sendInboundMsg(t *testing.T, s *Stack, m inbound) (step, text string, err error) {
	t.Helper()
	c, err := smtp.Dial(s.MTA)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello(m.Helo); err != nil {
		return "EHLO", "", err
	}
	if err := c.Mail(m.From, nil); err != nil {
		return "MAIL", "", err
	}
	for _, to := range m.To {
		if err := c.Rcpt(to, nil); err != nil {
			return "RCPT", "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "DATA", "", err
	}
	if _, err := w.Write([]byte(m.Msg)); err != nil {
		return "DATA", "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "end of DATA", "", err
	}
	c.Quit()
	return "", resp.StatusText, nil
}

// waitForSubject waits until the Maildir folder dir (a new/ folder)
// holds a message with the field "Subject: subject" and returns it.
func waitForSubject(t *testing.T, dir, subject string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil && strings.Contains(string(b), "\nSubject: "+subject+"\n") {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message %q in %s", subject, dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mailWithText lists the delivered files anywhere below the mail root
// whose content holds text.
func mailWithText(t *testing.T, s *Stack, text string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(s.MailRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), text) {
			found = append(found, path)
		}
		return nil
	})
	return found
}

var discardedLine = regexp.MustCompile(`(?m)^.*"message":"message discarded by plugin".*$`)
var queueIDField = regexp.MustCompile(`"queue_id":"([^"]+)"`)

// nthDiscard waits for the n-th "message discarded by plugin" log line
// of daemon svc (1-based) and returns its queue ID.
func nthDiscard(t *testing.T, s *Stack, svc string, n int) string {
	t.Helper()
	var ids []string
	waitLogFor(t, s, fmt.Sprintf("%d %q lines of the %s", n, "message discarded by plugin", svc), 5*time.Second,
		func(log string) bool {
			ids = ids[:0]
			for _, l := range discardedLine.FindAllString(log, -1) {
				if !strings.Contains(l, `"svc":"`+svc+`"`) {
					continue
				}
				m := queueIDField.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("discard log line without queue_id: %s", l)
				}
				ids = append(ids, m[1])
			}
			return len(ids) >= n
		})
	return ids[n-1]
}

// hookStage says where one verdict word goes so that the echo plugin
// reads it at one hook, and which command the verdict answers.
type hookStage struct {
	name, step string
	send       func(word, subject string) inbound
}

var hookStages = []hookStage{
	{"connect", "EHLO", func(word, subject string) inbound {
		return inbound{Helo: word, From: "sender@remote.test", To: []string{demoUser}, Msg: hookMsg(subject, "")}
	}},
	{"mail", "MAIL", func(word, subject string) inbound {
		return inbound{Helo: "client.example.net", From: word + "@remote.test", To: []string{demoUser}, Msg: hookMsg(subject, "")}
	}},
	// The word is a recipient of its own (a user of that name), before
	// demo: the message's verdict then covers demo's copy too.
	{"rcpt", "RCPT", func(word, subject string) inbound {
		return inbound{Helo: "client.example.net", From: "sender@remote.test", To: []string{word + "@example.test", demoUser}, Msg: hookMsg(subject, "")}
	}},
	{"data", "end of DATA", func(word, subject string) inbound {
		return inbound{Helo: "client.example.net", From: "sender@remote.test", To: []string{demoUser}, Msg: hookMsg(subject, word)}
	}},
}

func hookMsg(subject, verdict string) string {
	msg := "Subject: " + subject + "\r\nFrom: <sender@remote.test>\r\n"
	if verdict != "" {
		msg += "X-Verdict: " + verdict + "\r\n"
	}
	return msg + "\r\nhello\r\n.leading dot\r\n"
}

// TestPluginHooks drives every verdict of the echo test plugin through
// each hook the MTA runs for mail from the internet (connect, mail, rcpt,
// data), then through the MSA's data hook with the body-reading counter
// plugin beside it. One stack serves all; the subtests run in turn and
// the last checks where every message ended up.
func TestPluginHooks(t *testing.T) {
	t.Parallel()
	echo, counter := testPlugin(t, "echo"), testPlugin(t, "counter")
	s := StartStackWith(t, StackConfig{Plugins: fmt.Sprintf(`
[[plugins]]
name = "echo"
path = %[1]q
daemon = "mta"
hooks = ["connect", "mail", "rcpt", "data"]
[plugins.config]
mark = "mta"

[[plugins]]
name = "msa-echo"
path = %[1]q
daemon = "msa"
hooks = ["data"]
[plugins.config]
mark = "msa"

[[plugins]]
name = "counter"
path = %[2]q
daemon = "msa"
hooks = ["data"]
`, echo, counter)})
	words := []string{"reject", "tempfail", "discard", "junk", "accept", "continue"}
	for _, w := range words {
		s.Postline("pw\n", "user", "add", w+"@example.test")
	}
	h := &hookRun{s: s, delivered: map[string][]string{}}
	for _, st := range hookStages {
		for _, word := range words {
			t.Run("mta/"+st.name+"/"+word, func(t *testing.T) { h.mtaVerdict(t, st, word) })
		}
	}
	t.Run("mta/per message", h.mtaPerMessage)
	t.Run("msa/junk", h.msaJunk)
	t.Run("msa/refusals", h.msaRefusals)
	t.Run("msa/counter", h.msaCounter)
	t.Run("msa/per message", h.msaPerMessage)
	t.Run("delivered", h.checkDelivered)
}

// hookRun is TestPluginHooks' stack and its record of where each
// message must end up.
type hookRun struct {
	s *Stack
	// delivered lists, per subject, the new/ folders the message must
	// reach, and nowhere else.
	delivered map[string][]string
	gone      []string // subjects that must never be delivered
	discarded []string // queue IDs of discarded messages
	// mtaDiscards counts the MTA's "message discarded by plugin" lines.
	mtaDiscards int
}

func (h *hookRun) inbox(user string) string {
	return filepath.Join(h.s.MailRoot, "example.test", user, "new")
}

func (h *hookRun) junk(user string) string {
	return filepath.Join(h.s.MailRoot, "example.test", user, ".Junk", "new")
}

// mtaVerdict sends one message whose word the echo plugin reads at the
// hook of st, and checks the reply.
func (h *hookRun) mtaVerdict(t *testing.T, st hookStage, word string) {
	subject := "hooks " + st.name + " " + word
	step, text, err := sendInboundMsg(t, h.s, st.send(word, subject))
	switch word {
	case "reject":
		h.gone = append(h.gone, subject)
		wantReply(t, subject, err, 554, smtp.EnhancedCode{5, 7, 1})
		wantStepText(t, step, st.step, err, "echo says no")
	case "tempfail":
		h.gone = append(h.gone, subject)
		wantReply(t, subject, err, 450, smtp.EnhancedCode{4, 2, 0})
		wantStepText(t, step, st.step, err, "echo says later")
	case "discard":
		h.gone = append(h.gone, subject)
		if err != nil {
			t.Fatalf("%s: %s: %v", subject, step, err)
		}
		if want := "2.0.0 Ok: discarded by filter echo"; text != want {
			t.Errorf("reply %q, want %q", text, want)
		}
		h.mtaDiscards++
		h.discarded = append(h.discarded, nthDiscard(t, h.s, "mta", h.mtaDiscards))
	default: // junk, accept, continue
		if err != nil {
			t.Fatalf("%s: %s: %v", subject, step, err)
		}
		if !strings.HasPrefix(text, "2.0.0 Ok: queued as ") {
			t.Errorf("reply %q, want queued", text)
		}
		users := []string{"demo"}
		if st.name == "rcpt" {
			users = append(users, word)
		}
		for _, u := range users {
			dir := h.inbox(u)
			if word == "junk" {
				dir = h.junk(u)
			}
			h.delivered[subject] = append(h.delivered[subject], dir)
		}
	}
}

// mtaPerMessage: a verdict of the rcpt hook holds for its message only;
// the next one in the same session is delivered.
func (h *hookRun) mtaPerMessage(t *testing.T) {
	c := dialMTA(t, h.s)
	first, second := "hooks session discarded", "hooks session after discard"
	if err := c.SendMail("sender@remote.test", []string{"discard@example.test", demoUser}, strings.NewReader(hookMsg(first, ""))); err != nil {
		t.Fatal(err)
	}
	h.gone = append(h.gone, first)
	h.mtaDiscards++
	h.discarded = append(h.discarded, nthDiscard(t, h.s, "mta", h.mtaDiscards))
	if err := c.SendMail("sender@remote.test", []string{demoUser}, strings.NewReader(hookMsg(second, ""))); err != nil {
		t.Fatal(err)
	}
	h.delivered[second] = []string{h.inbox("demo")}
}

// msaJunk: FILE_INTO at the MSA's data hook, after the MTA transaction
// was opened, reaches the MDA through the MTA; the MTA's own plugins do
// not run for the MSA.
func (h *hookRun) msaJunk(t *testing.T) {
	body := "filed by the msa\r\n"
	msg := "Subject: hooks msa junk\r\nX-Verdict: junk\r\n\r\n" + body
	if _, err := h.s.Submit(Submission{To: []string{demoUser}, Body: msg}); err != nil {
		t.Fatal(err)
	}
	got := waitForSubject(t, h.junk("demo"), "hooks msa junk", 10*time.Second)
	wantHeaderLines(t, got, "X-Echo: msa\n", fmt.Sprintf("X-Body-Bytes: %d\n", len(body)))
	if strings.Contains(got, "X-Echo: mta") {
		t.Errorf("the MTA ran its plugins on mail from the MSA:\n%s", got)
	}
}

// msaRefusals: a reject at the MSA's data hook reaches the submitter; a
// discard is answered 250 and goes nowhere.
func (h *hookRun) msaRefusals(t *testing.T) {
	h.gone = append(h.gone, "hooks msa reject", "hooks msa discard")
	_, err := h.s.Submit(Submission{To: []string{demoUser}, Body: "Subject: hooks msa reject\r\nX-Verdict: reject\r\n\r\nno\r\n"})
	wantReply(t, "msa reject", err, 554, smtp.EnhancedCode{5, 7, 1})

	text, err := h.s.Submit(Submission{To: []string{demoUser}, Body: "Subject: hooks msa discard\r\nX-Verdict: discard\r\n\r\nno\r\n"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "2.0.0 Ok: discarded by filter msa-echo"; text != want {
		t.Errorf("reply %q, want %q", text, want)
	}
	h.discarded = append(h.discarded, nthDiscard(t, h.s, "msa", 1))
}

// msaCounter: the counter plugin reads the whole body at the MSA and
// its count, in octets on the wire, is in the delivered copy.
func (h *hookRun) msaCounter(t *testing.T) {
	// A leading dot is stuffed on the wire and counted once; the body
	// spans several of the 64 KiB chunks the plugin is sent.
	body := "first line\r\n.leading dot\r\n\r\n" + strings.Repeat("0123456789012345678901234567890123456789\r\n", 5000) + "last\r\n"
	if _, err := h.s.Submit(Submission{To: []string{demoUser}, Body: "Subject: hooks msa counter\r\n\r\n" + body}); err != nil {
		t.Fatal(err)
	}
	got := waitForSubject(t, h.inbox("demo"), "hooks msa counter", 10*time.Second)
	wantHeaderLines(t, got, "X-Echo: msa\n", fmt.Sprintf("X-Body-Bytes: %d\n", len(body)))
	if want := strings.ReplaceAll(body, "\r\n", "\n"); !strings.HasSuffix(got, "\n\n"+want) {
		t.Errorf("delivered body differs from the one sent")
	}
}

// msaPerMessage: a FILE_INTO at the MSA's data hook holds for its
// message only; the next one in the same session goes to the inbox.
func (h *hookRun) msaPerMessage(t *testing.T) {
	c, err := smtp.DialStartTLS(h.s.Submission, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", demoUser, demoPassword)); err != nil {
		t.Fatal(err)
	}
	first, second := "hooks session junk", "hooks session after junk"
	for _, m := range []string{"Subject: " + first + "\r\nX-Verdict: junk\r\n\r\nx\r\n", "Subject: " + second + "\r\n\r\nx\r\n"} {
		if err := c.SendMail(demoUser, []string{demoUser}, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitForSubject(t, h.junk("demo"), first, 10*time.Second)
	waitForSubject(t, h.inbox("demo"), second, 10*time.Second)
	for _, subject := range []string{first, second} {
		if found := mailWithText(t, h.s, "\nSubject: "+subject+"\n"); len(found) != 1 {
			t.Errorf("%q delivered as %v, want one copy", subject, found)
		}
	}
}

// checkDelivered waits for every message the MTA subtests expect, then
// checks that each sits in its folders only, that no refused or
// discarded one was queued or delivered, and that no spilled copy of a
// message is left behind.
func (h *hookRun) checkDelivered(t *testing.T) {
	for subject, dirs := range h.delivered {
		for _, dir := range dirs {
			got := waitForSubject(t, dir, subject, 10*time.Second)
			// One X-Echo, from the data hook: the edits of the
			// connect, mail and rcpt hooks are not applied.
			if n := strings.Count(got, "\nX-Echo: mta\n"); n != 1 {
				t.Errorf("%q in %s has %d X-Echo fields, want 1:\n%s", subject, dir, n, got)
			}
		}
	}
	waitSpoolEmpty(t, h.s, 10*time.Second)
	for subject, dirs := range h.delivered {
		if found := mailWithText(t, h.s, "\nSubject: "+subject+"\n"); len(found) != len(dirs) {
			t.Errorf("%q delivered as %v, want one copy in each of %v", subject, found, dirs)
		}
	}
	for _, subject := range h.gone {
		if found := mailWithText(t, h.s, "\nSubject: "+subject+"\n"); len(found) > 0 {
			t.Errorf("%q was delivered: %v", subject, found)
		}
	}
	for _, id := range h.discarded {
		if queuedLine(h.s, id) {
			t.Errorf("discarded message %s was queued", id)
		}
	}
	// The copies made for body-reading plugins are unlinked at once
	// (var/msa/plugins holds the plugins' state folders).
	for _, dir := range []string{"var/msa", "var/queue/tmp"} {
		entries, err := os.ReadDir(filepath.Join(h.s.Dir, dir))
		entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == "plugins" && e.IsDir() })
		if err != nil || len(entries) > 0 {
			t.Errorf("%s: %d entries, %v", dir, len(entries), err)
		}
	}
}

// queuedLine reports whether the log has a "queued" line for queue ID id.
// The MTA writes that line before its reply, so the line of a message
// whose reply the test has read is in the log already (see stackLog).
func queuedLine(s *Stack, id string) bool {
	for _, l := range strings.Split(s.Log(), "\n") {
		if strings.Contains(l, `"queue_id":"`+id+`"`) && strings.Contains(l, `"message":"queued"`) {
			return true
		}
	}
	return false
}

// wantStepText fails unless the refusal answered the command want and
// carries text.
func wantStepText(t *testing.T, step, want string, err error, text string) {
	t.Helper()
	if step != want {
		t.Errorf("refused at %s, want at %s", step, want)
	}
	if err != nil && !strings.Contains(err.Error(), text) {
		t.Errorf("reply %q lacks %q", err, text)
	}
}

// wantHeaderLines fails unless the header of msg holds each of fields.
func wantHeaderLines(t *testing.T, msg string, fields ...string) {
	t.Helper()
	head, _, _ := strings.Cut(msg, "\n\n")
	for _, f := range fields {
		if !strings.Contains(head+"\n", "\n"+f) && !strings.HasPrefix(head, f) {
			t.Errorf("header lacks %q:\n%s", f, head)
		}
	}
}

// TestPluginHookFailures: a data plugin of the MTA that panics in the
// middle of a message, or hangs past its timeout, costs that message a
// 451 4.7.0 and nothing else: the plugin is restarted and the next
// message passes.
func TestPluginHookFailures(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{Plugins: fmt.Sprintf(`
[[plugins]]
name = "panicky"
path = %q
daemon = "mta"
hooks = ["data"]
order = 1

[[plugins]]
name = "sleepy"
path = %q
daemon = "mta"
hooks = ["data"]
order = 2
timeout = "2s"
`, testPlugin(t, "panicky"), testPlugin(t, "sleepy"))})
	// panicky reads 1000 bytes of the body before it panics.
	body := strings.Repeat("a body line of some length\r\n", 200)
	send := func(subject, field string) (string, string, error) {
		return sendInboundMsg(t, s, inbound{Helo: "client.example.net", From: "sender@remote.test",
			To: []string{demoUser}, Msg: "Subject: " + subject + "\r\n" + field + "\r\n" + body})
	}
	inbox := filepath.Join(s.Mailbox(demoUser), "new")

	t.Run("panic", func(t *testing.T) {
		step, _, err := send("failures panic", "X-Panic: yes\r\n")
		wantReply(t, "panicking plugin", err, 451, smtp.EnhancedCode{4, 7, 0})
		wantStepText(t, step, "end of DATA", err, "filter panicky unavailable")
		waitLogEvent(t, s, "plugin restarted", nil)
		if _, text, err := send("failures after panic", ""); err != nil {
			t.Fatalf("after the restart: %v", err)
		} else if !strings.HasPrefix(text, "2.0.0 Ok: queued as ") {
			t.Errorf("after the restart: %q", text)
		}
		got := waitForSubject(t, inbox, "failures after panic", 10*time.Second)
		wantHeaderLines(t, got, "X-Panicky: passed\n")
	})
	t.Run("hang", func(t *testing.T) {
		start := time.Now()
		step, _, err := send("failures hang", "X-Sleep: yes\r\n")
		took := time.Since(start)
		wantReply(t, "hanging plugin", err, 451, smtp.EnhancedCode{4, 7, 0})
		wantStepText(t, step, "end of DATA", err, "filter sleepy unavailable")
		t.Logf("a plugin hung past its 2s timeout: 451 after %s", took.Round(10*time.Millisecond))
		if took > 10*time.Second {
			t.Errorf("the 451 took %s; the timeout is 2s", took)
		}
		if _, _, err := send("failures after hang", ""); err != nil {
			t.Fatalf("after the hang: %v", err)
		}
		waitForSubject(t, inbox, "failures after hang", 10*time.Second)
	})
	t.Run("nothing queued", func(t *testing.T) {
		waitSpoolEmpty(t, s, 10*time.Second)
		for _, subject := range []string{"failures panic", "failures hang"} {
			if found := mailWithText(t, s, "\nSubject: "+subject+"\n"); len(found) > 0 {
				t.Errorf("%q was delivered: %v", subject, found)
			}
		}
		waitLogLine(t, s, `"plugin":"sleepy"`, `"message":"plugin restarted"`)
		if n := len(logEvents(s, "plugin restarted")); n != 2 {
			t.Errorf("%d plugin restarts logged, want 2 (panicky, sleepy)", n)
		}
	})
}

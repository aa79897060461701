package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/mail"
	"os"
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
)

// chaosEnv names the number of messages TestChaos submits; unset, the
// test is skipped. `make chaos` sets it (500; `.ci/run` uses 100).
// chaosLogEnv, when set, names a file to keep the stack's log in.
const (
	chaosEnv    = "POSTLINE_CHAOS_N"
	chaosLogEnv = "POSTLINE_CHAOS_LOG"
)

const chaosClients = 8

// TestChaos submits N messages, each with its own Message-ID, from
// several clients through the MSA while the MTA and the MDA are killed
// with SIGKILL at random moments, resubmitting whatever was not
// acknowledged, as a mail client does. Once the queue is empty, every
// acknowledged message must be in the Maildir exactly once. The one
// copy SMTP cannot prevent is allowed and counted apart: a client whose
// connection broke after its final dot, with no reply, sends again, and
// both copies may be real (RFC 1047, "Duplicate messages and SMTP").
func TestChaos(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(chaosEnv))
	if err != nil || n <= 0 {
		t.Skipf("set %s to a number of messages to run it: make chaos, or %s=100 go test -run '^TestChaos$' -v ./e2e/", chaosEnv, chaosEnv)
	}
	if n < 20 {
		t.Fatalf("%s=%d: at least 20 messages, spread over the kills", chaosEnv, n)
	}
	s := StartStack(t)
	r := newChaosRun(t, s, n)
	r.run()
	r.waitDrained(2 * time.Minute)
	r.report(r.count())
	if path := os.Getenv(chaosLogEnv); path != "" {
		if err := os.WriteFile(path, []byte(s.Log()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// chaosMsg is what the clients know of one message.
type chaosMsg struct {
	acked     bool
	queueID   string // from the 250 to the final dot
	refused   int    // 4xx/5xx replies, each followed by a resubmission
	broken    int    // connection broke before the final dot's reply was due
	ambiguous int    // connection broke after the final dot, with no reply
}

// chaosRun is one run: the stack, the messages and the kills.
type chaosRun struct {
	t       *testing.T
	s       *Stack
	n       int
	perKill int // kills of each of the MTA and the MDA

	mu      sync.Mutex
	msgs    []chaosMsg
	acks    int
	kills   map[string]int
	work    chan int      // messages to submit, first or again
	allDone chan struct{} // closed with the last acknowledgment
	start   time.Time
}

func newChaosRun(t *testing.T, s *Stack, n int) *chaosRun {
	return &chaosRun{t: t, s: s, n: n, perKill: max(2, 3*n/500), msgs: make([]chaosMsg, n),
		kills: map[string]int{}, work: make(chan int, n), allDone: make(chan struct{})}
}

// run submits every message and kills the daemons meanwhile, until every
// message is acknowledged and every kill done, or the deadline.
func (r *chaosRun) run() {
	limit := max(2*time.Minute, time.Duration(r.n)*500*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	r.start = time.Now()
	var wg sync.WaitGroup
	for range chaosClients {
		wg.Add(1)
		go func() { defer wg.Done(); r.client(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.killer(ctx) }()
	wg.Wait()
	if ctx.Err() != nil {
		r.t.Errorf("chaos: deadline of %s passed: %d of %d messages acknowledged, kills %v", limit, r.acks, r.n, r.kills)
	}
}

// next returns the message to submit, false once all are acknowledged.
func (r *chaosRun) next(ctx context.Context) (int, bool) {
	select {
	case i := <-r.work:
		return i, true
	case <-r.allDone:
	case <-ctx.Done():
	}
	return 0, false
}

// client keeps one authenticated session and submits messages on it,
// opening a new one when it breaks.
func (r *chaosRun) client(ctx context.Context) {
	var c *smtp.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		i, ok := r.next(ctx)
		if !ok {
			return
		}
		if c == nil {
			var err error
			if c, err = dialChaos(r.s.Submission); err != nil {
				r.resubmit(i, func(m *chaosMsg) { m.broken++ })
				pause(ctx, 100*time.Millisecond)
				continue
			}
		}
		if !r.submit(c, i) {
			c.Close()
			c = nil
		}
	}
}

// dialChaos opens a session: STARTTLS, then AUTH PLAIN as the demo user.
func dialChaos(addr string) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test"})
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	// Longer than the MSA may take to settle a broken MTA connection
	// after the final dot (it asks the restarted MTA for up to 30 s).
	c.CommandTimeout, c.SubmissionTimeout = 90*time.Second, 90*time.Second
	if err := c.Auth(sasl.NewPlainClient("", demoUser, demoPassword)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// submit sends message i on c and records the outcome; false when the
// session cannot be used again.
func (r *chaosRun) submit(c *smtp.Client, i int) bool {
	queueID, dotSent, err := sendChaos(c, i)
	var serr *smtp.SMTPError
	switch {
	case err == nil:
		r.acked(i, queueID)
		return true
	case errors.As(err, &serr): // a reply: nothing was queued, send again
		r.resubmit(i, func(m *chaosMsg) { m.refused++ })
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
		return serr.Code != 421 && c.Reset() == nil
	case dotSent: // no reply to the final dot: it may have been queued
		r.resubmit(i, func(m *chaosMsg) { m.ambiguous++ })
		r.t.Logf("chaos: <chaos-%d@test>: no reply after the final dot (%v); resubmitting", i, err)
		return false
	default:
		r.resubmit(i, func(m *chaosMsg) { m.broken++ })
		return false
	}
}

// sendChaos runs one transaction; dotSent tells whether the error came
// after the final dot was written (or while writing it).
func sendChaos(c *smtp.Client, i int) (queueID string, dotSent bool, err error) {
	if err := c.Mail(demoUser, nil); err != nil {
		return "", false, err
	}
	if err := c.Rcpt(demoUser, nil); err != nil {
		return "", false, err
	}
	w, err := c.Data()
	if err != nil {
		return "", false, err
	}
	if _, err := w.Write([]byte(chaosBody(i))); err != nil {
		return "", false, err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", true, err
	}
	_, id, _ := strings.Cut(resp.StatusText, "queued as ")
	return strings.TrimSpace(id), true, nil
}

func chaosBody(i int) string {
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: chaos %d\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n"+
		"Message-ID: <chaos-%d@test>\r\n\r\nmessage %d of the chaos test\r\n", demoUser, demoUser, i, i, i)
}

func (r *chaosRun) acked(i int, queueID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[i].acked, r.msgs[i].queueID = true, queueID
	r.acks++
	if r.acks == r.n {
		close(r.allDone)
	}
}

func (r *chaosRun) resubmit(i int, note func(*chaosMsg)) {
	r.mu.Lock()
	note(&r.msgs[i])
	r.mu.Unlock()
	r.work <- i // never blocks: each message is at most once in the channel
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// killer kills the MTA and the MDA r.perKill times each, in random
// order, and hands the clients the messages: split into one slice per
// kill, a slice at a time. Each kill comes at a random point of its
// slice (once a random number of its first three quarters has been
// acknowledged, and a random few milliseconds later), so the kills are
// spread over the whole submission and each comes while the clients keep
// the daemons busy. A child is killed again only once the supervisor
// restarted it and it reported ready, so a kill never hits a dead PID;
// the next slice waits for that too. The other child may be down
// meanwhile.
func (r *chaosRun) killer(ctx context.Context) {
	var order []string
	for range r.perKill {
		order = append(order, "mta", "mda")
	}
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	up := map[string]chan bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	fed := 0
	feed := func(to int) {
		for ; fed < to; fed++ {
			r.work <- fed
		}
	}
	defer feed(r.n) // whatever happens, every message is submitted
	for k, name := range order {
		if ch := up[name]; ch != nil && !waitUp(ctx, ch) {
			return // it never came back: reported by waitRestart
		}
		start, end := k*r.n/len(order), (k+1)*r.n/len(order)
		feed(end)
		r.waitAcks(ctx, start+rand.IntN(max(1, (end-start)*3/4)))
		pause(ctx, time.Duration(rand.IntN(20))*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
		ch, err := r.kill(ctx, name, &wg)
		if err != nil {
			r.t.Errorf("chaos: %v", err)
			return
		}
		up[name] = ch
	}
}

func waitUp(ctx context.Context, ch chan bool) bool {
	select {
	case ok := <-ch:
		return ok
	case <-ctx.Done():
		return false
	}
}

// waitAcks waits until n messages are acknowledged.
func (r *chaosRun) waitAcks(ctx context.Context, n int) {
	for ctx.Err() == nil {
		r.mu.Lock()
		acks := r.acks
		r.mu.Unlock()
		if acks >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// kill sends SIGKILL to the child daemon name; the channel reports
// whether it is back.
func (r *chaosRun) kill(ctx context.Context, name string, wg *sync.WaitGroup) (chan bool, error) {
	pid, ok := childPID(r.s.Log(), name)
	if !ok {
		return nil, fmt.Errorf("no pid for %s in the log", name)
	}
	ready := strings.Count(r.s.Log(), `"`+name+` ready"`)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return nil, fmt.Errorf("kill -9 %s (pid %d): %w", name, pid, err)
	}
	r.mu.Lock()
	r.kills[name]++
	acks := r.acks
	r.mu.Unlock()
	r.t.Logf("chaos: %5.1fs kill -9 %s (pid %d); %d of %d acknowledged",
		time.Since(r.start).Seconds(), name, pid, acks, r.n)
	ch := make(chan bool, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ch <- r.waitRestart(ctx, name, pid, ready)
	}()
	return ch, nil
}

// waitRestart waits until the supervisor logged a new PID for name and
// the daemon logged ready once more than before the kill.
func (r *chaosRun) waitRestart(ctx context.Context, name string, old, ready int) bool {
	deadline := time.Now().Add(time.Minute)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		log := r.s.Log()
		if pid, _ := childPID(log, name); pid != old && strings.Count(log, `"`+name+` ready"`) > ready {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Errorf("chaos: %s (killed pid %d) not back after a minute", name, old)
	return false
}

var childPIDs = map[string]*regexp.Regexp{
	"mta": regexp.MustCompile(`"child":"mta","pid":(\d+)`),
	"mda": regexp.MustCompile(`"child":"mda","pid":(\d+)`),
}

// childPID is Stack.ChildPID without failing the test, for goroutines.
func childPID(log, name string) (int, bool) {
	m := childPIDs[name].FindAllStringSubmatch(log, -1)
	if m == nil {
		return 0, false
	}
	pid, err := strconv.Atoi(m[len(m)-1][1])
	return pid, err == nil
}

// waitDrained waits until the queue is empty and the number of files in
// the demo Maildir's new/ stopped changing.
func (r *chaosRun) waitDrained(limit time.Duration) {
	newDir := filepath.Join(r.s.Mailbox(demoUser), "new")
	deadline := time.Now().Add(limit)
	last, stable := -1, 0
	for stable < 5 {
		queued, delivered := len(queuedEnvelopes(r.t, r.s)), countFiles(newDir)
		if queued == 0 && delivered == last {
			stable++
		} else {
			stable = 0
		}
		last = delivered
		if time.Now().After(deadline) {
			out, _ := runPostline(r.s.Config, "", "queue")
			r.t.Errorf("chaos: not drained after %s: %d envelopes in the queue, %d files in new/; postline queue:\n%s"+
				"what the log says of the first few:%s", limit, queued, delivered, out, r.stuck())
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stuck returns the log lines of the first few messages left in the queue.
func (r *chaosRun) stuck() string {
	log := strings.Split(r.s.Log(), "\n")
	var b strings.Builder
	n := 0
	for id := range queuedEnvelopes(r.t, r.s) {
		if n++; n > 5 {
			break
		}
		fmt.Fprintf(&b, "\n%s:%s", id, logLines(log, id))
	}
	return b.String()
}

// logLines returns the lines of log that mention id, indented.
func logLines(log []string, id string) string {
	var b strings.Builder
	for _, l := range log {
		if strings.Contains(l, id) {
			fmt.Fprintf(&b, "\n    %s", l)
		}
	}
	return b.String()
}

func countFiles(dir string) int {
	entries, _ := os.ReadDir(dir)
	return len(entries)
}

// chaosCount is what the Maildir holds, set against what was acknowledged.
type chaosCount struct {
	acked, delivered, lost, duplicated, extraAmbiguous, unknown int
	refused, ambiguous, broken                                  int
	copies                                                      map[int][]string // message → queue IDs of its copies
	lostIDs, dupIDs                                             []int
}

// count reads every file in the demo Maildir's new/.
func (r *chaosRun) count() chaosCount {
	c := chaosCount{copies: map[int][]string{}}
	dir := filepath.Join(r.s.Mailbox(demoUser), "new")
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.t.Errorf("chaos: %v", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			r.t.Errorf("chaos: %v", err)
			continue
		}
		i, queueID, ok := parseChaosCopy(b, r.n)
		if !ok {
			c.unknown++
			continue
		}
		c.copies[i] = append(c.copies[i], queueID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range r.msgs {
		c.refused, c.ambiguous, c.broken = c.refused+m.refused, c.ambiguous+m.ambiguous, c.broken+m.broken
		got := len(c.copies[i])
		if m.acked {
			c.acked++
		}
		if got > 0 {
			c.delivered++
		}
		if m.acked && got == 0 {
			c.lost++
			c.lostIDs = append(c.lostIDs, i)
		}
		extra := max(0, got-1)
		allowed := min(extra, m.ambiguous) // one extra copy per ambiguous retry
		c.extraAmbiguous += allowed
		if extra > allowed {
			c.duplicated += extra - allowed
			c.dupIDs = append(c.dupIDs, i)
		}
	}
	return c
}

var (
	chaosMessageID = regexp.MustCompile(`^<chaos-(\d+)@test>$`)
	receivedID     = regexp.MustCompile(`\sid ([0-9A-Z]+)`)
)

// parseChaosCopy returns the message number of a delivered copy and the
// queue ID in its Received field (postline's first, on top).
func parseChaosCopy(b []byte, n int) (int, string, bool) {
	msg, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		return 0, "", false
	}
	m := chaosMessageID.FindStringSubmatch(msg.Header.Get("Message-ID"))
	if m == nil {
		return 0, "", false
	}
	i, err := strconv.Atoi(m[1])
	if err != nil || i >= n {
		return 0, "", false
	}
	queueID := "?"
	if id := receivedID.FindStringSubmatch(msg.Header.Get("Received")); id != nil {
		queueID = id[1]
	}
	return i, queueID, true
}

// report prints the figures and fails on a lost or duplicated message,
// naming the first few with what the log says of their queue IDs.
func (r *chaosRun) report(c chaosCount) {
	line := fmt.Sprintf("chaos: N=%d clients=%d kills mta=%d mda=%d: acknowledged %d, delivered %d, lost %d, "+
		"duplicated %d, extra after ambiguous client retry %d; resubmitted after refusal %d, after ambiguity %d, "+
		"after a broken connection %d; unknown files %d; took %s",
		r.n, chaosClients, r.kills["mta"], r.kills["mda"], c.acked, c.delivered, c.lost, c.duplicated,
		c.extraAmbiguous, c.refused, c.ambiguous, c.broken, c.unknown, time.Since(r.start).Round(time.Second))
	r.t.Log(line)
	fmt.Println(line)
	if c.unknown > 0 {
		r.t.Errorf("chaos: %d files in new/ are not this test's messages", c.unknown)
	}
	if c.acked < r.n {
		r.t.Errorf("chaos: only %d of %d messages acknowledged", c.acked, r.n)
	}
	if c.lost == 0 && c.duplicated == 0 {
		return
	}
	r.t.Errorf("chaos: %d lost (e.g. %s), %d duplicated (e.g. %s)",
		c.lost, r.describe(c, c.lostIDs), c.duplicated, r.describe(c, c.dupIDs))
	if f, err := os.CreateTemp("", "postline-chaos-*.log"); err == nil {
		f.WriteString(r.s.Log())
		f.Close()
		r.t.Logf("chaos: the stack's log is kept in %s", f.Name())
	}
}

// describe names up to five messages: their Message-ID, the queue ID the
// client was given, the queue IDs of their copies, and the log lines of
// those queue IDs.
func (r *chaosRun) describe(c chaosCount, ids []int) string {
	if len(ids) == 0 {
		return "none"
	}
	log := strings.Split(r.s.Log(), "\n")
	var b strings.Builder
	for _, i := range ids[:min(5, len(ids))] {
		r.mu.Lock()
		m := r.msgs[i]
		r.mu.Unlock()
		fmt.Fprintf(&b, "\n<chaos-%d@test>: acknowledged as %q after %d refusals, %d ambiguous and %d broken tries; copies from queue IDs %v",
			i, m.queueID, m.refused, m.ambiguous, m.broken, c.copies[i])
		seen := map[string]bool{}
		for _, id := range append([]string{m.queueID}, c.copies[i]...) {
			if id == "" || id == "?" || seen[id] {
				continue
			}
			seen[id] = true
			b.WriteString(logLines(log, id))
		}
	}
	return b.String()
}

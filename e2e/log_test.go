package e2e

// The stack's log, and the one way tests read it: wait, with a deadline,
// until it holds what the test expects. A line can trail the event it
// reports: the MDA logs "delivered" after the file is in new/, a plugin's
// lines come through its own stderr pipe, the supervisor logs a child's
// exit after the exit. So a test never reads the log right after waiting
// for something else (a Maildir file, a reply, an exit); it waits for the
// line itself.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// logWait bounds the wait for a line: they trail their events by
// milliseconds, the rest is for a loaded CI machine.
const logWait = 10 * time.Second

// stackLog is the log of one `postline start`: a file that the supervisor
// and its daemons append to through the stdout and stderr they share. A
// file rather than a pipe the test copies from: a line is readable as soon
// as its write returns, so a line written before a reply or a Maildir file
// that the test has seen is already there, and a count read from the log
// is final for everything that happened before.
type stackLog struct {
	w *os.File // O_APPEND: the processes' lines never overwrite each other

	mu   sync.Mutex
	r    *os.File // its own offset: where the last read stopped
	read []byte
}

func newStackLog(tb testing.TB) *stackLog {
	tb.Helper()
	r, err := os.CreateTemp("", "postline-log-")
	if err != nil {
		tb.Fatal(err)
	}
	w, err := os.OpenFile(r.Name(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close(); r.Close(); os.Remove(r.Name()) })
	return &stackLog{w: w, r: r}
}

// String returns everything logged so far (what it read before, once the
// test has ended and the file is closed).
func (l *stackLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	more, _ := io.ReadAll(l.r)
	l.read = append(l.read, more...)
	return string(l.read)
}

// Log returns everything the stack logged so far.
func (s *Stack) Log() string { return s.log.String() }

// pollLog calls ok with the stack's log every 20 ms until it holds or
// timeout passes, and says whether it held.
func pollLog(s *Stack, timeout time.Duration, ok func(log string) bool) bool {
	for deadline := time.Now().Add(timeout); !ok(s.Log()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// waitLogFor waits until ok holds for the stack's log; it fails tb,
// saying what it waited for, after timeout.
func waitLogFor(tb testing.TB, s *Stack, what string, timeout time.Duration, ok func(log string) bool) {
	tb.Helper()
	if !pollLog(s, timeout, ok) {
		tb.Fatalf("the log never had %s within %v", what, timeout)
	}
}

// WaitLog waits until the log contains substr count times in all.
func (s *Stack) WaitLog(substr string, count int, timeout time.Duration) {
	s.t.Helper()
	waitLogFor(s.t, s, fmt.Sprintf("%q %d times", substr, count), timeout,
		func(log string) bool { return strings.Count(log, substr) >= count })
}

// waitLogLine waits for a log line holding every one of parts, and
// returns it.
func waitLogLine(tb testing.TB, s *Stack, parts ...string) string {
	tb.Helper()
	var found string
	waitLogFor(tb, s, fmt.Sprintf("a line with all of %q", parts), logWait, func(log string) bool {
		for _, line := range strings.Split(log, "\n") {
			if containsAll(line, parts) {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

// logEvents returns the stack's JSON log lines whose message is msg.
func logEvents(s *Stack, msg string) []map[string]any {
	return eventsIn(s.Log(), msg)
}

func eventsIn(log, msg string) []map[string]any {
	var events []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["message"] == msg {
			events = append(events, ev)
		}
	}
	return events
}

// waitEvents waits until the JSON log events whose message is msg
// satisfy ok, and returns them; on timeout it fails tb with those it saw.
func waitEvents(tb testing.TB, s *Stack, msg string, ok func([]map[string]any) bool) []map[string]any {
	tb.Helper()
	var events []map[string]any
	if !pollLog(s, logWait, func(log string) bool { events = eventsIn(log, msg); return ok(events) }) {
		tb.Fatalf("log events %q not as wanted within %v; they are: %v", msg, logWait, events)
	}
	return events
}

// waitLogEvent waits for the first JSON log event msg that match accepts
// (nil accepts any) and returns it.
func waitLogEvent(tb testing.TB, s *Stack, msg string, match func(map[string]any) bool) map[string]any {
	tb.Helper()
	var found map[string]any
	waitEvents(tb, s, msg, func(events []map[string]any) bool {
		for _, ev := range events {
			if match == nil || match(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// fieldOf returns field of the events that concern queue ID id, in
// log order, e.g. the recipients a message was delivered to.
func fieldOf(events []map[string]any, id, field string) []string {
	var values []string
	for _, ev := range events {
		if ev["queue_id"] == id {
			values = append(values, fmt.Sprint(ev[field]))
		}
	}
	return values
}

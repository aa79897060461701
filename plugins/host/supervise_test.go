package host

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func wantUnavailable(t *testing.T, got Result, name string) {
	t.Helper()
	want := Reply{451, "4.7.0", "filter " + name + " unavailable"}
	if got.Action != Tempfail || got.Reply != want {
		t.Errorf("got %+v, want tempfail %v", got, want)
	}
}

func TestPanicMidMessageRestarts(t *testing.T) {
	ctx := context.Background()
	c, buf := startChain(t, "mta", spec("panicky", "panicky", "mta", nil))
	before := pidOf(t, c, "panicky")
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	got := c.Data(ctx, TxInfo{Conn: conn}, header("", "X-Panic: now"), bytes.NewReader(body))
	wantUnavailable(t, got, "panicky")

	// The next message passes, served by a new process.
	got = c.Data(ctx, TxInfo{Conn: conn}, header(""), bytes.NewReader(body))
	if got.Action != Continue || len(got.Edits) != 1 || got.Edits[0].Value != "passed" {
		t.Errorf("after the restart: %+v", got)
	}
	after := pidOf(t, c, "panicky")
	if after == before || after == 0 {
		t.Errorf("pid %d before, %d after: want a new process", before, after)
	}
	if s := c.Status()[0]; s.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", s.Restarts)
	}
	buf.waitLine(t, `"plugin":"panicky"`, `"level":"error"`, "panicky was asked to panic")
	buf.waitLine(t, `"plugin":"panicky"`, "plugin failed, restarting it", `"reason":"crashed"`)
	t.Logf("pid %d crashed, %d serves", before, after)
}

func TestHangTimesOutAndRestarts(t *testing.T) {
	ctx := context.Background()
	s := spec("sleepy", "sleepy", "mta", nil)
	s.Timeout = 300 * time.Millisecond
	c, buf := startChain(t, "mta", s)
	before := pidOf(t, c, "sleepy")
	start := time.Now()
	got := c.Data(ctx, TxInfo{Conn: conn}, header("", "X-Sleep: 1h"), nil)
	took := time.Since(start)
	wantUnavailable(t, got, "sleepy")
	if took > s.Timeout+time.Second {
		t.Errorf("a hung plugin held the call %s (timeout %s)", took, s.Timeout)
	}
	// Starting the new process may take longer than the short timeout
	// on a loaded machine; the next call is meant to find it up.
	waitUp(t, c, before)
	got = c.Data(ctx, TxInfo{Conn: conn}, header(""), nil)
	if got.Action != Continue {
		t.Errorf("after the restart: %+v", got)
	}
	if after := pidOf(t, c, "sleepy"); after == before {
		t.Errorf("still pid %d: the hung process was not replaced", after)
	}
	if err := waitGone(before); err != nil {
		t.Error(err)
	}
	buf.waitLine(t, "plugin failed, restarting it", `"reason":"timeout"`)
	t.Logf("hung call answered after %s (timeout %s)", took.Round(time.Millisecond), s.Timeout)
}

// waitGone waits for a process to be gone (killed and reaped).
func waitGone(pid int) error {
	for range 250 {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("old plugin process still exists")
}

func TestOnErrorContinue(t *testing.T) {
	s := spec("panicky", "panicky", "mta", nil)
	s.OnError = OnErrorContinue
	c, buf := startChain(t, "mta", s, spec("counter", "counter", "mta", nil))
	got := c.Data(context.Background(), TxInfo{Conn: conn}, header("", "X-Panic: now"), bytes.NewReader(make([]byte, 5000)))
	// panicky is skipped; the next plugin still runs.
	if got.Action != Continue || len(got.Edits) != 1 || got.Edits[0].Name != "X-Body-Bytes" {
		t.Errorf("got %+v, want continue with counter's edit only", got)
	}
	buf.waitLine(t, `"plugin":"panicky"`, "plugin call failed", `"on_error":"continue"`)
}

// TestKilledBetweenCalls: a plugin that dies while idle is back before
// the next message.
func TestKilledBetweenCalls(t *testing.T) {
	c, _ := startChain(t, "mta", spec("echo", "echo", "mta", nil))
	before := pidOf(t, c, "echo")
	if err := syscall.Kill(before, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, c, "echo", before)
	got := c.Rcpt(context.Background(), RcptInfo{Conn: conn, Recipient: "accept@example.test"})
	if got.Action != Accept {
		t.Errorf("after the restart: %+v", got)
	}
}

// TestCrashLoop: while a plugin cannot start, calls get 451 without
// waiting for it, restarts back off, and it comes back once it can.
func TestCrashLoop(t *testing.T) {
	old := restartMax
	t.Cleanup(func() { restartMax = old }) // runs after the chain's Close: cleanups run last-in first-out
	restartMax = 400 * time.Millisecond
	dir := t.TempDir()
	path := filepath.Join(dir, "echo")
	copyFile(t, bin("echo"), path)
	s := Spec{Name: "echo", Path: path, Daemon: "mta", Timeout: 200 * time.Millisecond}
	c, buf := startChain(t, "mta", s)
	before := pidOf(t, c, "echo")

	// The binary now dies at once; kill the running one.
	os.Remove(path)
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(before, syscall.SIGKILL)
	buf.waitLine(t, "plugin restart failed", `"crash_loop":true`)
	start := time.Now()
	got := c.Rcpt(context.Background(), RcptInfo{Conn: conn, Recipient: "accept@example.test"})
	wantUnavailable(t, got, "echo")
	if took := time.Since(start); took > s.Timeout+100*time.Millisecond {
		t.Errorf("a call to a crash-looping plugin took %s", took)
	}

	os.Remove(path)
	copyFile(t, bin("echo"), path)
	waitRestarted(t, c, "echo", before)
	if got := c.Rcpt(context.Background(), RcptInfo{Conn: conn, Recipient: "accept@example.test"}); got.Action != Accept {
		t.Errorf("after recovery: %+v", got)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsPlugins(t *testing.T) {
	c, _ := startChain(t, "mta", spec("echo", "echo", "mta", nil), spec("counter", "counter", "mta", nil))
	var pids []int
	for _, s := range c.Status() {
		pids = append(pids, s.PID)
	}
	start := time.Now()
	c.Close()
	t.Logf("Close took %s", time.Since(start).Round(time.Millisecond))
	for _, pid := range pids {
		if err := waitGone(pid); err != nil {
			t.Errorf("pid %d: %v", pid, err)
		}
	}
	got := c.Rcpt(context.Background(), RcptInfo{Conn: conn, Recipient: "accept@example.test"})
	wantUnavailable(t, got, "echo")
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	hooks := spec("sleepy", "sleepy", "mta", nil)
	hooks.Hooks = []string{"connect"}
	dup := spec("echo", "echo", "mta", nil)
	for _, tc := range []struct {
		specs []Spec
		want  string
	}{
		{[]Spec{spec("nope", "no-such-plugin", "mta", nil)}, "no-such-plugin"},
		{[]Spec{hooks}, `plugin "sleepy": hooks: the plugin does not implement "connect"`},
		{[]Spec{spec("echo", "sleepy", "mda", nil)}, "implements none of the hooks the mda runs (deliver)"},
		{[]Spec{dup, dup}, "two plugins of the mta have this name"},
		{[]Spec{{Name: "x", Daemon: "mta", OnError: "ignore"}}, `on_error: "ignore" is not`},
	} {
		daemon := tc.specs[0].Daemon
		c, err := Start(ctx, tc.specs, Options{Daemon: daemon})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v): err = %v, want %q", tc.specs, err, tc.want)
		}
		if c != nil {
			c.Close()
		}
	}
}

// TestConcurrentCallsThroughACrash: sessions calling one plugin at once
// all get an answer while it crashes and comes back; none hangs.
func TestConcurrentCallsThroughACrash(t *testing.T) {
	s := spec("panicky", "panicky", "mta", nil)
	s.Timeout = 2 * time.Second
	c, _ := startChain(t, "mta", s)
	ctx := context.Background()
	results := make(chan Result, 200)
	for i := range 200 {
		go func() {
			h := header("")
			if i == 50 {
				h = header("", "X-Panic: now")
			}
			results <- c.Data(ctx, TxInfo{Conn: conn}, h, bytes.NewReader(make([]byte, 20000)))
		}()
	}
	counts := map[Action]int{}
	for range 200 {
		select {
		case r := <-results:
			counts[r.Action]++
		case <-time.After(10 * time.Second):
			t.Fatalf("a call hung; answers so far %v", counts)
		}
	}
	if counts[Tempfail] < 1 || counts[Continue]+counts[Tempfail] != 200 {
		t.Errorf("answers %v: want at least the panicking call tempfailed, the rest continued", counts)
	}
	if got := c.Data(ctx, TxInfo{Conn: conn}, header(""), nil); got.Action != Continue {
		t.Errorf("after the storm: %+v", got)
	}
	t.Logf("answers: %d continue, %d tempfail", counts[Continue], counts[Tempfail])
}

func TestAutoMTLS(t *testing.T) {
	log, _ := testLogger("mta")
	c, err := Start(context.Background(), []Spec{spec("echo", "echo", "mta", nil)},
		Options{Daemon: "mta", Log: log, AutoMTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Rcpt(context.Background(), RcptInfo{Conn: conn, Recipient: "accept@example.test"}); got.Action != Accept {
		t.Errorf("with AutoMTLS: %+v", got)
	}
}

// waitUp waits until the chain's first plugin runs in a process other
// than old.
func waitUp(t *testing.T, c *Chain, old int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for st := c.Status()[0]; !st.Up || st.PID == old; st = c.Status()[0] {
		if time.Now().After(deadline) {
			t.Fatalf("plugin not restarted: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Reload puts new plugin processes in place: the next call sees the new
// settings, the old process stops once its calls had their timeout, and
// specs that cannot start leave the chain as it was.
func TestReload(t *testing.T) {
	echo := func(mark string) Spec {
		s := spec("echo", "echo", "mta", map[string]any{"mark": mark})
		s.Timeout = 200 * time.Millisecond
		return s
	}
	c, _ := startChain(t, "mta", echo("old"))
	before := pidOf(t, c, "echo")
	if err := c.Reload(context.Background(), []Spec{echo("new")}); err != nil {
		t.Fatal(err)
	}
	got := c.Data(context.Background(), TxInfo{Conn: conn}, header(""), nil)
	if len(got.Edits) != 1 || got.Edits[0].Value != "new" {
		t.Errorf("after reload: edits %+v, want X-Echo: new", got.Edits)
	}
	if err := waitGone(before); err != nil {
		t.Error(err)
	}
	bad := Spec{Name: "missing", Path: bin("does-not-exist"), Daemon: "mta"}
	if err := c.Reload(context.Background(), []Spec{bad}); err == nil {
		t.Error("a plugin that cannot start was accepted")
	}
	got = c.Data(context.Background(), TxInfo{Conn: conn}, header(""), nil)
	if len(got.Edits) != 1 || got.Edits[0].Value != "new" {
		t.Errorf("after a failed reload: edits %+v, want the running plugin's", got.Edits)
	}
}

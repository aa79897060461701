package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Each daemon killed with SIGKILL comes back, and mail flows again.
func TestSupervisorRestartsKilledChildren(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	for i, name := range []string{"mda", "mta", "msa"} {
		old := s.ChildPID(name)
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		s.WaitLog(`"child":"`+name+`","pid"`, 2, 10*time.Second) // "child ready", then "child restarted"
		if s.ChildPID(name) == old {
			t.Fatalf("%s not restarted", name)
		}
		body := fmt.Sprintf("Subject: after killing %s\r\n\r\nstill here\r\n", name)
		if _, err := submitRetrying(s, Submission{To: []string{demoUser}, Body: body}); err != nil {
			t.Fatalf("after killing %s: %v", name, err)
		}
		s.WaitForMail(demoUser, i+1, 10*time.Second)
	}
}

// submitRetrying resubmits for a few seconds while a restarted daemon
// is still binding its sockets, as a real client retries a 4xx.
func submitRetrying(s *Stack, sub Submission) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		reply, err := s.Submit(sub)
		if err == nil || time.Now().After(deadline) {
			return reply, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A message queued while the MDA is down is delivered once it is back.
func TestQueuedWhileMDADownIsDeliveredLater(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	// Freeze the supervisor so that it cannot bring the MDA back yet.
	sup := s.cmd.Process.Pid
	syscall.Kill(sup, syscall.SIGSTOP)
	thawed := false
	defer func() {
		if !thawed {
			syscall.Kill(sup, syscall.SIGCONT)
		}
	}()
	syscall.Kill(s.ChildPID("mda"), syscall.SIGKILL)
	waitGone(t, "unix", filepath.Join(s.Dir, "var/run/mda.sock"))

	body := "Subject: while down\r\nMessage-ID: <down-1@example.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n\r\nqueued\r\n"
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: body}); err != nil {
		t.Fatalf("submission while the MDA is down: %v", err)
	}
	s.WaitLog(`"message":"delivery deferred"`, 1, 10*time.Second)
	if entries := queuedEnvelopes(t, s); len(entries) != 1 {
		t.Fatalf("queue holds %d messages, want 1", len(entries))
	}
	syscall.Kill(sup, syscall.SIGCONT)
	thawed = true
	got := s.WaitForMail(demoUser, 1, 20*time.Second)[0]
	if string(got) != string(withReturnPath(demoUser, body)) {
		t.Errorf("got %q", got)
	}
}

// waitGone waits until nothing answers on addr ("unix" or "tcp"): the
// daemon was killed, or stopped listening.
func waitGone(t *testing.T, network, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s still answers", addr)
}

// SIGTERM stops every daemon and the supervisor, leaving no process.
func TestStopIsGraceful(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	pids := []int{s.ChildPID("mda"), s.ChildPID("mta"), s.ChildPID("msa")}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	s.WaitLog(`"message":"postline stopped"`, 1, logWait) // a clean stop
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("child %d still running", pid)
		}
	}
}

// A daemon that cannot start (its port is taken) is retried with a
// growing delay, logged as failing, and comes up once the port is free.
func TestSupervisorRetriesDaemonThatCannotStart(t *testing.T) {
	t.Parallel()
	s := &Stack{t: t, log: newStackLog(t)}
	s.Dir = t.TempDir()
	s.Config = filepath.Join(s.Dir, "postline.toml")
	// The blocker keeps the address it found free: no window between
	// finding it and taking it, in which another process could bind it.
	blocker := listenFree(t)
	s.Submission, s.Submissions, s.MTA = blocker.Addr().String(), freeAddr(t), freeAddr(t)
	s.MailRoot = filepath.Join(s.Dir, "var", "mail")
	s.writeConfig(StackConfig{})
	go func() {
		defer blocker.Close()
		// Free the port once the delay has grown: 0.5 s, 1 s, 2 s.
		for i := 0; i < 1000 && !strings.Contains(s.Log(), `"retry_in":2000`); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}()
	s.start()
	if n := strings.Count(s.Log(), `"child":"msa","error"`); n < 3 {
		t.Errorf("msa start failures logged %d times, want >= 3", n)
	}
}

// A hung MDA never blocks intake: with the MDA stopped (SIGSTOP, so its
// socket still accepts connections that get no answer) submissions are
// acknowledged as usual, and each message is delivered once it runs again.
func TestHungMDADoesNotBlockIntake(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	mda := s.ChildPID("mda")
	syscall.Kill(mda, syscall.SIGSTOP)
	thawed := false
	defer func() {
		if !thawed {
			syscall.Kill(mda, syscall.SIGCONT)
		}
	}()
	const n = 5
	for i := range n {
		body := fmt.Sprintf("Subject: while hung %d\r\n\r\nqueued\r\n", i)
		start := time.Now()
		if _, err := s.Submit(Submission{To: []string{demoUser}, Body: body}); err != nil {
			t.Fatalf("submission %d while the MDA hangs: %v", i, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("submission %d took %s: intake waits for the MDA", i, took)
		}
	}
	syscall.Kill(mda, syscall.SIGCONT)
	thawed = true
	s.WaitForMail(demoUser, n, 30*time.Second)
}

// SIGTERM stops intake but lets a transaction in flight finish: a
// client in the middle of DATA still gets its 250, the message survives
// the stop, and the next `postline start` delivers it.
func TestStopFinishesTransactionInFlight(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	c, err := smtp.DialStartTLS(s.Submission, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", demoUser, demoPassword)); err != nil {
		t.Fatal(err)
	}
	// Freeze the MDA: the message must be queued, not delivered, when
	// the stack stops.
	mda := s.ChildPID("mda")
	syscall.Kill(mda, syscall.SIGSTOP)
	defer syscall.Kill(mda, syscall.SIGCONT)
	w, err := startData(c, demoUser, []string{demoUser})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: in flight\r\n\r\nfirst half\r\n"))
	s.cmd.Process.Signal(syscall.SIGTERM)
	waitGone(t, "tcp", s.Submission) // the MSA has stopped listening
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: "Subject: late\r\n\r\nx\r\n"}); err == nil {
		t.Error("a new submission was taken after SIGTERM")
	}
	w.Write([]byte("second half\r\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("the transaction in flight at SIGTERM: %v", err)
	}
	c.Quit()
	// The MTA stops without waiting for the frozen MDA; then the MDA may
	// go, and the message is still queued.
	s.WaitLog(`"message":"mta stopped"`, 1, 20*time.Second)
	syscall.Kill(mda, syscall.SIGCONT)
	s.cmd.Wait()
	if entries := queuedEnvelopes(t, s); len(entries) != 1 {
		t.Errorf("%d messages queued at the stop, want the one in flight", len(entries))
	}

	s.log = newStackLog(t) // a new log for the new run
	s.start()
	got := string(s.WaitForMail(demoUser, 1, 20*time.Second)[0])
	if !strings.Contains(got, "Subject: in flight") || !strings.HasSuffix(got, "first half\nsecond half\n") {
		t.Errorf("delivered after the restart: %q", got)
	}
}

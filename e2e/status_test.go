package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// status runs `postline status --json` and decodes it.
func status(t *testing.T, s *Stack) statusReport {
	t.Helper()
	var st statusReport
	if err := json.Unmarshal([]byte(s.Postline("", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// statusReport is the part of cmd/postline's Status the test reads.
type statusReport struct {
	Daemons []struct {
		Name     string
		PID      int
		Restarts int
		Problems []struct{ Level, Message string }
	}
	Queue *struct {
		Messages  int
		Delivered uint64
		Queued    uint64
	}
	Certificate *struct{ Subject, Error string }
	Problems    []struct{ Level, Message string }
}

func (st statusReport) daemon(name string) (pid, restarts int, problems string) {
	for _, d := range st.Daemons {
		if d.Name == name {
			for _, p := range d.Problems {
				problems += p.Level + " " + p.Message + "\n"
			}
			return d.PID, d.Restarts, problems
		}
	}
	return 0, 0, ""
}

// `postline status` shows each daemon's pid and restarts, the queue and
// what was delivered, the certificate, and the last warnings of the
// daemons and of the supervisor; it says what to do when postline is
// not running.
func TestStatus(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: "Subject: one\r\n\r\nx\r\n"}); err != nil {
		t.Fatal(err)
	}
	s.WaitForMail(demoUser, 1, 10*time.Second)
	waitSpoolEmpty(t, s, 10*time.Second)
	st := status(t, s)
	for _, name := range []string{"mda", "mta", "msa"} {
		if pid, _, _ := st.daemon(name); pid != s.ChildPID(name) {
			t.Errorf("%s: pid %d, want %d", name, pid, s.ChildPID(name))
		}
	}
	if q := st.Queue; q == nil || q.Messages != 0 || q.Delivered != 1 || q.Queued != 1 {
		t.Errorf("queue %+v, want 1 queued and delivered, none left", q)
	}
	if c := st.Certificate; c == nil || c.Error != "" || !strings.Contains(c.Subject, "mail.example.test") {
		t.Errorf("certificate %+v", c)
	}

	// A wrong password is a warning of the MSA's; a killed MTA is
	// restarted, and the supervisor's warning says so.
	if _, err := s.Submit(Submission{Pass: "wrong", To: []string{demoUser}, Body: "x"}); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	syscall.Kill(s.ChildPID("mta"), syscall.SIGKILL)
	// Ready again, not only restarted: the queue figures come from the
	// new MTA's admin socket.
	waitLogFor(t, s, "the restarted MTA ready", 10*time.Second, func(log string) bool {
		return strings.Contains(log, `"child restarted"`) && strings.Count(log, `"message":"mta ready"`) >= 2
	})
	st = status(t, s)
	if _, _, problems := st.daemon("msa"); !strings.Contains(problems, "warn authentication failed") {
		t.Errorf("msa's problems: %q, want the failed authentication", problems)
	}
	if _, restarts, _ := st.daemon("mta"); restarts != 1 {
		t.Errorf("mta restarts %d, want 1", restarts)
	}
	if len(st.Problems) == 0 || st.Problems[0].Message != "child exited" {
		t.Errorf("the supervisor's problems %+v, want the MTA's exit", st.Problems)
	}
	human := s.Postline("", "status")
	for _, want := range []string{"mta ", "since the MTA started", "certificate: CN=mail.example.test", "authentication failed", "child exited"} {
		if !strings.Contains(human, want) {
			t.Errorf("status does not say %q:\n%s", want, human)
		}
	}

	if out, err := runPostline(s.Config, "", "status", "--yaml"); err == nil || !strings.Contains(out, `unexpected "--yaml"; the only flag is --json`) {
		t.Errorf("status --yaml: %v %q", err, out)
	}
	s.stop()
	out, err := runPostline(s.Config, "", "status")
	var exit interface{ ExitCode() int }
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "postline is not running") {
		t.Errorf("status of a stopped postline: %v %q", err, out)
	}
}

package mda

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/durable"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func openLedger(t *testing.T, dir string, now time.Time) *Ledger {
	t.Helper()
	l, err := OpenLedger(durable.OS{}, dir, 5*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Records survive a restart; a last line torn by a crash is dropped, and
// what is appended after it is read back whole.
func TestLedgerSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, t0)
	if err := l.Begin("Q1", "alice@example.test", "/m/alice", "k1", t0); err != nil {
		t.Fatal(err)
	}
	l.Done("Q1", "alice@example.test", t0)
	l.Begin("Q1", "bob@example.test", "/m/bob", "k2", t0)
	l.Close()
	f, _ := os.OpenFile(filepath.Join(dir, ledgerCurrent), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"op":"done","id":"Q1","rcpt":"bob@exa`) // torn by a crash
	f.Close()

	l = openLedger(t, dir, t0.Add(time.Hour))
	if c, ok := l.Find("Q1", "alice@example.test"); !ok || !c.Done || c.Name != "k1" || c.Dir != "/m/alice" {
		t.Errorf("alice: %+v %v", c, ok)
	}
	if c, ok := l.Find("Q1", "bob@example.test"); !ok || c.Done || c.Name != "k2" {
		t.Errorf("bob: %+v %v, want begun, not done", c, ok)
	}
	l.Done("Q1", "bob@example.test", t0.Add(time.Hour))
	l.Close()
	l = openLedger(t, dir, t0.Add(2*time.Hour))
	if c, _ := l.Find("Q1", "bob@example.test"); !c.Done {
		t.Errorf("bob's done record after the torn line was lost: %+v", c)
	}
}

// Records older than the lifetime are forgotten, and the log files do
// not grow for ever: there are at most two generations.
func TestLedgerForgetsAfterLifetime(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, t0)
	l.Begin("OLD", "a@example.test", "/m/a", "k1", t0)
	day := 24 * time.Hour
	l.Begin("MID", "a@example.test", "/m/a", "k2", t0.Add(4*day))
	l.Begin("NEW", "a@example.test", "/m/a", "k3", t0.Add(6*day)) // rotates
	if _, ok := l.Find("OLD", "a@example.test"); ok {
		t.Error("a record past the lifetime is still known")
	}
	if _, ok := l.Find("MID", "a@example.test"); !ok {
		t.Error("a record within the lifetime is forgotten at rotation")
	}
	l.Close()
	l = openLedger(t, dir, t0.Add(6*day))
	_, old := l.Find("OLD", "a@example.test")
	_, mid := l.Find("MID", "a@example.test")
	_, cur := l.Find("NEW", "a@example.test")
	if old || !mid || !cur {
		t.Errorf("after restart: old %v mid %v new %v", old, mid, cur)
	}
	l.Begin("LATER", "a@example.test", "/m/a", "k4", t0.Add(12*day)) // rotates again
	names := dirNames(t, dir)
	if len(names) != 2 {
		t.Errorf("ledger files %v, want two generations", names)
	}
}

// ledgerSession is an MDA session for alice with a ledger, as the MTA
// would open it for queue ID Q1.
func ledgerSession(t *testing.T) (*session, string) {
	md, root := newMaildir(t, "mx.example.test")
	l := openLedger(t, t.TempDir(), time.Now())
	return &session{b: &Backend{Maildir: md, Ledger: l, Log: zerolog.Nop()}, from: "bob@example.test", queueID: "Q1"}, root
}

func deliverCopy(t *testing.T, s *session, root string) *smtp.SMTPError {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "msg-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("Subject: once\n\nonly once\n")
	reply, _ := s.deliverOne(f, recipient{"alice@example.test", filepath.Join(root, "example.test", "alice")}).(*smtp.SMTPError)
	return reply
}

// The MTA delivering a message again (it crashed after the MDA's 250)
// gets 250 and the mailbox keeps one copy.
func TestRedeliveryWritesNoSecondCopy(t *testing.T) {
	s, root := ledgerSession(t)
	first := deliverCopy(t, s, root)
	again := deliverCopy(t, s, root)
	if first == nil || first.Code != 250 || again == nil || again.Code != 250 || !strings.Contains(again.Message, "delivered before") {
		t.Fatalf("replies %v, %v", first, again)
	}
	if names := dirNames(t, filepath.Join(root, "example.test", "alice", "new")); len(names) != 1 {
		t.Errorf("new/ holds %v, want one copy", names)
	}
	s.queueID = "Q2" // another message is another copy
	deliverCopy(t, s, root)
	if names := dirNames(t, filepath.Join(root, "example.test", "alice", "new")); len(names) != 2 {
		t.Errorf("new/ holds %v, want two", names)
	}
}

// A crash between the begin record and the done record is settled by
// looking in the Maildir: the copy a mail reader already moved to cur/
// counts, a copy that never reached new/ is written.
func TestRedeliveryAfterCrashMidCopy(t *testing.T) {
	s, root := ledgerSession(t)
	alice := filepath.Join(root, "example.test", "alice")
	os.MkdirAll(filepath.Join(alice, "cur"), 0o700)
	os.WriteFile(filepath.Join(alice, "cur", "k1:2,S"), []byte("read\n"), 0o600)
	s.b.Ledger.Begin("Q1", "alice@example.test", alice, "k1", time.Now())
	if reply := deliverCopy(t, s, root); reply == nil || reply.Code != 250 || !strings.Contains(reply.Message, "before") {
		t.Errorf("copy in cur/: reply %v", reply)
	}
	if _, err := os.Stat(filepath.Join(alice, "new")); err == nil && len(dirNames(t, filepath.Join(alice, "new"))) > 0 {
		t.Error("a second copy was written")
	}

	s.queueID = "Q2"
	s.b.Ledger.Begin("Q2", "alice@example.test", alice, "never-written", time.Now())
	if reply := deliverCopy(t, s, root); reply == nil || reply.Code != 250 || strings.Contains(reply.Message, "before") {
		t.Errorf("copy never written: reply %v", reply)
	}
	if names := dirNames(t, filepath.Join(alice, "new")); len(names) != 1 {
		t.Errorf("new/ holds %v, want the one copy", names)
	}
}

// syncDirFailsFS is the real filesystem whose folder fsyncs fail.
type syncDirFailsFS struct{ durable.OS }

func (syncDirFailsFS) SyncDir(dir string) error {
	return &os.PathError{Op: "fsync", Path: dir, Err: syscall.EIO}
}

// A rotation that fails half-way leaves a log that cannot be trusted:
// every later record fails with durable.ErrFlushFailed, on which
// postline-mda restarts and opens the ledger afresh.
func TestLedgerRotationFailureStopsRecords(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLedger(durable.OS{}, dir, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.fs = syncDirFailsFS{}
	for i, at := range []time.Time{t0.Add(2 * time.Hour), t0.Add(3 * time.Hour)} {
		if err := l.Begin("Q1", "alice@example.test", "alice", "key", at); !errors.Is(err, durable.ErrFlushFailed) {
			t.Errorf("record %d after a failed rotation: err = %v, want ErrFlushFailed", i, err)
		}
	}
}

package mda

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postline/reply"
)

// A mailbox holds at most Limit bytes, counting its Maildir++ folders and
// the copies written since it was last measured; a copy that does not
// fit is refused 452 4.2.2, and a mailbox emptied by its reader takes
// mail again once measured anew.
func TestQuota(t *testing.T) {
	box := filepath.Join(t.TempDir(), "alice")
	for _, sub := range []string{"cur", ".Junk/new"} {
		os.MkdirAll(filepath.Join(box, sub), 0o700)
	}
	os.WriteFile(filepath.Join(box, "cur", "a:2,S"), []byte(strings.Repeat("x", 400)), 0o600)
	os.WriteFile(filepath.Join(box, ".Junk", "new", "b"), []byte(strings.Repeat("x", 400)), 0o600)
	q := &Quota{Limit: 1000}
	now := time.Now()
	if err := q.Reserve(box, 150, now); err != nil {
		t.Fatalf("150 bytes into 800 of 1000: %v", err)
	}
	if err := q.Reserve(box, 100, now); err != reply.MailboxFull {
		t.Errorf("100 bytes into 950 of 1000: %v, want 452 4.2.2", err)
	}
	q.Release(box, 150)
	if err := q.Reserve(box, 100, now); err != nil {
		t.Errorf("after a release: %v", err)
	}
	os.Remove(filepath.Join(box, "cur", "a:2,S"))
	if err := q.Reserve(box, 500, now.Add(usageTTL+time.Second)); err != nil {
		t.Errorf("after the reader deleted mail: %v", err)
	}
	if err := (&Quota{}).Reserve(box, 1<<40, now); err != nil {
		t.Errorf("no limit: %v", err)
	}
	if err := q.Reserve(filepath.Join(t.TempDir(), "new-user"), 999, now); err != nil {
		t.Errorf("a mailbox not created yet: %v", err)
	}
}

// Through a session: the recipient over quota gets 452 4.2.2 and no
// copy; the ledger records nothing for it.
func TestDeliveryOverQuota(t *testing.T) {
	s, root := ledgerSession(t)
	s.b.Quota = &Quota{Limit: 10}
	reply := deliverCopy(t, s, root)
	if reply == nil || reply.Code != 452 || reply.EnhancedCode[1] != 2 || reply.EnhancedCode[2] != 2 {
		t.Errorf("reply %v, want 452 4.2.2", reply)
	}
	if _, ok := s.b.Ledger.Find("Q1", "alice@example.test"); ok {
		t.Error("a refused copy is in the ledger")
	}
	s.b.Quota.Limit = 1 << 20
	if reply := deliverCopy(t, s, root); reply == nil || reply.Code != 250 {
		t.Errorf("within quota: %v", reply)
	}
}

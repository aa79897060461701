package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postline/lmtp"
)

// The running MDA writes one copy per queue ID and recipient: the MTA
// handing it the same message again, as it does after a crash between
// the MDA's 250 and its own record of it, is answered 250 with no second
// copy, also after the MDA itself restarted. Another queue ID is another
// message.
func TestMDADeliversOncePerQueueID(t *testing.T) {
	t.Parallel()
	s := StartStack(t)
	socket := filepath.Join(s.Dir, "var", "run", "mda.sock")
	deliver := func(queueID string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := lmtp.Deliver(ctx, socket, "test", lmtp.Message{QueueID: queueID, From: "x@example.org",
			Recipients: []string{demoUser}, Data: strings.NewReader("Subject: once\r\n\r\nbody\r\n")})
		if err != nil || res[demoUser] != nil {
			t.Fatalf("delivery of %s: %v, %v", queueID, res, err)
		}
	}
	deliver("06K0AAAAAAAAAAAA")
	deliver("06K0AAAAAAAAAAAA")
	s.WaitLog(`"delivered before: no second copy"`, 1, 5*time.Second)

	pid := s.ChildPID("mda")
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
	s.WaitLog(`"mda ready"`, 2, 10*time.Second)
	deliver("06K0AAAAAAAAAAAA")
	s.WaitLog(`"delivered before: no second copy"`, 2, 5*time.Second)
	deliver("06K0BBBBBBBBBBBB")
	entries, err := os.ReadDir(filepath.Join(s.Mailbox(demoUser), "new"))
	if err != nil || len(entries) != 2 {
		t.Errorf("new/ holds %d files (%v), want 2: one per queue ID", len(entries), err)
	}
}

package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// smallDisk mounts a tmpfs of size bytes on dir and fills it but for
// free bytes with a file, which it returns: removing it gives the space
// back. It needs root; elsewhere the test is skipped (or fails under
// POSTLINE_REQUIRE_INTEROP=1, so CI cannot pass by skipping).
func smallDisk(t *testing.T, dir string, size, free int64) (filler string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10)+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		interopMissing(t, "cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	filler = filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, size-free), 0o600); err != nil {
		t.Fatal(err)
	}
	return filler
}

func bigMessage(subject string, kib int) string {
	return "Subject: " + subject + "\r\n\r\n" + strings.Repeat(strings.Repeat("x", 1022)+"\r\n", kib)
}

// A full spool, and then a read-only one: the submission is answered
// 452 4.3.1, nothing is acknowledged and nothing half-written stays;
// once the spool can take it the same message is queued and delivered.
func TestDiskFullSpool(t *testing.T) {
	t.Parallel()
	var filler string
	s := StartStackWith(t, StackConfig{Prepare: func(dir string) {
		filler = smallDisk(t, filepath.Join(dir, "var", "queue"), 1<<20, 200<<10)
	}})
	_, err := s.Submit(Submission{To: []string{demoUser}, Body: bigMessage("full spool", 400)})
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 452 || serr.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("submission to a full spool: %v, want 452 4.3.1", err)
	}
	if envs := queuedEnvelopes(t, s); len(envs) != 0 {
		t.Errorf("the queue holds %d messages after the refusal", len(envs))
	}
	for _, sub := range []string{"env", "msg", "tmp"} {
		if entries, _ := os.ReadDir(filepath.Join(s.Dir, "var", "queue", sub)); len(entries) != 0 {
			t.Errorf("queue/%s holds %d files after the refusal", sub, len(entries))
		}
	}
	os.Remove(filler)
	// The spool's tmp/ read-only (a read-only bind mount of itself), and
	// a message large enough for a file of its own, which is written
	// there first: the MTA keeps its log open for writing, so the whole
	// spool cannot be remounted.
	tmp := filepath.Join(s.Dir, "var", "queue", "tmp")
	for _, args := range [][]string{{"--bind", tmp, tmp}, {"-o", "remount,bind,ro", tmp}} {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v %s", args, err, out)
		}
	}
	_, err = s.Submit(Submission{To: []string{demoUser}, Body: bigMessage("read-only spool", 1100)})
	if !errors.As(err, &serr) || serr.Code != 452 || serr.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Errorf("submission to a read-only spool: %v, want 452 4.3.1", err)
	}
	if out, err := exec.Command("umount", tmp).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v %s", tmp, err, out)
	}
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: bigMessage("full spool", 400)}); err != nil {
		t.Fatalf("with space again: %v", err)
	}
	s.WaitForMail(demoUser, 1, 10*time.Second)
}

// A full mail_root: the MDA answers 452 4.3.1, the acknowledged messages
// stay queued, and every one of them is delivered, once, when space
// returns.
func TestDiskFullMailRoot(t *testing.T) {
	t.Parallel()
	var filler string
	s := StartStackWith(t, StackConfig{Prepare: func(dir string) {
		filler = smallDisk(t, filepath.Join(dir, "var", "mail"), 1<<20, 100<<10)
	}})
	const n = 5
	for i := range n {
		if _, err := s.Submit(Submission{To: []string{demoUser}, Body: bigMessage("full mailbox "+strconv.Itoa(i), 200)}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	s.WaitLog(`452 4.3.1`, 1, 10*time.Second)
	if len(queuedEnvelopes(t, s)) == 0 {
		t.Error("no message waits in the queue while the disk is full")
	}
	os.Remove(filler)
	msgs := s.WaitForMail(demoUser, n, 20*time.Second)
	seen := map[string]int{}
	for _, m := range msgs {
		subject, _, _ := strings.Cut(string(m[strings.Index(string(m), "Subject: "):]), "\n")
		seen[subject]++
	}
	if len(seen) != n {
		t.Errorf("delivered subjects %v, want %d different ones once each", seen, n)
	}
	waitSpoolEmpty(t, s, 10*time.Second) // the MTA is done: a second copy would be there by now
	if entries, _ := os.ReadDir(filepath.Join(s.Mailbox(demoUser), "new")); len(entries) != n {
		t.Errorf("new/ holds %d files, want %d", len(entries), n)
	}
}

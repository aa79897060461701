package queue_test

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postline/durable"
	"postline/queue"
)

func openSmall(t *testing.T, dir string) *queue.Spool {
	t.Helper()
	s, err := queue.OpenWith(dir, durable.OS{}, queue.Options{SegmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func store(t *testing.T, s *queue.Spool, data string) *queue.Envelope {
	t.Helper()
	env := newEnvelope(time.Now(), "a@example.test", "b@example.test")
	if err := s.Store(env, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return env
}

// Replay gives each message's latest envelope, drops removed ones, and
// the data reads back as stored.
func TestLogReplaysUpdatesAndRemovals(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, durable.OS{})
	kept, updated, removed := store(t, s, "one\r\n"), store(t, s, "two\r\n"), store(t, s, "three\r\n")
	updated.Recipients[0].State, updated.Recipients[0].Attempts = queue.Delivered, 1
	if err := s.Update(updated); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(removed.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openSpool(t, dir, durable.OS{})
	envs, err := s.Recover()
	if err != nil || len(envs) != 2 {
		t.Fatalf("Recover = %v, %v; want two", envs, err)
	}
	byID := map[string]*queue.Envelope{envs[0].ID: envs[0], envs[1].ID: envs[1]}
	if byID[kept.ID] == nil || byID[updated.ID] == nil {
		t.Fatalf("Recover = %v, want %s and %s", envs, kept.ID, updated.ID)
	}
	if got := byID[updated.ID].Recipients[0]; got.State != queue.Delivered || got.Attempts != 1 {
		t.Errorf("updated recipient = %+v", got)
	}
	if got := readMessage(t, s, updated.ID); string(got) != "two\r\n" {
		t.Errorf("data = %q", got)
	}
	if ok, _ := s.Queued(removed.ID); !ok || s.Has(removed.ID) {
		t.Errorf("removed message: Queued %v, Has %v; want queued once, not in the spool", ok, s.Has(removed.ID))
	}
}

// segments lists the log's segment files.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	return names(t, filepath.Join(dir, "log"))
}

// Segments whose messages all left the queue are deleted.
func TestLogFreesDeadSegments(t *testing.T) {
	dir := t.TempDir()
	s := openSmall(t, dir)
	var envs []*queue.Envelope
	for range 30 {
		envs = append(envs, store(t, s, strings.Repeat("x", 1000)))
	}
	if n := len(segments(t, dir)); n < 5 {
		t.Fatalf("%d segments for 30 KB in 4 KiB segments", n)
	}
	for _, env := range envs {
		if err := s.Remove(env.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := segments(t, dir); len(n) != 1 {
		t.Errorf("segments after every message left: %q, want the current one", n)
	}
}

// A message deferred for long does not keep the segments after its own:
// once the log is mostly dead it is moved, and keeps its latest state
// and its data across a restart.
func TestLogMovesLongDeferredMessage(t *testing.T) {
	dir := t.TempDir()
	s := openSmall(t, dir)
	deferred := store(t, s, "deferred\r\n")
	deferred.Recipients[0].Attempts = 3
	if err := s.Update(deferred); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		env := store(t, s, strings.Repeat("y", 1000))
		if err := s.Remove(env.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := segments(t, dir); len(n) > 3 {
		t.Errorf("segments: %q; the deferred message keeps them all", n)
	}
	s.Close()
	s = openSmall(t, dir)
	envs, err := s.Recover()
	if err != nil || len(envs) != 1 || envs[0].ID != deferred.ID || envs[0].Recipients[0].Attempts != 3 {
		t.Fatalf("Recover = %v, %v; want %s with its update", envs, err, deferred.ID)
	}
	if got := readMessage(t, s, deferred.ID); string(got) != "deferred\r\n" {
		t.Errorf("data = %q", got)
	}
}

// A message larger than what the log holds inline gets a file of its
// own, read back whole and deleted with the message.
func TestLargeMessageHasAFileOfItsOwn(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, durable.OS{})
	big := strings.Repeat("0123456789abcdef", 1<<16+1) // just over 1 MiB
	env := store(t, s, big)
	if env.Size != int64(len(big)) {
		t.Errorf("Size = %d, want %d", env.Size, len(big))
	}
	if _, err := os.Stat(filepath.Join(dir, "msg", env.ID)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openSpool(t, dir, durable.OS{})
	if envs, err := s.Recover(); err != nil || len(envs) != 1 {
		t.Fatalf("Recover = %v, %v", envs, err)
	}
	if got := readMessage(t, s, env.ID); !bytes.Equal(got, []byte(big)) {
		t.Errorf("read back %d bytes, want %d", len(got), len(big))
	}
	if err := s.Remove(env.ID); err != nil {
		t.Fatal(err)
	}
	if n := names(t, filepath.Join(dir, "msg")); len(n) != 0 {
		t.Errorf("msg/ after Remove: %q", n)
	}
}

// A queue written by a version before the log (env/ID and msg/ID files)
// is moved into the log at Recover and keeps every message.
func TestRecoverMovesOlderQueueIntoTheLog(t *testing.T) {
	dir := t.TempDir()
	openSpool(t, dir, durable.OS{}).Close()
	env := newEnvelope(time.Now(), "a@example.test")
	data := []byte("Subject: old\r\n\r\nbody\r\n")
	env.Size, env.Checksum = int64(len(data)), crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	encoded, _ := json.Marshal(env)
	os.WriteFile(filepath.Join(dir, "msg", env.ID), data, 0o600)
	os.WriteFile(filepath.Join(dir, "env", env.ID), encoded, 0o600)
	for range 2 { // moved, then found in the log
		s := openSpool(t, dir, durable.OS{})
		envs, err := s.Recover()
		if err != nil || len(envs) != 1 || envs[0].ID != env.ID {
			t.Fatalf("Recover = %v, %v; want %s", envs, err, env.ID)
		}
		if got := readMessage(t, s, env.ID); !bytes.Equal(got, data) {
			t.Errorf("data = %q", got)
		}
		if n := names(t, filepath.Join(dir, "env")); len(n) != 0 {
			t.Errorf("env/ after Recover: %q", n)
		}
		s.Close()
	}
}

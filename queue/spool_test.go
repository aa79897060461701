package queue_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postline/durable"
	"postline/queue"
)

var errInjected = errors.New("injected failure")

// faultFS is the real filesystem with chosen steps failing, to check what
// a failed Store leaves behind.
type faultFS struct {
	durable.OS
	writeErr    error                  // returned by every file write when set
	failCreate  func(name string) bool // CreateExcl fails for these paths
	failSyncDir func(dir string) bool  // SyncDir fails for these folders
	failSyncFS  bool                   // SyncFS fails
	failSync    bool                   // a file's fsync fails
}

func (f *faultFS) SyncFS(dir string) error {
	if f.failSyncFS {
		return errInjected
	}
	return f.OS.SyncFS(dir)
}

// dirOnlyFS hides SyncFS: the spool then fsyncs files and folders.
type dirOnlyFS struct{ durable.FS }

func (f *faultFS) CreateExcl(name string, perm os.FileMode) (durable.File, error) {
	if f.failCreate != nil && f.failCreate(name) {
		return nil, errInjected
	}
	file, err := f.OS.CreateExcl(name, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) OpenAppend(name string, perm os.FileMode) (durable.File, error) {
	file, err := f.OS.OpenAppend(name, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) SyncDir(dir string) error {
	if f.failSyncDir != nil && f.failSyncDir(dir) {
		return errInjected
	}
	return f.OS.SyncDir(dir)
}

type faultFile struct {
	durable.File
	fs *faultFS
}

// Write writes half of p before failing, as a disk filling up would.
func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.writeErr; err != nil {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: "spool file", Err: err}
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if f.fs.failSync {
		return errInjected
	}
	return f.File.Sync()
}

func openSpool(t *testing.T, dir string, fs durable.FS) *queue.Spool {
	t.Helper()
	s, err := queue.Open(dir, fs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newEnvelope returns an envelope as the MTA makes one at time at.
func newEnvelope(at time.Time, rcpts ...string) *queue.Envelope {
	env := &queue.Envelope{ID: queue.NewID(at), From: "sender@example.org",
		AuthUser: "sender@example.org", Received: at.UTC().Truncate(time.Millisecond)}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, &queue.Recipient{Address: r, State: queue.Pending})
	}
	return env
}

// names lists a folder of the spool.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func recoverAll(t *testing.T, dir string) []*queue.Envelope {
	t.Helper()
	envs, err := openSpool(t, dir, durable.OS{}).Recover()
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func readMessage(t *testing.T, s *queue.Spool, id string) []byte {
	t.Helper()
	f, err := s.OpenMessage(id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoreThenRecover(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, durable.OS{})
	msg := []byte("Subject: hi\r\n\r\nbinary \x00\xff and CRLF\r\n.\r\n")
	env := newEnvelope(time.Now(), "a@example.test", "b@example.net")
	env.Body8Bit = true
	if err := s.Store(env, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if env.Size != int64(len(msg)) {
		t.Errorf("Size = %d, want %d", env.Size, len(msg))
	}

	// A fresh Open stands for a restart after a crash.
	envs := recoverAll(t, dir)
	if len(envs) != 1 {
		t.Fatalf("Recover returned %d envelopes, want 1", len(envs))
	}
	got := envs[0]
	if got.ID != env.ID || got.From != env.From || got.AuthUser != env.AuthUser ||
		!got.Received.Equal(env.Received) || got.Size != env.Size || !got.Body8Bit ||
		len(got.Recipients) != 2 || *got.Recipients[1] != *env.Recipients[1] {
		t.Errorf("recovered %+v, stored %+v", got, env)
	}
	if b := readMessage(t, s, env.ID); !bytes.Equal(b, msg) {
		t.Errorf("message bytes = %q, want %q", b, msg)
	}
}

func TestUpdateSeenByRecover(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, durable.OS{})
	env := newEnvelope(time.Now(), "a@example.test", "b@example.test")
	if err := s.Store(env, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	next := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	env.Recipients[0].State = queue.Delivered
	env.Recipients[1].Attempts, env.Recipients[1].NextAttempt = 2, next
	env.Recipients[1].LastError = "451 4.3.0 try later"
	if err := s.Update(env); err != nil {
		t.Fatal(err)
	}
	got := recoverAll(t, dir)[0]
	r0, r1 := got.Recipients[0], got.Recipients[1]
	if r0.State != queue.Delivered || r1.State != queue.Pending || r1.Attempts != 2 ||
		!r1.NextAttempt.Equal(next) || r1.LastError != "451 4.3.0 try later" {
		t.Errorf("recovered recipients %+v %+v", r0, r1)
	}
	if n := names(t, filepath.Join(dir, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ not empty after Update: %q", n)
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, durable.OS{})
	env := newEnvelope(time.Now(), "a@example.test")
	if err := s.Store(env, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(env.ID); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"env", "msg", "tmp"} {
		if n := names(t, filepath.Join(dir, sub)); len(n) != 0 {
			t.Errorf("%s/ not empty after Remove: %q", sub, n)
		}
	}
	// Removing again (a retry after a crash) is not an error.
	if err := s.Remove(env.ID); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// Queued is true from Store on, also after Remove, and false for a
// message whose envelope was never written.
func TestQueued(t *testing.T) {
	s := openSpool(t, t.TempDir(), durable.OS{})
	now := time.Now()
	id, other := queue.NewID(now), queue.NewID(now)
	if q, err := s.Queued(id); q || err != nil {
		t.Errorf("before Store: %v %v", q, err)
	}
	if err := s.Store(&queue.Envelope{ID: id}, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"stored", "removed"} {
		if q, err := s.Queued(id); !q || err != nil {
			t.Errorf("%s: %v %v", stage, q, err)
		}
		s.Remove(id)
	}
	if q, _ := s.Queued(other); q {
		t.Error("an ID never stored is queued")
	}
}

// A Store that a failed flush ended is reported (the MTA restarts on
// it), as is every one after it, which the spool does not flush again:
// the pages of the first may be lost for good (fsyncgate).
func TestStoreFlushFailureIsReported(t *testing.T) {
	fs := &faultFS{failSync: true}
	s := openSpool(t, t.TempDir(), &durable.Batched{FS: fs})
	var reported []error
	s.OnFlushFailure(func(err error) { reported = append(reported, err) })
	for i := range 2 {
		id := queue.NewID(time.Now())
		err := s.Store(&queue.Envelope{ID: id, Recipients: []*queue.Recipient{{Address: "a@example.test", State: queue.Pending}}},
			strings.NewReader("x\r\n"))
		if !errors.Is(err, durable.ErrFlushFailed) {
			t.Fatalf("store %d: err = %v, want ErrFlushFailed", i, err)
		}
		if s.Has(id) {
			t.Errorf("store %d failed but left its files", i)
		}
		fs.failSync = false // the next flush would succeed; it must not be trusted
	}
	if len(reported) != 2 || !errors.Is(reported[0], errInjected) {
		t.Errorf("reported %v, want the failed flush, then the store after it", reported)
	}
}

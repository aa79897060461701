package durable

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent callers share flushes, and none returns before a flush
// that began after its own write has finished.
func TestGroupCommit(t *testing.T) {
	var g Group
	var writes, covered, flushes atomic.Int64
	flush := func() error {
		n := writes.Load() // what this flush makes durable
		flushes.Add(1)
		time.Sleep(2 * time.Millisecond)
		for {
			c := covered.Load()
			if n <= c || covered.CompareAndSwap(c, n) {
				return nil
			}
		}
	}
	const callers = 200
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			mine := writes.Add(1)
			if err := g.Do(flush); err != nil {
				t.Error(err)
			}
			if covered.Load() < mine {
				t.Errorf("write %d acknowledged before a flush covered it", mine)
			}
		})
	}
	wg.Wait()
	if n := flushes.Load(); n >= callers/2 {
		t.Errorf("%d flushes for %d callers: no batching", n, callers)
	}
	t.Logf("%d callers, %d flushes", callers, flushes.Load())
}

// A failed flush fails the callers it served, and every later caller:
// the kernel may have dropped pages written before it (fsyncgate), which
// a later successful flush would not bring back.
func TestGroupCommitError(t *testing.T) {
	var g Group
	bad := errors.New("fsync: input/output error")
	if err := g.Do(func() error { return bad }); !errors.Is(err, bad) || !errors.Is(err, ErrFlushFailed) {
		t.Errorf("got %v, want the flush's error marked ErrFlushFailed", err)
	}
	ran := false
	err := g.Do(func() error { ran = true; return nil })
	if !errors.Is(err, ErrFlushFailed) || ran {
		t.Errorf("after a failed flush: err = %v, flush ran: %v; want ErrFlushFailed without a flush", err, ran)
	}
}

// The same holds across folders: a failed fsync of one fails the next
// fsync of any, since the pages may be lost whichever folder is synced.
func TestFoldersFailForGood(t *testing.T) {
	var f Folders
	bad := errors.New("fsync: input/output error")
	if err := f.Sync("a", func(string) error { return bad }); !errors.Is(err, bad) {
		t.Errorf("got %v", err)
	}
	for _, dir := range []string{"a", "b"} {
		if err := f.Sync(dir, func(string) error { return nil }); !errors.Is(err, ErrFlushFailed) {
			t.Errorf("sync of %s after a failed flush: err = %v, want ErrFlushFailed", dir, err)
		}
	}
}

// Folders keeps no state for a folder once nobody syncs it.
func TestFoldersForget(t *testing.T) {
	var f Folders
	for _, dir := range []string{"a", "b", "a"} {
		f.Sync(dir, func(string) error { return nil })
	}
	if len(f.groups) != 0 {
		t.Errorf("%d folders kept", len(f.groups))
	}
}

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

// A failed flush fails the callers it served; the next one may succeed.
func TestGroupCommitError(t *testing.T) {
	var g Group
	bad := errors.New("fsync: input/output error")
	if err := g.Do(func() error { return bad }); err != bad {
		t.Errorf("got %v", err)
	}
	if err := g.Do(func() error { return nil }); err != nil {
		t.Errorf("after a failed flush: %v", err)
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

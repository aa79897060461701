package durable

import (
	"errors"
	"fmt"
	"sync"
)

// Group lets concurrent callers share one flush (group commit): Do
// returns once a flush that started after the call has finished, and
// while one flush runs, every caller that arrives meanwhile waits for the
// next one, which then serves them all. Nothing is acknowledged before a
// flush covering it has finished, so no fsync is dropped; under load
// there are just fewer of them.
//
// A failed flush fails every later Do as well (ErrFlushFailed): after
// a failed fsync Linux may have dropped the dirty pages it could not
// write and reports the error once, so a later flush that succeeds
// proves nothing about writes made before (PostgreSQL's "fsyncgate",
// 2018). Whoever wrote before the failure may be waiting for the next
// flush; only a restart that reads back what is on disk is safe.
type Group struct {
	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	started uint64 // flushes begun
	done    uint64 // flushes finished
	err     error  // of the last finished flush
	failed  error  // the first flush that failed, for good
}

// ErrFlushFailed marks the error of a failed flush, and of every flush
// after it, which the Group does not even try.
var ErrFlushFailed = errors.New("durable: flush failed")

// failedBefore is the error of a flush not tried because first failed.
func failedBefore(first error) error {
	return fmt.Errorf("%w earlier (%v); restart to recover from what is on disk", ErrFlushFailed, first)
}

// latch keeps the first failed flush, for good (see Group): Folders and
// Batched run their flushes through one.
type latch struct {
	mu    sync.Mutex
	first error
}

// run runs flush unless one failed before, and keeps its failure.
func (l *latch) run(flush func() error) error {
	l.mu.Lock()
	first := l.first
	l.mu.Unlock()
	if first != nil {
		return failedBefore(first)
	}
	err := flush()
	if err != nil {
		l.mu.Lock()
		if l.first == nil {
			l.first = err
		}
		l.mu.Unlock()
	}
	return err
}

// Do waits for a flush that began after this call, running it itself
// when no flush is under way, and returns that flush's error.
func (g *Group) Do(flush func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	// The next flush to begin: one running now may have missed this
	// caller's writes. A later one covers them too.
	want := g.started + 1
	for g.done < want && g.failed == nil {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		g.mu.Unlock()
		err := flush()
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrFlushFailed, err)
		}
		g.mu.Lock()
		g.running, g.done, g.err = false, g.started, err
		if err != nil && g.failed == nil {
			g.failed = err
		}
		g.cond.Broadcast()
	}
	if g.failed != nil && (g.done < want || g.err == nil) {
		return failedBefore(g.failed)
	}
	return g.err
}

// Folders makes concurrent fsyncs of one folder share a flush (Group):
// concurrent Writes into one folder, the queue's or a mailbox's new/,
// then cost one folder fsync per batch, not one per file.
//
// A failed folder fsync fails every later Sync, of any folder, as a
// Group does.
type Folders struct {
	mu     sync.Mutex
	groups map[string]*folderGroup
	failed latch
}

type folderGroup struct {
	Group
	users int
}

// Sync runs sync(dir) with group commit per folder.
func (f *Folders) Sync(dir string, sync func(string) error) error {
	return f.failed.run(func() error { return f.sync(dir, sync) })
}

func (f *Folders) sync(dir string, sync func(string) error) error {
	f.mu.Lock()
	if f.groups == nil {
		f.groups = map[string]*folderGroup{}
	}
	g := f.groups[dir]
	if g == nil {
		g = &folderGroup{}
		f.groups[dir] = g
	}
	g.users++
	f.mu.Unlock()
	err := g.Do(func() error { return sync(dir) })
	f.mu.Lock()
	if g.users--; g.users == 0 {
		delete(f.groups, dir) // no state to keep between bursts
	}
	f.mu.Unlock()
	return err
}

// Batched is an FS whose SyncDir calls share fsyncs per folder.
type Batched struct {
	FS
	// Whole flushes the filesystem (a Syncfs, say); nil: FS's own
	// SyncFS, if it has one.
	Whole   FSSyncer
	folders Folders
	whole   Group // SyncFS: one filesystem per Batched

	failed latch // of any flush, folder or whole: the pages it dropped may be anyone's

	mu     sync.Mutex
	making map[string]int  // MkdirAll calls under way, by folder (FolderTracker)
	synced map[string]bool // folders whose entry a MkdirAll made durable
}

// BeginFolder implements FolderTracker.
func (b *Batched) BeginFolder(dir string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.making == nil {
		b.making = map[string]int{}
	}
	b.making[dir]++
}

// EndFolder implements FolderTracker.
func (b *Batched) EndFolder(dir string, synced bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.making[dir]--; b.making[dir] <= 0 {
		delete(b.making, dir) // no state to keep between bursts
	}
	if synced {
		if b.synced == nil {
			b.synced = map[string]bool{}
		}
		b.synced[dir] = true
	}
}

// MadeByOthers implements FolderTracker: another MkdirAll of dir is
// under way and none has synced it since the process began.
func (b *Batched) MadeByOthers(dir string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.making[dir] > 1 && !b.synced[dir]
}

// SyncDir implements FS, with group commit per folder.
func (b *Batched) SyncDir(dir string) error {
	return b.failed.run(func() error { return b.folders.Sync(dir, b.FS.SyncDir) })
}

// SyncFS implements FSSyncer when the wrapped FS does, with group commit:
// concurrent callers share one flush of the filesystem.
func (b *Batched) SyncFS(dir string) error {
	syncer, ok := b.Whole, b.Whole != nil
	if !ok {
		syncer, ok = b.FS.(FSSyncer)
	}
	if !ok {
		return fmt.Errorf("durable: %T cannot sync a whole filesystem", b.FS)
	}
	return b.failed.run(func() error { return b.whole.Do(func() error { return syncer.SyncFS(dir) }) })
}

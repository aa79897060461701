// Package durable is postline's one way of writing a file that must
// survive a crash: the queue's spool files and the MDA's Maildir copies
// both go through it.
//
// Guarantee: when Write returns nil, the file exists under its final name
// with exactly the content written, and stays so after a power loss. Until
// then, the final name either does not exist or still holds its previous
// content; a crash leaves at most a temporary file behind.
//
// It rests on two POSIX facts: rename(2) within one filesystem is atomic,
// and a file's data and a directory's entries are durable only once they
// have been fsynced. Steps: create the temporary file (O_EXCL, never
// following a symlink), write, fsync the file, close, rename to the final
// name, fsync the final name's directory.
//
// Every step goes through the FS interface, so tests can make each one
// fail, and a later group commit can batch the fsyncs behind it.
//
// OS is the plain filesystem. Rooted confines every step, and the making
// of folders, to the tree below one root, and follows no symlink in that
// tree: a symlink planted below the root fails the step instead of
// sending the write elsewhere.
package durable

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// File is what Write needs of an open file.
type File interface {
	io.Writer
	Sync() error
	Close() error
}

// FS is every filesystem operation that writes what must survive a
// crash: Write's steps, the making of folders and the appending to logs.
// Reads go to the filesystem directly; every write goes through here, so
// that the power-loss explorer (durable/crashtest) sees them all.
type FS interface {
	// CreateExcl creates name for writing; it fails if name exists or is a symlink.
	CreateExcl(name string, perm os.FileMode) (File, error)
	// OpenAppend opens name for appending, creating it if missing.
	OpenAppend(name string, perm os.FileMode) (File, error)
	// Mkdir creates folder name, not its parents. Its error wraps
	// os.ErrExist only when a folder is already there (something else
	// there is another error), and os.ErrNotExist when the parent is
	// missing.
	Mkdir(name string, perm os.FileMode) error
	Truncate(name string, size int64) error
	Rename(oldname, newname string) error
	Remove(name string) error
	// SyncDir makes the entries of directory dir durable.
	SyncDir(dir string) error
}

// FSSyncer is an FS that can also make everything written to the
// filesystem holding dir durable in one flush (syncfs(2)): files, their
// content and folder entries alike, so that many files cost one flush.
type FSSyncer interface {
	SyncFS(dir string) error
}

// OS is the real filesystem.
type OS struct{}

// Syncfs flushes the filesystem of one folder kept open from the start:
// syncfs(2) reports the writeback errors that happened since the
// previous call on the same open file (Linux 5.8 and later), so one
// opened anew for each flush, as OS.SyncFS does, would miss an error
// that came between a write and that open, and report a flush that lost
// the write as a success.
type Syncfs struct{ dir *os.File }

// OpenSyncfs opens dir for flushing its filesystem; before any write
// that a flush must cover.
func OpenSyncfs(dir string) (*Syncfs, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("durable: open %s for syncfs: %w", dir, err)
	}
	return &Syncfs{dir: d}, nil
}

// SyncFS implements FSSyncer; the folder named is on the same filesystem.
func (s *Syncfs) SyncFS(string) error {
	if err := unix.Syncfs(int(s.dir.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: s.dir.Name(), Err: err}
	}
	return nil
}

// Close closes the folder.
func (s *Syncfs) Close() error { return s.dir.Close() }

// SyncFS implements FSSyncer with a folder opened for this flush alone;
// see Syncfs for what that misses.
func (OS) SyncFS(dir string) error { return syncfsOnce(dir) }

// syncfsOnce flushes the filesystem of dir through a Syncfs of its own.
func syncfsOnce(dir string) error {
	s, err := OpenSyncfs(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.SyncFS(dir)
}

// CreateExcl implements FS.
func (OS) CreateExcl(name string, perm os.FileMode) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
}

// OpenAppend implements FS.
func (OS) OpenAppend(name string, perm os.FileMode) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm)
}

// Mkdir implements FS. It follows symlinks: a state_dir may be one.
func (OS) Mkdir(name string, perm os.FileMode) error {
	err := os.Mkdir(name, perm)
	if errors.Is(err, os.ErrExist) {
		if st, serr := os.Stat(name); serr != nil || !st.IsDir() {
			return fmt.Errorf("durable: %s exists and is not a directory", name)
		}
	}
	return err
}

// Truncate implements FS.
func (OS) Truncate(name string, size int64) error { return os.Truncate(name, size) }

// Rename implements FS.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Write writes the content produced by fill to final via the temporary
// path tmp (same filesystem), with permissions perm. On error nothing is
// left at tmp and the caller must treat the write as not done: final is
// unchanged, or (if only the last fsync failed) new but not durable.
func Write(fs FS, tmp, final string, perm os.FileMode, fill func(io.Writer) error) error {
	return WriteWith(fs, tmp, final, perm, fill, nil)
}

// WriteWith is Write with alongside, when not nil, run beside the file's
// fsync: it must succeed before the file gets its final name (e.g. a
// record of the write made durable first), and costs no extra wait.
//
// On an FSSyncer the file is not fsynced alone: one flush of the whole
// filesystem, shared with concurrent writers, makes its content durable
// before the rename, and another its new name after.
func WriteWith(fs FS, tmp, final string, perm os.FileMode, fill func(io.Writer) error, alongside func() error) error {
	p, err := Create(fs, tmp, final, perm, fill)
	if err != nil {
		return err
	}
	if syncer, ok := fs.(FSSyncer); ok {
		return p.commitWhole(syncer, filepath.Dir(final), alongside)
	}
	var synced bool
	err = Both(func() error {
		err := p.Sync()
		synced = err == nil
		return err
	}, alongside)
	if err != nil {
		if synced {
			p.Abort()
		}
		return err
	}
	if err := p.Rename(); err != nil {
		return err
	}
	// The rename is only durable once the directory holding the new name
	// is synced; before that a crash may forget it.
	if err := fs.SyncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("%w: fsync dir of %s: %w", ErrFlushFailed, final, err)
	}
	return nil
}

// commitWhole is WriteWith's end on an FSSyncer.
func (p *Pending) commitWhole(syncer FSSyncer, dir string, alongside func() error) error {
	if err := p.Close(); err != nil {
		return err
	}
	err := Both(func() error { return syncer.SyncFS(dir) }, alongside)
	if err != nil {
		p.Abort()
		return fmt.Errorf("durable: flush before renaming %s: %w", p.final, err)
	}
	if err := p.Rename(); err != nil {
		return err
	}
	if err := syncer.SyncFS(dir); err != nil {
		return fmt.Errorf("durable: flush after renaming %s: %w", p.final, err)
	}
	return nil
}

// Both runs a and b (either may be nil) at the same time and returns the
// first error: for fsyncs that may overlap.
func Both(a, b func() error) error {
	if b == nil {
		b = func() error { return nil }
	}
	errB := make(chan error, 1)
	go func() { errB <- b() }()
	var errA error
	if a != nil {
		errA = a()
	}
	if err := <-errB; errA == nil {
		return err
	}
	return errA
}

// Pending is a file written at its temporary path, on its way to its
// final name: Write's steps one by one, so that a caller writing several
// files can overlap their fsyncs.
type Pending struct {
	fs         FS
	f          File // nil once closed
	tmp, final string
}

// Create writes the content produced by fill to tmp. On error nothing is
// left at tmp.
func Create(fs FS, tmp, final string, perm os.FileMode, fill func(io.Writer) error) (*Pending, error) {
	f, err := fs.CreateExcl(tmp, perm)
	if err != nil {
		return nil, fmt.Errorf("durable: create %s: %w", tmp, err)
	}
	p := &Pending{fs: fs, f: f, tmp: tmp, final: final}
	if err := fill(f); err != nil {
		p.Abort()
		return nil, fmt.Errorf("durable: write %s: %w", tmp, err)
	}
	return p, nil
}

// Sync makes the content durable and closes the file; on error the
// temporary file is gone.
func (p *Pending) Sync() error {
	err := p.f.Sync()
	if err != nil {
		p.Abort()
		return fmt.Errorf("%w: fsync %s: %w", ErrFlushFailed, p.tmp, err)
	}
	err, p.f = p.f.Close(), nil
	if err != nil {
		p.Abort()
		return fmt.Errorf("durable: close %s: %w", p.tmp, err)
	}
	return nil
}

// Close closes the file without an fsync, for a caller that makes it
// durable with its folder by SyncFS; on error the temporary file is gone.
func (p *Pending) Close() error {
	err := p.f.Close()
	p.f = nil
	if err != nil {
		p.Abort()
		return fmt.Errorf("durable: close %s: %w", p.tmp, err)
	}
	return nil
}

// Rename gives the synced file its final name, durable once the final
// name's folder is synced. On error the temporary file is gone.
func (p *Pending) Rename() error {
	if err := p.fs.Rename(p.tmp, p.final); err != nil {
		p.Abort()
		return fmt.Errorf("durable: rename %s: %w", p.final, err)
	}
	return nil
}

// Abort drops the temporary file.
func (p *Pending) Abort() {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
	p.fs.Remove(p.tmp)
}

// MkdirAll creates dir and its missing parents with perm and makes each
// new entry durable by syncing the folder that holds it. On an FS that
// is a FolderTracker, a folder found made by another caller a moment ago
// has its parent synced too, its entry perhaps not durable yet (the
// power-loss explorer found a copy lost with such a folder); one there
// before, made by an earlier process or the admin, is taken as durable.
func MkdirAll(fs FS, dir string, perm os.FileMode) error {
	tracker, _ := fs.(FolderTracker)
	if tracker != nil {
		tracker.BeginFolder(dir)
	}
	synced := false
	defer func() {
		if tracker != nil {
			tracker.EndFolder(dir, synced)
		}
	}()
	err := fs.Mkdir(dir, perm)
	if parent := filepath.Dir(dir); errors.Is(err, os.ErrNotExist) && parent != dir {
		if err := MkdirAll(fs, parent, perm); err != nil {
			return err
		}
		err = fs.Mkdir(dir, perm)
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("durable: mkdir %s: %w", dir, err)
	}
	if err != nil && (tracker == nil || !tracker.MadeByOthers(dir)) {
		synced = true
		return nil
	}
	if err := fs.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("%w: fsync %s: %w", ErrFlushFailed, filepath.Dir(dir), err)
	}
	synced = true
	return nil
}

// FolderTracker is an FS that knows which folders its callers are
// making, for MkdirAll.
type FolderTracker interface {
	// BeginFolder and EndFolder bracket a MkdirAll of dir; synced
	// tells that dir's entry is durable.
	BeginFolder(dir string)
	EndFolder(dir string, synced bool)
	// MadeByOthers reports whether dir may have been made by another
	// MkdirAll that has not synced it yet.
	MadeByOthers(dir string) bool
}

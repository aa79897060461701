package crashtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"postline/durable"
)

// Kind is what a recorded operation did.
type Kind int

const (
	Create   Kind = iota // a new file
	Write                // bytes appended to a file
	Truncate             // a file cut to Size
	Rename               // Path renamed to To
	Unlink               // Path removed
	Mkdir                // folder Path created
	Fsync                // a file's fsync
	FsyncDir             // a folder's fsync
	SyncFS               // a whole filesystem's flush
	Mark                 // the workload acknowledged something (Label)
)

var kindNames = [...]string{"create", "write", "truncate", "rename", "unlink", "mkdir", "fsync", "fsync-dir", "syncfs", "mark"}

func (k Kind) String() string { return kindNames[k] }

// Op is one recorded operation.
type Op struct {
	Kind     Kind
	Vol      *Volume // nil for a Mark
	Path, To string  // absolute paths below Vol's root
	Ino      int     // the file concerned (Create, Write, Truncate, Rename, Unlink, Fsync)
	Data     []byte  // Write
	Size     int64   // Truncate
	Failed   bool    // a flush that returned EIO
	Label    string  // Mark
	G        uint64  // the goroutine that made the call
}

// isFlush reports whether op makes something durable.
func (op Op) isFlush() bool { return op.Kind == Fsync || op.Kind == FsyncDir || op.Kind == SyncFS }

// Fault is a fault planted in the recording layer.
type Fault struct {
	DropDirSync  bool // a folder fsync returns nil and is not recorded
	DropFileSync bool // a file fsync returns nil and is not recorded
	// LateSyncFS records a whole-filesystem flush only after the next
	// Mark: the caller acknowledges before the flush is done.
	LateSyncFS bool
	// LateFsync does the same to file fsyncs.
	LateFsync bool
	// DropMkdirSync drops the folder fsync that makes a new folder's
	// entry durable (the one that follows its mkdir in the same goroutine).
	DropMkdirSync bool
	// FailFlush makes the Nth flush (1-based, fsync, folder fsync or
	// syncfs alike) fail with EIO; 0: none.
	FailFlush int
}

// Trace is the one ordered record of the operations on its Volumes.
type Trace struct {
	Fault Fault

	mu      sync.Mutex
	ops     []Op
	inos    int
	flushes int  // flush calls so far, for Fault.FailFlush
	late    []Op // flushes held back by Fault.LateSyncFS and LateFsync
	base    string
}

// NewTrace returns an empty trace; paths are printed relative to base.
func NewTrace(base string) *Trace { return &Trace{base: base} }

// Ops returns the operations recorded so far.
func (t *Trace) Ops() []Op {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Op(nil), t.ops...)
}

// Flushes returns how many flushes were asked for, failed ones included.
func (t *Trace) Flushes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flushes
}

// Mark records that the workload acknowledged what label says; every
// flush held back by Fault.LateSyncFS or LateFsync is recorded after it.
func (t *Trace) Mark(label string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.add(Op{Kind: Mark, Label: label})
	t.ops = append(t.ops, t.late...)
	t.late = nil
}

// add appends op; t.mu is held.
func (t *Trace) add(op Op) {
	op.G = goroutineID()
	t.ops = append(t.ops, op)
}

// flush records a flush, or plants the fault asked for; t.mu is held.
func (t *Trace) flush(op Op) error {
	t.flushes++
	switch {
	case t.Fault.FailFlush == t.flushes:
		op.Failed = true
		t.add(op)
		return &os.PathError{Op: op.Kind.String(), Path: op.Path, Err: syscall.EIO}
	case op.Kind == FsyncDir && t.Fault.DropDirSync, op.Kind == Fsync && t.Fault.DropFileSync:
		return nil
	case op.Kind == FsyncDir && t.Fault.DropMkdirSync && t.followsMkdirIn(op.Path):
		return nil
	case op.Kind == SyncFS && t.Fault.LateSyncFS, op.Kind == Fsync && t.Fault.LateFsync:
		op.G = goroutineID()
		t.late = append(t.late, op)
		return nil
	}
	t.add(op)
	return nil
}

// followsMkdirIn reports whether the calling goroutine's last recorded
// operation made a folder in dir; t.mu is held.
func (t *Trace) followsMkdirIn(dir string) bool {
	g := goroutineID()
	for i := len(t.ops) - 1; i >= 0; i-- {
		if op := t.ops[i]; op.G == g {
			return op.Kind == Mkdir && filepath.Dir(op.Path) == dir
		}
	}
	return false
}

// Format prints op for a trace listing.
func (t *Trace) Format(i int, op Op) string {
	rel := func(p string) string {
		if r, err := filepath.Rel(t.base, p); err == nil {
			return r
		}
		return p
	}
	s := fmt.Sprintf("#%d g%d %s", i, op.G, op.Kind)
	switch op.Kind {
	case Mark:
		return s + " " + op.Label
	case Rename:
		s += " " + rel(op.Path) + " -> " + rel(op.To)
	case Write:
		s += fmt.Sprintf(" %d bytes", len(op.Data))
	case Truncate:
		s += fmt.Sprintf(" to %d", op.Size)
	case SyncFS:
		s += " " + op.Vol.Name
	default:
		s += " " + rel(op.Path)
	}
	if op.Ino != 0 {
		s += fmt.Sprintf(" (inode %d)", op.Ino)
	}
	if op.Failed {
		s += " FAILED: EIO"
	}
	return s
}

// goroutineID reads the calling goroutine's number from its stack
// header, for trace listings only.
func goroutineID() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	n, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return n
}

// Volume is one filesystem: a durable.FS (and an mda.FS) whose writes are
// made on the real folder Root, below which no symlink is followed, and
// recorded. It cannot flush a whole filesystem; SyncVolume can.
type Volume struct {
	Name string
	Root string

	t     *Trace
	live  durable.Rooted
	names map[string]int // path -> inode of each live file
}

// NewVolume adds a filesystem rooted at the existing, empty folder root.
func (t *Trace) NewVolume(name, root string) *Volume {
	return &Volume{Name: name, Root: root, t: t, live: durable.Rooted{Root: root}, names: map[string]int{}}
}

// SyncVolume is a Volume that can also flush its whole filesystem
// (durable.FSSyncer), as postline's daemons use the real one.
type SyncVolume struct{ *Volume }

// SyncFS implements durable.FSSyncer.
func (v SyncVolume) SyncFS(string) error {
	v.t.mu.Lock()
	defer v.t.mu.Unlock()
	return v.t.flush(Op{Kind: SyncFS, Vol: v.Volume, Path: v.Root})
}

// do runs the live operation and, if it succeeds, records op.
func (v *Volume) do(op Op, live func() error) error {
	v.t.mu.Lock()
	defer v.t.mu.Unlock()
	if err := live(); err != nil {
		return err
	}
	op.Vol = v
	switch op.Kind {
	case Create, Mkdir:
		v.t.inos++
		op.Ino = v.t.inos
		v.names[op.Path] = op.Ino
	case Rename:
		op.Ino = v.names[op.Path]
		delete(v.names, op.Path)
		v.names[op.To] = op.Ino
	case Unlink, Truncate:
		op.Ino = v.names[op.Path]
		if op.Kind == Unlink {
			delete(v.names, op.Path)
		}
	}
	v.t.add(op)
	return nil
}

// CreateExcl implements durable.FS.
func (v *Volume) CreateExcl(name string, perm os.FileMode) (durable.File, error) {
	var f durable.File
	err := v.do(Op{Kind: Create, Path: name}, func() (err error) {
		f, err = v.live.CreateExcl(name, perm)
		return err
	})
	if err != nil {
		return nil, err
	}
	return v.file(f, name), nil
}

// OpenAppend implements durable.FS. A file that existed before the
// volume was recorded gets an inode with no recorded content.
func (v *Volume) OpenAppend(name string, perm os.FileMode) (durable.File, error) {
	v.t.mu.Lock()
	_, known := v.names[name]
	v.t.mu.Unlock()
	if _, err := os.Lstat(name); !known && os.IsNotExist(err) {
		return v.CreateExcl(name, perm)
	}
	f, err := v.live.OpenAppend(name, perm)
	if err != nil {
		return nil, err
	}
	v.t.mu.Lock()
	if !known {
		v.t.inos++
		v.names[name] = v.t.inos
	}
	v.t.mu.Unlock()
	return v.file(f, name), nil
}

func (v *Volume) file(f durable.File, name string) durable.File {
	v.t.mu.Lock()
	defer v.t.mu.Unlock()
	return &file{v: v, f: f, ino: v.names[name], name: name}
}

// Mkdir implements durable.FS.
func (v *Volume) Mkdir(name string, perm os.FileMode) error {
	return v.do(Op{Kind: Mkdir, Path: name}, func() error { return v.live.Mkdir(name, perm) })
}

// MkdirAll implements mda.FS with durable.MkdirAll, as Rooted does.
func (v *Volume) MkdirAll(dir string, perm os.FileMode) error { return durable.MkdirAll(v, dir, perm) }

// ReadDirNames implements mda.FS.
func (v *Volume) ReadDirNames(dir string) ([]string, error) { return v.live.ReadDirNames(dir) }

// Truncate implements durable.FS.
func (v *Volume) Truncate(name string, size int64) error {
	return v.do(Op{Kind: Truncate, Path: name, Size: size}, func() error { return v.live.Truncate(name, size) })
}

// Rename implements durable.FS.
func (v *Volume) Rename(oldname, newname string) error {
	return v.do(Op{Kind: Rename, Path: oldname, To: newname}, func() error { return v.live.Rename(oldname, newname) })
}

// Remove implements durable.FS.
func (v *Volume) Remove(name string) error {
	return v.do(Op{Kind: Unlink, Path: name}, func() error { return v.live.Remove(name) })
}

// SyncDir implements durable.FS.
func (v *Volume) SyncDir(dir string) error {
	v.t.mu.Lock()
	defer v.t.mu.Unlock()
	if !strings.HasPrefix(dir+"/", v.Root+"/") {
		return fmt.Errorf("crashtest: %s is not on volume %s", dir, v.Name)
	}
	return v.t.flush(Op{Kind: FsyncDir, Vol: v, Path: filepath.Clean(dir)})
}

// file is an open file of a Volume whose writes and fsyncs are recorded.
type file struct {
	v    *Volume
	f    durable.File
	ino  int
	name string
}

// Write writes to the live file and records what was written.
func (f *file) Write(p []byte) (int, error) {
	t := f.v.t
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := f.f.Write(p)
	if n > 0 {
		t.add(Op{Kind: Write, Vol: f.v, Path: f.name, Ino: f.ino, Data: bytes.Clone(p[:n])})
	}
	return n, err
}

// Sync records a file fsync, or plants the fault asked for; the live
// file is not flushed, since no state is ever read back from the disk.
func (f *file) Sync() error {
	f.v.t.mu.Lock()
	defer f.v.t.mu.Unlock()
	return f.v.t.flush(Op{Kind: Fsync, Vol: f.v, Path: f.name, Ino: f.ino})
}

// Close closes the live file; closing makes nothing durable.
func (f *file) Close() error { return f.f.Close() }

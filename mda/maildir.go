package mda

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"postline/durable"
)

// FS is what Maildir needs of the filesystem: package durable's steps
// plus making folders, all confined to the mail root without following
// symlinks. durable.Rooted{Root: mail_root} is the real one; tests wrap
// it to make a step fail.
type FS interface {
	durable.FS
	MkdirAll(dir string, perm os.FileMode) error
	ReadDirNames(dir string) ([]string, error)
}

// BatchedFS is a Maildir FS with durable.Batched's group commit: the
// copies written into one new/ at the same time share its fsync, and
// concurrent copies share each flush of the filesystem. The wrapped FS
// must be a durable.FSSyncer; a folder fsync would not make a file's
// content durable, so anything else is an error, not a weaker flush.
type BatchedFS struct {
	FS
	batched durable.Batched
}

// NewBatchedFS returns fs with group commit; whole, when not nil,
// flushes the filesystem instead of fs's own SyncFS (a durable.Syncfs).
func NewBatchedFS(fs FS, whole durable.FSSyncer) *BatchedFS {
	b := &BatchedFS{FS: fs}
	b.batched.FS, b.batched.Whole = fs, whole
	return b
}

// SyncDir implements FS, with group commit per folder.
func (b *BatchedFS) SyncDir(dir string) error { return b.batched.SyncDir(dir) }

// MkdirAll implements FS through the batched folder fsyncs, with the
// folders in the making tracked (durable.FolderTracker).
func (b *BatchedFS) MkdirAll(dir string, perm os.FileMode) error {
	return durable.MkdirAll(b, dir, perm)
}

// BeginFolder implements durable.FolderTracker.
func (b *BatchedFS) BeginFolder(dir string) { b.batched.BeginFolder(dir) }

// EndFolder implements durable.FolderTracker.
func (b *BatchedFS) EndFolder(dir string, synced bool) { b.batched.EndFolder(dir, synced) }

// MadeByOthers implements durable.FolderTracker.
func (b *BatchedFS) MadeByOthers(dir string) bool { return b.batched.MadeByOthers(dir) }

// SyncFS implements durable.FSSyncer, with group commit.
func (b *BatchedFS) SyncFS(dir string) error { return b.batched.SyncFS(dir) }

// Maildir writes messages into Maildirs below the mail root durably:
// tmp/KEY is written and fsynced, renamed to new/KEY, and new/ is
// fsynced, all through FS, before Deliver returns.
//
// Keys keep go-maildir's format (newKey), but go-maildir cannot make the
// folders or files: its Dir.Init and Dir.Create call os.Mkdir and
// os.OpenFile on whole paths, which follow a symlink planted in mail_root
// (say example.test/alice -> /etc), and they do not fsync.
type Maildir struct {
	FS       FS
	Hostname string
	counter  atomic.Uint64
	pid      atomic.Int64 // os.Getpid, a system call each time, asked once
	// made holds the Maildirs this process made or found whole, so a
	// delivery does not walk their three folders again (ensure).
	made sync.Map
	// buffers recycle what copies are written through: io.Copy would
	// allocate 32 KiB for each copy.
	buffers sync.Pool
}

// Deliver copies msg into a new file in the Maildir at dir (below FS's
// root), creating the Maildir first if needed, and returns the file's
// unique key. A symlink on the way fails the delivery, naming the path.
func (m *Maildir) Deliver(dir string, msg io.Reader) (string, error) {
	key := m.NewKey()
	return key, m.DeliverAs(dir, key, msg, nil)
}

// NewKey returns a unique file name for a new message.
func (m *Maildir) NewKey() string { return m.newKey(time.Now()) }

// DeliverAs is Deliver with the file name chosen by the caller (NewKey).
// alongside, when not nil, runs beside the file's fsync and must succeed
// before the file is renamed into new/ (the delivery ledger's flush).
func (m *Maildir) DeliverAs(dir, key string, msg io.Reader, alongside func() error) error {
	if _, made := m.made.Load(dir); !made {
		if err := m.ensure(dir); err != nil {
			return err
		}
		m.made.Store(dir, true)
	}
	err := m.write(dir, key, msg, alongside)
	if errors.Is(err, os.ErrNotExist) {
		// Its folders went since (the user deleted the mailbox, say):
		// they are made again on the next delivery, this one is retried
		// by the MTA.
		m.made.Delete(dir)
	}
	return err
}

// DeliverFlagged is DeliverAs for a message with flags: it goes into cur/
// as "key:2,FLAGS" (the Maildir spec's info; FLAGS as Flags makes them),
// which is where a reader (Dovecot) keeps a message it has seen.
func (m *Maildir) DeliverFlagged(dir, key, flags string, msg io.Reader, alongside func() error) error {
	if flags == "" {
		return m.DeliverAs(dir, key, msg, alongside)
	}
	if _, made := m.made.Load(dir); !made {
		if err := m.ensure(dir); err != nil {
			return err
		}
		m.made.Store(dir, true)
	}
	err := m.writeTo(dir, key, filepath.Join(dir, "cur", key+":2,"+flags), msg, alongside)
	if errors.Is(err, os.ErrNotExist) {
		m.made.Delete(dir) // as DeliverAs: made again on the retry
	}
	return err
}

// Flags turns IMAP system flags into a Maildir info's letters, in ASCII
// order as the spec wants: \Draft D, \Flagged F, \Answered R, \Seen S,
// \Deleted T.
func Flags(imap []string) string {
	letters := map[string]byte{`\draft`: 'D', `\flagged`: 'F', `\answered`: 'R', `\seen`: 'S', `\deleted`: 'T'}
	var out []byte
	for _, f := range imap {
		if c, ok := letters[strings.ToLower(f)]; ok && !bytes.Contains(out, []byte{c}) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return string(out)
}

// write puts msg into the existing Maildir dir as key.
func (m *Maildir) write(dir, key string, msg io.Reader, alongside func() error) error {
	return m.writeTo(dir, key, filepath.Join(dir, "new", key), msg, alongside)
}

// writeTo writes msg to tmp/key, then renames it to final.
func (m *Maildir) writeTo(dir, key, final string, msg io.Reader, alongside func() error) error {
	err := durable.WriteWith(m.FS, filepath.Join(dir, "tmp", key), final, 0o600,
		func(w io.Writer) error {
			buf, ok := m.buffers.Get().(*[]byte)
			if !ok {
				b := make([]byte, 32<<10)
				buf = &b
			}
			defer m.buffers.Put(buf)
			return copyFull(w, msg, *buf)
		}, alongside)
	if err != nil {
		// The flush after the rename may be what failed: a copy the
		// MDA refuses must not stay in new/ for the user to read. Its
		// key is new, so nothing else is at that name.
		m.FS.Remove(final)
		return fmt.Errorf("maildir %s: %w", dir, err)
	}
	return nil
}

// Has reports whether the message key is in the Maildir at dir: in new/,
// or in cur/ where a mail reader moved it, with ":2,FLAGS" added (the
// Maildir spec's info). A message moved elsewhere or deleted is not found.
func (m *Maildir) Has(dir, key string) (bool, error) {
	for _, sub := range []string{"new", "cur"} {
		names, err := m.FS.ReadDirNames(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("maildir %s: %w", dir, err)
		}
		for _, n := range names {
			if n == key || strings.HasPrefix(n, key+":") {
				return true, nil
			}
		}
	}
	return false, nil
}

// ensure creates the Maildir's missing folders (mode 0700); FS.MkdirAll
// fsyncs the parent of each one it creates. DeliverAs calls it once per
// Maildir and process (Maildir.made), and again after a delivery found a
// folder gone.
func (m *Maildir) ensure(dir string) error {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := m.FS.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("maildir %s: %w", dir, err)
		}
	}
	return nil
}

// copyFull copies r to w through buf, writing only full buffers (and
// the last part): a copy that comes in pieces (the trace fields, then
// the message) costs one write, not one per piece, when it fits.
func copyFull(w io.Writer, r io.Reader, buf []byte) error {
	for {
		n, err := fill(r, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// fill reads r into buf until buf is full or r returns an error, which
// it returns as it is (io.ReadFull would turn a short read's EOF into
// io.ErrUnexpectedEOF, the error a broken DATA stream already uses).
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (m *Maildir) processID() int64 {
	if pid := m.pid.Load(); pid != 0 {
		return pid
	}
	pid := int64(os.Getpid())
	m.pid.Store(pid)
	return pid
}

// hostEscaper escapes a host name for a Maildir key, as go-maildir does;
// built once, since newKey runs for every delivered copy.
var hostEscaper = strings.NewReplacer("/", `\057`, ":", `\072`)

// newKey makes a unique file name in go-maildir's format:
// <unix seconds>.<pid><counter><20 random hex>.<hostname>.
func (m *Maildir) newKey(now time.Time) string {
	var rnd [10]byte
	rand.Read(rnd[:])
	return fmt.Sprintf("%d.%d%d%s.%s", now.Unix(), m.processID(), m.counter.Add(1), hex.EncodeToString(rnd[:]),
		hostEscaper.Replace(m.Hostname))
}

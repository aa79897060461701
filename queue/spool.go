// Package queue is the MTA's durable spool: each accepted message is two
// files, its bytes (msg/ID) and its envelope (env/ID, JSON), each written
// through package durable. The envelope is written last, so its presence
// is what makes a message part of the queue; every later state change
// replaces it atomically.
//
// queue never answers a client and never delivers; it only persists and
// hands out envelopes and message bytes.
package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"

	"postline/durable"
)

// Spool is a queue directory.
type Spool struct {
	dir     string
	fs      durable.FS
	removed *removedLog
	// flushFailed is told of a failed flush (OnFlushFailure).
	flushFailed func(error)
	// What Recover dropped (never acknowledged) and set aside in
	// damaged/ (envelopes that do not decode), for the log.
	dropped, damaged []string
}

// Open prepares the spool under dir (mode 0700) and returns it.
func Open(dir string, fs durable.FS) (*Spool, error) {
	s := &Spool{dir: dir, fs: fs}
	for _, d := range []string{dir, s.sub("tmp"), s.sub("msg"), s.sub("env")} {
		if err := durable.MkdirAll(fs, d, 0o700); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	removed, err := openRemovedLog(fs, s.sub("removed.log"), s.sub("removed.old.log"))
	if err != nil {
		return nil, err
	}
	s.removed = removed
	return s, nil
}

// OnFlushFailure has f called with the error of every Store, Update or
// Remove that a failed flush ended (durable.ErrFlushFailed): after one,
// nothing written since the last good flush can be trusted to be on
// disk, and only a restart that recovers from the disk is safe.
func (s *Spool) OnFlushFailure(f func(error)) { s.flushFailed = f }

// checked passes err on, telling OnFlushFailure's function first when a
// failed flush caused it.
func (s *Spool) checked(err error) error {
	if s.flushFailed != nil && errors.Is(err, durable.ErrFlushFailed) {
		s.flushFailed(err)
	}
	return err
}

// Close closes the spool's open files.
func (s *Spool) Close() error { return s.removed.close() }

func (s *Spool) sub(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

// TempDir is a folder on the spool's file system for transient files
// (Recover empties it).
func (s *Spool) TempDir() string { return s.sub("tmp") }

// Store makes a new message durable: its bytes from data, then env.
// env.Size and env.Checksum are set from the bytes written. When Store
// returns nil the message survives a crash, so the caller may answer 250.
//
// On a filesystem that can be flushed whole (durable.FSSyncer), both
// files and their names are made durable by one flush, shared with the
// Stores running at the same time (group commit); a crash before it may
// leave files that Recover recognizes by their size and checksum as
// never acknowledged. Elsewhere the two files' fsyncs overlap.
func (s *Spool) Store(env *Envelope, data io.Reader) error {
	if !ValidID(env.ID) {
		return fmt.Errorf("queue: invalid id %q", env.ID)
	}
	sum := crc32.New(castagnoli)
	msg, err := durable.Create(s.fs, s.sub("tmp", env.ID+".msg"), s.sub("msg", env.ID), 0o600,
		func(w io.Writer) error {
			n, err := io.Copy(io.MultiWriter(w, sum), data)
			env.Size = n
			return err
		})
	if err != nil {
		return fmt.Errorf("queue: store %s: %w", env.ID, err)
	}
	env.Checksum = sum.Sum32()
	err = s.commit(env, msg)
	if err != nil {
		// A name may have been renamed into place before a failed
		// flush: remove the envelope first, so none is left without data.
		s.fs.Remove(s.sub("env", env.ID))
		s.fs.Remove(s.sub("msg", env.ID))
		return s.checked(fmt.Errorf("queue: store %s: %w", env.ID, err))
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// commit writes the envelope beside the written data and makes both
// durable: on an FSSyncer by one flush after both renames, else by
// fsyncing the files side by side, then their folders side by side.
func (s *Spool) commit(env *Envelope, msg *durable.Pending) error {
	envFile, err := s.createEnvelope(env)
	if err != nil {
		msg.Abort()
		return err
	}
	syncer, whole := s.fs.(durable.FSSyncer)
	finish := func() error { return durable.Both(msg.Sync, envFile.Sync) }
	if whole {
		finish = func() error { return durable.Both(msg.Close, envFile.Close) }
	}
	if err := finish(); err != nil {
		msg.Abort()
		envFile.Abort()
		return err
	}
	if err := msg.Rename(); err != nil {
		envFile.Abort()
		return err
	}
	if err := envFile.Rename(); err != nil {
		return err
	}
	if whole {
		return syncer.SyncFS(s.dir)
	}
	return durable.Both(func() error { return s.fs.SyncDir(s.sub("msg")) }, func() error { return s.fs.SyncDir(s.sub("env")) })
}

func (s *Spool) createEnvelope(env *Envelope) (*durable.Pending, error) {
	fill, err := encodeEnvelope(env)
	if err != nil {
		return nil, err
	}
	return durable.Create(s.fs, s.sub("tmp", env.ID+".env"), s.sub("env", env.ID), 0o600, fill)
}

// encodeEnvelope returns what writes env's file, for Store and Update.
func encodeEnvelope(env *Envelope) (func(io.Writer) error, error) {
	data, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", env.ID, err)
	}
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, nil
}

// Update atomically replaces env's file with its current state.
func (s *Spool) Update(env *Envelope) error {
	fill, err := encodeEnvelope(env)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	err = durable.Write(s.fs, s.sub("tmp", env.ID+".env"), s.sub("env", env.ID), 0o600, fill)
	if err != nil {
		return s.checked(fmt.Errorf("queue: write envelope %s: %w", env.ID, err))
	}
	return nil
}

// Remove deletes a finished message: the envelope first, so a crash in
// between leaves only an orphan data file that Recover removes.
func (s *Spool) Remove(id string) error {
	if err := s.fs.Remove(s.sub("env", id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: remove envelope %s: %w", id, err)
	}
	if err := s.syncFolder(s.sub("env")); err != nil {
		return s.checked(fmt.Errorf("queue: fsync env dir: %w", err))
	}
	if err := s.fs.Remove(s.sub("msg", id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: remove data %s: %w", id, err)
	}
	return s.removed.add(id)
}

// syncFolder makes dir's entries durable: by one shared flush of the
// filesystem where the FS can, else by fsyncing dir.
func (s *Spool) syncFolder(dir string) error {
	if syncer, ok := s.fs.(durable.FSSyncer); ok {
		return syncer.SyncFS(dir)
	}
	return s.fs.SyncDir(dir)
}

// Queued reports whether message id was queued: its envelope is in the
// spool, or it was removed since (delivered, bounced, deleted). A
// message whose data was written but not its envelope was not queued.
func (s *Spool) Queued(id string) (bool, error) {
	if !ValidID(id) {
		return false, nil
	}
	if _, err := os.Lstat(s.sub("env", id)); !errors.Is(err, os.ErrNotExist) {
		return err == nil, err
	}
	return s.removed.has(id)
}

// Has reports whether message id is in the spool (its data or its
// envelope), so that an ID proposed by a client is never reused.
func (s *Spool) Has(id string) bool {
	if !ValidID(id) {
		return false
	}
	for _, d := range []string{"msg", "env"} {
		if _, err := os.Lstat(s.sub(d, id)); !errors.Is(err, os.ErrNotExist) {
			return true
		}
	}
	return false
}

// OpenMessage opens the stored bytes of message id.
func (s *Spool) OpenMessage(id string) (*os.File, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("queue: invalid id %q", id)
	}
	return os.Open(s.sub("msg", id))
}

// Recover is run once at start, before anything is stored: it deletes
// half-written files left by a crash and returns the queued envelopes,
// oldest first.
func (s *Spool) Recover() ([]*Envelope, error) {
	if err := s.clearDir(s.sub("tmp")); err != nil {
		return nil, err
	}
	names, err := readNames(s.sub("env"))
	if err != nil {
		return nil, err
	}
	queued := map[string]bool{}
	var envs []*Envelope
	for _, name := range names {
		env, err := s.loadEnvelope(name)
		switch {
		case errors.Is(err, errUnfinishedStore):
			s.fs.Remove(s.sub("env", name))
			s.dropped = append(s.dropped, name)
			continue
		case errors.Is(err, errDamaged):
			if err := s.setAside(name); err != nil {
				return nil, err
			}
			continue
		case err != nil:
			return nil, err
		}
		queued[name] = true
		envs = append(envs, env)
	}
	msgs, err := readNames(s.sub("msg"))
	if err != nil {
		return nil, err
	}
	for _, name := range msgs {
		if !queued[name] { // data whose envelope was never committed
			s.fs.Remove(s.sub("msg", name))
		}
	}
	sort.Slice(envs, func(i, j int) bool { return envs[i].ID < envs[j].ID })
	return envs, nil
}

// Recovered names what Recover found: messages dropped as never
// acknowledged (a Store cut short), and envelopes that do not decode,
// moved with their data into the damaged/ folder for the admin.
func (s *Spool) Recovered() (dropped, damaged []string) { return s.dropped, s.damaged }

// DamagedDir is where Recover puts envelopes it cannot read.
func (s *Spool) DamagedDir() string { return s.sub("damaged") }

// setAside moves an envelope that does not decode, and its data, into
// damaged/: a power loss before the flush of a Store can leave one, and
// nothing tells it from real damage, so it is kept, not deleted.
func (s *Spool) setAside(name string) error {
	if err := durable.MkdirAll(s.fs, s.DamagedDir(), 0o700); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	for _, sub := range []string{"env", "msg"} {
		err := s.fs.Rename(s.sub(sub, name), s.sub("damaged", name+"."+sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("queue: set aside damaged envelope %s: %w", name, err)
		}
	}
	s.damaged = append(s.damaged, name)
	return nil
}

func (s *Spool) loadEnvelope(name string) (*Envelope, error) {
	data, err := os.ReadFile(s.sub("env", name))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	env, err := decodeEnvelope(name, data)
	if cutShort(data, err) {
		return nil, errUnfinishedStore
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errDamaged, name, err)
	}
	if env.attempted() {
		if _, err := os.Stat(s.sub("msg", name)); err != nil {
			return nil, fmt.Errorf("queue: envelope %s has no message data: %w", name, err)
		}
		return env, nil
	}
	if !s.dataIntact(env) {
		return nil, errUnfinishedStore
	}
	return env, nil
}

// dataIntact reports whether a message never attempted has all its data:
// the size and checksum Store recorded. Envelopes of older versions have
// no checksum; their data need only exist.
func (s *Spool) dataIntact(env *Envelope) bool {
	f, err := os.Open(s.sub("msg", env.ID))
	if err != nil {
		return false
	}
	defer f.Close()
	if env.Checksum == 0 {
		return true
	}
	sum := crc32.New(castagnoli)
	n, err := io.Copy(sum, f)
	return err == nil && n == env.Size && sum.Sum32() == env.Checksum
}

// cutShort reports whether an envelope failed to decode because it ends
// early: empty, or JSON cut at its end. Only a Store's envelope can be
// so, renamed into place before the flush that a crash came before (a
// Store that returned and every Update flush it first), so the message
// was never acknowledged.
func cutShort(data []byte, err error) bool {
	var syntax *json.SyntaxError
	return len(data) == 0 || (errors.As(err, &syntax) && syntax.Offset == int64(len(data)))
}

// errDamaged marks an envelope that does not decode.
var errDamaged = errors.New("queue: damaged envelope")

// errUnfinishedStore marks an envelope whose data never became durable:
// Store was cut short by a crash, so the message was never acknowledged.
var errUnfinishedStore = errors.New("queue: store cut short")

// decodeEnvelope parses the envelope file of message id and checks what
// the rest of the MTA relies on, so a damaged file stops the start with
// a message instead of crashing a delivery later.
func decodeEnvelope(id string, data []byte) (*Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, err
	}
	if env.ID != id || !ValidID(id) {
		return nil, fmt.Errorf("id %q in file %s", env.ID, id)
	}
	if len(env.Recipients) == 0 {
		return nil, errors.New("no recipients")
	}
	for i, r := range env.Recipients {
		if r == nil || r.Address == "" {
			return nil, fmt.Errorf("recipient %d is empty", i)
		}
		switch r.State {
		case Pending, Delivered, Failed:
		default:
			return nil, fmt.Errorf("recipient %s: unknown state %q", r.Address, r.State)
		}
	}
	return &env, nil
}

func (s *Spool) clearDir(dir string) error {
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := s.fs.Remove(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("queue: clean %s: %w", dir, err)
		}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

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
}

// Open prepares the spool under dir (mode 0700) and returns it.
func Open(dir string, fs durable.FS) (*Spool, error) {
	s := &Spool{dir: dir, fs: fs}
	for _, d := range []string{dir, s.sub("tmp"), s.sub("msg"), s.sub("env")} {
		if err := durable.MkdirAll(fs, d, 0o700); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	removed, err := openRemovedLog(s.sub("removed.log"), s.sub("removed.old.log"))
	if err != nil {
		return nil, err
	}
	s.removed = removed
	return s, nil
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
// env.Size is set from the bytes written. When Store returns nil the
// message survives a crash, so the caller may answer 250.
//
// The two files' fsyncs overlap, and so do their folders': a crash may
// then leave an envelope without its data, which was never acknowledged
// and which Recover drops.
func (s *Spool) Store(env *Envelope, data io.Reader) error {
	if !ValidID(env.ID) {
		return fmt.Errorf("queue: invalid id %q", env.ID)
	}
	msg, err := durable.Create(s.fs, s.sub("tmp", env.ID+".msg"), s.sub("msg", env.ID), 0o600,
		func(w io.Writer) error {
			n, err := io.Copy(w, data)
			env.Size = n
			return err
		})
	if err != nil {
		return fmt.Errorf("queue: store %s: %w", env.ID, err)
	}
	if err := s.commit(env, msg); err != nil {
		// A name may have been renamed into place before a failed
		// fsync: remove the envelope first, so none is left without data.
		s.fs.Remove(s.sub("env", env.ID))
		s.fs.Remove(s.sub("msg", env.ID))
		return fmt.Errorf("queue: store %s: %w", env.ID, err)
	}
	return nil
}

// commit writes the envelope beside the written data and makes both
// durable, each step's fsyncs side by side.
func (s *Spool) commit(env *Envelope, msg *durable.Pending) error {
	envFile, err := s.createEnvelope(env)
	if err != nil {
		msg.Abort()
		return err
	}
	if err := both(msg.Sync, envFile.Sync); err != nil {
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
	return both(func() error { return s.fs.SyncDir(s.sub("msg")) }, func() error { return s.fs.SyncDir(s.sub("env")) })
}

// both runs a and b at the same time and returns the first error.
func both(a, b func() error) error {
	errB := make(chan error, 1)
	go func() { errB <- b() }()
	errA := a()
	if err := <-errB; errA == nil {
		return err
	}
	return errA
}

func (s *Spool) createEnvelope(env *Envelope) (*durable.Pending, error) {
	data, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", env.ID, err)
	}
	return durable.Create(s.fs, s.sub("tmp", env.ID+".env"), s.sub("env", env.ID), 0o600,
		func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
}

// Update atomically replaces env's file with its current state.
func (s *Spool) Update(env *Envelope) error {
	data, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("queue: encode envelope %s: %w", env.ID, err)
	}
	err = durable.Write(s.fs, s.sub("tmp", env.ID+".env"), s.sub("env", env.ID), 0o600,
		func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
	if err != nil {
		return fmt.Errorf("queue: write envelope %s: %w", env.ID, err)
	}
	return nil
}

// Remove deletes a finished message: the envelope first, so a crash in
// between leaves only an orphan data file that Recover removes.
func (s *Spool) Remove(id string) error {
	if err := s.fs.Remove(s.sub("env", id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: remove envelope %s: %w", id, err)
	}
	if err := s.fs.SyncDir(s.sub("env")); err != nil {
		return fmt.Errorf("queue: fsync env dir: %w", err)
	}
	if err := s.fs.Remove(s.sub("msg", id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: remove data %s: %w", id, err)
	}
	return s.removed.add(id)
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
		if errors.Is(err, errUnfinishedStore) {
			s.fs.Remove(s.sub("env", name))
			continue
		}
		if err != nil {
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

func (s *Spool) loadEnvelope(name string) (*Envelope, error) {
	data, err := os.ReadFile(s.sub("env", name))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	env, err := decodeEnvelope(name, data)
	if err != nil {
		return nil, fmt.Errorf("queue: envelope %s is damaged (%v); move it out of %s to start", name, err, s.sub("env"))
	}
	if _, err := os.Stat(s.sub("msg", name)); err != nil {
		if errors.Is(err, os.ErrNotExist) && !env.attempted() {
			return nil, errUnfinishedStore
		}
		return nil, fmt.Errorf("queue: envelope %s has no message data: %w", name, err)
	}
	return env, nil
}

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

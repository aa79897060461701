package queue

// Envelopes of versions before the queue log: one file per envelope
// (env/ID, JSON) beside its data (msg/ID). Recover moves each into the
// log, keeping its data file, and deals with what a crash left of them.

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"postline/durable"
)

// migrate moves the envelopes in env/ into the log. Each file is removed
// once its record is durable, and the removals are flushed before
// anything can remove the message from the log: a file left behind
// would bring a delivered message back.
func (s *Spool) migrate() error {
	names, err := readNames(s.sub("env"))
	if err != nil || len(names) == 0 {
		return err
	}
	var moved []string
	for _, name := range names {
		ok, err := s.migrateOne(name)
		if err != nil {
			return err
		}
		if ok {
			moved = append(moved, name)
		}
	}
	if err := s.log.flush(); err != nil {
		return s.checked(fmt.Errorf("queue: move envelopes into the log: %w", err))
	}
	for _, name := range moved {
		if err := s.fs.Remove(s.sub("env", name)); err != nil {
			return fmt.Errorf("queue: move envelopes into the log: %w", err)
		}
	}
	if err := s.fs.SyncDir(s.sub("env")); err != nil {
		return s.checked(fmt.Errorf("queue: move envelopes into the log: %w", err))
	}
	return nil
}

// migrateOne appends the record of env/name; it reports whether the
// file is to be removed once that record is durable.
func (s *Spool) migrateOne(name string) (bool, error) {
	env, err := s.loadEnvelope(name)
	switch {
	case errors.Is(err, errUnfinishedStore):
		s.fs.Remove(s.sub("env", name))
		s.dropped = append(s.dropped, name)
		return false, nil
	case errors.Is(err, errDamaged):
		return false, s.setAside(name)
	case err != nil:
		return false, err
	}
	if _, ok := s.log.entry(name); ok { // moved before a crash
		return true, nil
	}
	encoded, err := json.Marshal(env)
	if err != nil {
		return false, fmt.Errorf("queue: encode envelope %s: %w", name, err)
	}
	if err := s.log.external(name, encoded); err != nil {
		return false, s.checked(fmt.Errorf("queue: move envelope %s into the log: %w", name, err))
	}
	return true, nil
}

// setAsideRecord writes the envelope of a log record that does not
// decode into damaged/ID.env for the admin, and removes the message from
// the log; its data, if it has a file of its own, goes beside it.
func (s *Spool) setAsideRecord(id string, data []byte) error {
	if err := durable.MkdirAll(s.fs, s.DamagedDir(), 0o700); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := s.writeDamaged(id+".env", data); err != nil {
		return fmt.Errorf("queue: set aside damaged envelope %s: %w", id, err)
	}
	if e, ok := s.log.entry(id); ok && e.data.seg != nil {
		d, err := e.data.appendTo(nil)
		if err == nil {
			err = s.writeDamaged(id+".msg", d)
		}
		if err != nil {
			return fmt.Errorf("queue: set aside damaged envelope %s: %w", id, err)
		}
	} else if err := s.fs.Rename(s.sub("msg", id), s.sub("damaged", id+".msg")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: set aside damaged envelope %s: %w", id, err)
	}
	if _, err := s.log.remove(id); err != nil {
		return s.checked(fmt.Errorf("queue: set aside damaged envelope %s: %w", id, err))
	}
	s.damaged = append(s.damaged, id)
	return s.flush("set aside", id)
}

// writeDamaged writes data durably as damaged/name.
func (s *Spool) writeDamaged(name string, data []byte) error {
	return durable.Write(s.fs, s.sub("tmp", name), s.sub("damaged", name), 0o600,
		func(w io.Writer) error { _, err := w.Write(data); return err })
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

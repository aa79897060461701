// Package queue is the MTA's durable spool: each accepted message is a
// record in the queue log (log.go) holding its envelope (JSON) and its
// bytes, appended and flushed through package durable with the records
// of every message arriving meanwhile. Every later state change is
// another record: a new envelope, or the removal. A message larger than
// Options.InlineMax keeps its bytes in a file of its own (msg/ID), written and
// flushed before its record.
//
// queue never answers a client and never delivers; it only persists and
// hands out envelopes and message bytes.
package queue

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"postline/durable"
)

// DefaultInlineMax is the largest message kept in the queue log itself;
// Store holds at most this much of a message in memory.
const DefaultInlineMax = 1 << 20

// Spool is a queue directory.
type Spool struct {
	dir       string
	fs        durable.FS
	inlineMax int
	log       *segmentLog
	removed   *removedLog
	// flushFailed is told of a failed flush (OnFlushFailure).
	flushFailed func(error)
	// What Recover dropped (never acknowledged) and set aside in
	// damaged/ (envelopes that do not decode), for the log.
	dropped, damaged []string
	// frames recycles the buffers Store builds its records in.
	frames sync.Pool
}

// Options tune a spool; the zero value is the default.
type Options struct {
	// SegmentSize is the size past which the log begins a new segment
	// (DefaultSegmentSize when 0).
	SegmentSize int64
	// InlineMax is the largest message kept in the log itself
	// (DefaultInlineMax when 0); a larger one gets a file of its own.
	InlineMax int
}

// Open prepares the spool under dir (mode 0700), replays its log and
// returns it.
func Open(dir string, fs durable.FS) (*Spool, error) { return OpenWith(dir, fs, Options{}) }

// OpenWith is Open with options.
func OpenWith(dir string, fs durable.FS, opts Options) (*Spool, error) {
	if opts.InlineMax <= 0 {
		opts.InlineMax = DefaultInlineMax
	}
	s := &Spool{dir: dir, fs: fs, inlineMax: opts.InlineMax}
	for _, d := range []string{dir, s.sub("tmp"), s.sub("msg"), s.sub("env")} {
		if err := durable.MkdirAll(fs, d, 0o700); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	log, err := openLog(fs, s.sub("log"), opts.SegmentSize)
	if err != nil {
		return nil, err
	}
	s.log = log
	removed, err := openRemovedLog(fs, s.sub("removed.log"), s.sub("removed.old.log"))
	if err != nil {
		log.close()
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
func (s *Spool) Close() error { return errors.Join(s.removed.close(), s.log.close()) }

func (s *Spool) sub(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

// TempDir is a folder on the spool's file system for transient files
// (Recover empties it).
func (s *Spool) TempDir() string { return s.sub("tmp") }

// Store makes a new message durable: its bytes from data, then env.
// env.Size is set from the bytes read. When Store returns nil the
// message survives a crash, so the caller may answer 250.
func (s *Spool) Store(env *Envelope, data io.Reader) error {
	if !ValidID(env.ID) {
		return fmt.Errorf("queue: invalid id %q", env.ID)
	}
	bufp, ok := s.frames.Get().(*[]byte)
	if !ok {
		b := make([]byte, 0, 16<<10)
		bufp = &b
	}
	defer func() {
		if cap(*bufp) <= 2*DefaultInlineMax {
			s.frames.Put(bufp)
		}
	}()
	frame := beginStoreFrame(*bufp, env.ID)
	head := len(frame)
	b := bytes.NewBuffer(frame)
	_, err := b.ReadFrom(io.LimitReader(data, int64(s.inlineMax)+1))
	*bufp = b.Bytes()
	if err != nil {
		return fmt.Errorf("queue: store %s: %w", env.ID, err)
	}
	if len(*bufp)-head > s.inlineMax {
		return s.storeExternal(env, (*bufp)[head:], data)
	}
	env.Size, env.Checksum = int64(len(*bufp)-head), 0 // the record's own checksum covers it
	encoded, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("queue: store %s: %w", env.ID, err)
	}
	*bufp = endStoreFrame(*bufp, encoded)
	if err := s.log.store(env.ID, *bufp, env.Size); err != nil {
		return s.checked(fmt.Errorf("queue: store %s: %w", env.ID, err))
	}
	return s.flushStore(env.ID, false)
}

// flushStore makes a stored message durable. When the flush fails the
// client is told to try again, so the message is taken back: a removal
// is appended, which the restart that follows a failed flush finds
// unless the failure lost it too, and a data file of its own goes
// (Recover drops a record whose data file is missing).
func (s *Spool) flushStore(id string, external bool) error {
	err := s.flush("store", id)
	if err != nil {
		s.log.remove(id)
		if external {
			s.fs.Remove(s.sub("msg", id))
		}
	}
	return err
}

// flush makes the log's records durable, then moves messages out of old
// segments that are mostly dead. what and id name the caller's step in
// an error.
func (s *Spool) flush(what, id string) error {
	if err := s.log.flush(); err != nil {
		return s.checked(fmt.Errorf("queue: %s %s: %w", what, id, err))
	}
	// A move that could not be made is tried at the next flush; one
	// that a failed flush ended fails this caller too.
	if err := s.log.compactOldest(); errors.Is(err, durable.ErrFlushFailed) {
		return s.checked(fmt.Errorf("queue: compact the log: %w", err))
	}
	return nil
}

// storeExternal stores a message larger than s.inlineMax: head, then the
// rest of its bytes, into msg/ID, made durable before its envelope
// goes into the log.
func (s *Spool) storeExternal(env *Envelope, head []byte, rest io.Reader) error {
	sum := crc32.New(castagnoli)
	err := durable.Write(s.fs, s.sub("tmp", env.ID+".msg"), s.sub("msg", env.ID), 0o600,
		func(w io.Writer) error {
			// Through a big buffer, not io.Copy: rest may be a small
			// bufio.Reader whose WriteTo would write the file in 4 KiB
			// pieces, and read its source in as many calls.
			bw := bufio.NewWriterSize(io.MultiWriter(w, sum), externalWriteBuffer)
			n, err := bw.ReadFrom(io.MultiReader(bytes.NewReader(head), rest))
			env.Size = n
			if err != nil {
				return err
			}
			return bw.Flush()
		})
	if err != nil {
		s.fs.Remove(s.sub("msg", env.ID)) // renamed before a failed flush: not acknowledged
		return s.checked(fmt.Errorf("queue: store %s: %w", env.ID, err))
	}
	env.Checksum = sum.Sum32()
	encoded, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("queue: store %s: %w", env.ID, err)
	}
	if err := s.log.external(env.ID, encoded); err != nil {
		s.fs.Remove(s.sub("msg", env.ID))
		return s.checked(fmt.Errorf("queue: store %s: %w", env.ID, err))
	}
	return s.flushStore(env.ID, true)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// externalWriteBuffer is the size of the writes that make a message's
// own data file.
const externalWriteBuffer = 256 << 10

// Update durably records env's current state.
func (s *Spool) Update(env *Envelope) error {
	encoded, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("queue: encode envelope %s: %w", env.ID, err)
	}
	if err := s.log.update(env.ID, encoded); err != nil {
		return s.checked(fmt.Errorf("queue: update %s: %w", env.ID, err))
	}
	return s.flush("update", env.ID)
}

// Remove deletes a finished message: durably, so that a restart does not
// deliver it again; a message with a file of its own loses it after.
func (s *Spool) Remove(id string) error {
	e, err := s.log.remove(id)
	if err != nil {
		return s.checked(fmt.Errorf("queue: remove %s: %w", id, err))
	}
	if err := s.flush("remove", id); err != nil {
		return err
	}
	if e == nil || e.data.seg == nil { // its data is a file of its own (or it was not queued)
		if err := s.fs.Remove(s.sub("msg", id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("queue: remove data %s: %w", id, err)
		}
	}
	return s.removed.add(id)
}

// Queued reports whether message id was queued: it is in the spool, or
// it was removed since (delivered, bounced, deleted).
func (s *Spool) Queued(id string) (bool, error) {
	if !ValidID(id) {
		return false, nil
	}
	if s.Has(id) {
		return true, nil
	}
	return s.removed.has(id)
}

// Has reports whether message id is in the spool (or its data is), so
// that an ID proposed by a client is never reused.
func (s *Spool) Has(id string) bool {
	if !ValidID(id) {
		return false
	}
	if _, ok := s.log.entry(id); ok {
		return true
	}
	_, err := os.Lstat(s.sub("msg", id))
	return !errors.Is(err, os.ErrNotExist)
}

// OpenMessage opens the stored bytes of message id.
func (s *Spool) OpenMessage(id string) (io.ReadCloser, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("queue: invalid id %q", id)
	}
	e, ok := s.log.entry(id)
	if !ok {
		return nil, fmt.Errorf("queue: message %s: %w", id, os.ErrNotExist)
	}
	if e.data.seg == nil {
		return os.Open(s.sub("msg", id))
	}
	return io.NopCloser(e.data.reader()), nil
}

// Envelope implements Queue: it reads message id's latest envelope back.
func (s *Spool) Envelope(id string) (*Envelope, error) {
	e, ok := s.log.entry(id)
	if !ok {
		return nil, fmt.Errorf("queue: message %s: %w", id, os.ErrNotExist)
	}
	data, err := e.env.appendTo(nil)
	if err != nil {
		return nil, fmt.Errorf("queue: envelope of %s: %w", id, err)
	}
	return decodeEnvelope(id, data)
}

// Recover is run once at start, before anything is stored: it moves the
// envelopes of older versions (env/ID files) into the log, deletes what
// a crash left half-written, and returns the queued envelopes, oldest
// first.
func (s *Spool) Recover() ([]*Envelope, error) {
	if err := s.clearDir(s.sub("tmp")); err != nil {
		return nil, err
	}
	if err := s.migrate(); err != nil {
		return nil, err
	}
	envs, err := s.decodeReplayed()
	if err != nil {
		return nil, err
	}
	if err := s.removeOrphanData(); err != nil {
		return nil, err
	}
	sort.Slice(envs, func(i, j int) bool { return envs[i].ID < envs[j].ID })
	return envs, nil
}

// decodeReplayed decodes the envelopes the log held; one that does not
// decode is written to damaged/ for the admin and leaves the queue.
func (s *Spool) decodeReplayed() ([]*Envelope, error) {
	var envs []*Envelope
	err := s.log.eachEnvelope(func(id string, data []byte, external bool) error {
		env, err := decodeEnvelope(id, data)
		if err == nil && external {
			err = s.checkDataFile(env)
		}
		switch {
		case err == nil:
			envs = append(envs, env)
			return nil
		case errors.Is(err, errUnfinishedStore):
			return s.drop(id)
		}
		return s.setAsideRecord(id, data)
	})
	return envs, err
}

// checkDataFile checks that a message whose data is a file of its own
// has it. Without it, a message never attempted is a Store whose record
// reached the disk but not the flush that would have acknowledged it
// (errUnfinishedStore); one attempted before is damage.
func (s *Spool) checkDataFile(env *Envelope) error {
	_, err := os.Stat(s.sub("msg", env.ID))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist) && !env.attempted():
		return errUnfinishedStore
	}
	return fmt.Errorf("%w: %s has no message data: %v", errDamaged, env.ID, err)
}

// drop takes a message never acknowledged out of the log.
func (s *Spool) drop(id string) error {
	if _, err := s.log.remove(id); err != nil {
		return s.checked(fmt.Errorf("queue: drop %s: %w", id, err))
	}
	s.dropped = append(s.dropped, id)
	return s.flush("drop", id)
}

// removeOrphanData deletes data files no queued message has: a Store
// whose record never reached the disk.
func (s *Spool) removeOrphanData() error {
	names, err := readNames(s.sub("msg"))
	if err != nil {
		return err
	}
	for _, name := range names {
		if e, ok := s.log.entry(name); !ok || e.data.seg != nil {
			s.fs.Remove(s.sub("msg", name))
		}
	}
	return nil
}

// Inspect reads the envelopes of the queue in dir as its log and the
// files of older versions hold them, changing nothing: for tests and
// tools that look at a queue while its MTA runs. Envelopes that do not
// decode are left out.
func Inspect(dir string) (map[string]*Envelope, error) {
	l := &segmentLog{dir: filepath.Join(dir, "log"), entries: map[string]*logEntry{}}
	defer l.close()
	if err := l.replayAll(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	envs := map[string]*Envelope{}
	err := l.eachEnvelope(func(id string, data []byte, _ bool) error {
		if env, err := decodeEnvelope(id, data); err == nil {
			envs[id] = env
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names, _ := readNames(filepath.Join(dir, "env"))
	for _, id := range names {
		data, err := os.ReadFile(filepath.Join(dir, "env", id))
		if env, derr := decodeEnvelope(id, data); err == nil && derr == nil {
			envs[id] = env
		}
	}
	return envs, nil
}

package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"postline/durable"
)

// The queue log holds the spool's records in numbered segment files,
// log/0000000000000001.seg and on, only ever appended to. A record is
// made durable by an fsync of its segment that every writer appending
// meanwhile shares (durable.Group): one flush serves a batch of
// messages, where a file per message cost a create, a rename and an
// unlink each, and the filesystem's scan for a free inode (ext4's
// recently_deleted, 20 % of the MTA's CPU with files per message).
//
// Each process appends to a segment of its own, begun when it opens the
// log, so a record cut short by a crash can only be at the end of a
// segment that is never appended to again: replay reads each segment up
// to its first record that does not check out, and nothing acknowledged
// can lie past it (its flush covered everything before it).
//
// A segment is deleted once no live message has its envelope or data in
// it and every older segment is gone. Deleting in order keeps a removal
// from being undone: the record that removed a message is always in a
// later segment than the message, and a crash keeps some prefix of the
// unlinks (the ordered journal of ext4, see durable/crashtest).
// Messages that pin an old segment which is mostly dead are moved: their
// latest envelope and data are appended again (compactOldest).

// recordKind is a record's first byte.
type recordKind byte

const (
	kindStore    recordKind = 'S' // data length, data, then the envelope
	kindExternal recordKind = 'X' // the envelope; the data is the file msg/ID
	kindUpdate   recordKind = 'U' // a new state of a stored message's envelope
	kindRemove   recordKind = 'R' // the message left the queue
)

// A record is framed as: body length (4 bytes), CRC-32C of the kind, ID
// and body (4 bytes), kind (1 byte), the message's ID (16 bytes), body.
const (
	idLen       = 16
	frameHeader = 4 + 4 + 1 + idLen
	maxBody     = 1 << 30 // a guard against a length that is garbage
)

// DefaultSegmentSize is the size past which the log begins a new segment.
const DefaultSegmentSize = 64 << 20

// segment is one file of the log.
type segment struct {
	no   uint64
	path string
	r    *os.File // reads envelopes and data back
	size int64
	refs int   // envelopes and data of live messages in it
	live int64 // their bytes
}

// span is a byte range in a segment; seg nil is none.
type span struct {
	seg    *segment
	off, n int64
}

// logEntry is where a live message's envelope and data are.
type logEntry struct {
	env  span
	data span // none: the data is the file msg/ID
}

type segmentLog struct {
	fs      durable.FS
	dir     string
	maxSize int64
	flushes durable.Group

	mu       sync.Mutex
	broken   error        // a rotation failed half-way: every write fails
	w        durable.File // appends to cur
	retired  durable.File // the previous segment's, which a flush may be syncing
	cur      *segment
	segs     []*segment // oldest first; cur is last
	entries  map[string]*logEntry
	released []span // spans that records since the last flush made dead
	moving   bool   // compactOldest runs
}

// openLog replays the segments in dir and begins a new one.
func openLog(fs durable.FS, dir string, maxSize int64) (*segmentLog, error) {
	if err := durable.MkdirAll(fs, dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: log: %w", err)
	}
	l := &segmentLog{fs: fs, dir: dir, maxSize: maxSize, entries: map[string]*logEntry{}}
	if err := l.replayAll(); err != nil {
		l.close()
		return nil, err
	}
	if err := l.begin(); err != nil {
		l.close()
		return nil, err
	}
	l.freeDead()
	return l, nil
}

func (l *segmentLog) segPath(no uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%016x.seg", no))
}

// replayAll reads every segment, oldest first, into l.entries.
func (l *segmentLog) replayAll() error {
	names, err := readNames(l.dir)
	if err != nil {
		return err
	}
	var nos []uint64
	for _, n := range names {
		if no, err := strconv.ParseUint(strings.TrimSuffix(n, ".seg"), 16, 64); err == nil && strings.HasSuffix(n, ".seg") {
			nos = append(nos, no)
		}
	}
	slices.Sort(nos)
	for _, no := range nos {
		if err := l.replay(no); err != nil {
			return err
		}
	}
	for _, e := range l.entries {
		e.env.seg.hold(e.env)
		e.data.seg.hold(e.data)
	}
	return nil
}

// replay reads one segment's records up to the first that does not
// check out: the end of what the process that wrote it flushed, or later.
func (l *segmentLog) replay(no uint64) error {
	path := l.segPath(no)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("queue: log: %w", err)
	}
	seg := &segment{no: no, path: path, r: f}
	l.segs = append(l.segs, seg)
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("queue: log: %w", err)
	}
	seg.size = st.Size()
	sr := io.NewSectionReader(f, 0, seg.size)
	var off int64
	for {
		kind, id, body, err := readRecord(sr, off)
		if err != nil {
			return nil // the end, or the tail of a crash
		}
		l.apply(seg, off+frameHeader, kind, id, body)
		off += frameHeader + int64(len(body))
	}
}

// apply replays one record; bodyAt is where its body starts in seg.
func (l *segmentLog) apply(seg *segment, bodyAt int64, kind recordKind, id string, body []byte) {
	switch kind {
	case kindStore:
		l.entries[id] = storeEntry(seg, bodyAt, int64(len(body)), int64(binary.LittleEndian.Uint32(body)))
	case kindExternal:
		l.entries[id] = &logEntry{env: span{seg, bodyAt, int64(len(body))}}
	case kindUpdate:
		if e := l.entries[id]; e != nil { // else removed, and its store deleted
			e.env = span{seg, bodyAt, int64(len(body))}
		}
	case kindRemove:
		delete(l.entries, id)
	}
}

var errBadRecord = errors.New("queue: log: record does not check out")

// readRecord reads the record at off; any error ends the segment.
func readRecord(r io.ReaderAt, off int64) (recordKind, string, []byte, error) {
	var h [frameHeader]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return 0, "", nil, err
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	if n > maxBody {
		return 0, "", nil, errBadRecord
	}
	body := make([]byte, n)
	if _, err := r.ReadAt(body, off+frameHeader); err != nil && n > 0 { // a removal's body is empty
		return 0, "", nil, err
	}
	sum := crc32.Update(crc32.Checksum(h[8:], castagnoli), castagnoli, body)
	kind, id := recordKind(h[8]), string(h[9:frameHeader])
	if sum != binary.LittleEndian.Uint32(h[4:8]) || !ValidID(id) || !wellFormed(kind, body) {
		return 0, "", nil, errBadRecord
	}
	return kind, id, body, nil
}

func wellFormed(kind recordKind, body []byte) bool {
	switch kind {
	case kindStore:
		return len(body) >= 4 && int64(binary.LittleEndian.Uint32(body)) <= int64(len(body)-4)
	case kindExternal, kindUpdate, kindRemove:
		return true
	}
	return false
}

// storeEntry is where a store record's data and envelope are: its body,
// at bodyAt in seg, is the data's length (4 bytes), the data, then the
// envelope.
func storeEntry(seg *segment, bodyAt, bodyLen, dataLen int64) *logEntry {
	data := span{seg, bodyAt + 4, dataLen}
	return &logEntry{data: data, env: span{seg, data.off + dataLen, bodyLen - 4 - dataLen}}
}

// beginFrame starts a record of kind for id in buf, leaving room for the
// length and checksum that sealFrame fills in.
func beginFrame(buf []byte, kind recordKind, id string) []byte {
	buf = append(buf[:0], 0, 0, 0, 0, 0, 0, 0, 0, byte(kind))
	return append(buf, id...)
}

func sealFrame(buf []byte) []byte {
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(buf)-frameHeader))
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(buf[8:], castagnoli))
	return buf
}

// envelopeFrame is the record of kind for id whose body is env.
func envelopeFrame(kind recordKind, id string, env []byte) []byte {
	return sealFrame(append(beginFrame(nil, kind, id), env...))
}

// beginStoreFrame starts a store record in buf; the message's data is to
// be appended to it, then endStoreFrame called.
func beginStoreFrame(buf []byte, id string) []byte {
	return append(beginFrame(buf, kindStore, id), 0, 0, 0, 0)
}

// endStoreFrame fills in the data's length, appends env and seals.
func endStoreFrame(frame []byte, env []byte) []byte {
	binary.LittleEndian.PutUint32(frame[frameHeader:], uint32(len(frame)-frameHeader-4))
	return sealFrame(append(frame, env...))
}

func (s *segment) hold(sp span) {
	if s != nil {
		s.refs++
		s.live += sp.n
	}
}

func (s *segment) release(sp span) {
	if s != nil {
		s.refs--
		s.live -= sp.n
	}
}

// begin starts the next segment for this process's records. Its name is
// made durable before any record in it can be acknowledged.
func (l *segmentLog) begin() error {
	no := uint64(1)
	if len(l.segs) > 0 {
		no = l.segs[len(l.segs)-1].no + 1
	}
	path := l.segPath(no)
	// Appending: after a write cut short is truncated away, the next
	// record goes where it began.
	w, err := l.fs.OpenAppend(path, 0o600)
	if err != nil {
		return fmt.Errorf("queue: log: %w", err)
	}
	r, err := os.Open(path)
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		w.Close()
		if r != nil {
			r.Close()
		}
		return fmt.Errorf("queue: log: new segment: %w", err)
	}
	if l.retired != nil {
		l.retired.Close()
	}
	l.retired, l.w = l.w, w
	l.cur = &segment{no: no, path: path, r: r}
	l.segs = append(l.segs, l.cur)
	return nil
}

// write appends a sealed frame and returns where its body is. The caller
// holds l.mu.
func (l *segmentLog) write(frame []byte) (*segment, int64, error) {
	if l.broken != nil {
		return nil, 0, l.broken
	}
	if l.cur.size >= l.maxSize {
		if err := l.rotate(); err != nil {
			l.broken = fmt.Errorf("%w: %w", durable.ErrFlushFailed, err)
			return nil, 0, l.broken
		}
	}
	if _, err := l.w.Write(frame); err != nil {
		// Part of the frame may be in the file (a disk full, say): it
		// goes, or nothing may follow it.
		if terr := l.fs.Truncate(l.cur.path, l.cur.size); terr != nil {
			l.broken = fmt.Errorf("%w: queue: log: %w (and dropping the part written: %w)", durable.ErrFlushFailed, err, terr)
			return nil, 0, l.broken
		}
		return nil, 0, fmt.Errorf("queue: log: %w", err)
	}
	at := l.cur.size + frameHeader
	l.cur.size += int64(len(frame))
	return l.cur, at, nil
}

// rotate flushes the current segment, so that a flush of the next one
// covers every record, and begins the next.
func (l *segmentLog) rotate() error {
	if err := l.w.Sync(); err != nil {
		return fmt.Errorf("queue: log: rotate: %w", err)
	}
	return l.begin()
}

// flush makes every record appended so far durable, sharing the fsync
// with concurrent callers, then lets go of what those records made dead.
func (l *segmentLog) flush() error {
	return l.flushes.Do(func() error {
		l.mu.Lock()
		w, released := l.w, l.released
		l.released = nil
		l.mu.Unlock()
		if err := w.Sync(); err != nil {
			return err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, sp := range released {
			sp.seg.release(sp)
		}
		l.freeDead()
		return nil
	})
}

// freeDead deletes the oldest segments while nothing live is in them.
// The caller holds l.mu.
func (l *segmentLog) freeDead() {
	for len(l.segs) > 1 && l.segs[0].refs == 0 {
		seg := l.segs[0]
		if err := l.fs.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return // tried again after the next flush
		}
		seg.r.Close()
		l.segs = l.segs[1:]
	}
}

// store appends a message whose frame the caller built (beginStoreFrame).
func (l *segmentLog) store(id string, frame []byte, dataLen int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	seg, at, err := l.write(frame)
	if err != nil {
		return err
	}
	l.replace(id, storeEntry(seg, at, int64(len(frame))-frameHeader, dataLen))
	return nil
}

// replace puts e in place of id's entry; the old one's spans are let go
// once a flush has covered the record that replaced them.
func (l *segmentLog) replace(id string, e *logEntry) {
	if old := l.entries[id]; old != nil {
		l.released = append(l.released, old.env, old.data)
	}
	e.env.seg.hold(e.env)
	e.data.seg.hold(e.data)
	l.entries[id] = e
}

// external appends the envelope of a message whose data is a file.
func (l *segmentLog) external(id string, env []byte) error {
	frame := envelopeFrame(kindExternal, id, env)
	l.mu.Lock()
	defer l.mu.Unlock()
	seg, at, err := l.write(frame)
	if err != nil {
		return err
	}
	l.replace(id, &logEntry{env: span{seg, at, int64(len(env))}})
	return nil
}

// update appends a new envelope of a live message.
func (l *segmentLog) update(id string, env []byte) error {
	frame := envelopeFrame(kindUpdate, id, env)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[id]
	if e == nil {
		return fmt.Errorf("queue: log: update of %s, which is not queued", id)
	}
	seg, at, err := l.write(frame)
	if err != nil {
		return err
	}
	l.replace(id, &logEntry{env: span{seg, at, int64(len(env))}, data: e.data})
	return nil
}

// remove appends the removal of id and returns where it was; nil when id
// was not live.
func (l *segmentLog) remove(id string) (*logEntry, error) {
	frame := sealFrame(beginFrame(nil, kindRemove, id))
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[id]
	if e == nil {
		return nil, nil
	}
	if _, _, err := l.write(frame); err != nil {
		return e, err
	}
	l.released = append(l.released, e.env, e.data)
	delete(l.entries, id)
	return e, nil
}

// entry returns where id's envelope and data are, if it is live.
func (l *segmentLog) entry(id string) (logEntry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[id]
	if e == nil {
		return logEntry{}, false
	}
	return *e, true
}

// eachEnvelope calls f with the latest envelope (JSON) of every live
// message, in a buffer f must not keep, and whether its data is a file
// of its own.
func (l *segmentLog) eachEnvelope(f func(id string, env []byte, external bool) error) error {
	l.mu.Lock()
	ids := make([]string, 0, len(l.entries))
	for id := range l.entries {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	var buf []byte
	for _, id := range ids {
		e, ok := l.entry(id)
		if !ok {
			continue
		}
		var err error
		if buf, err = e.env.appendTo(buf[:0]); err != nil {
			return fmt.Errorf("queue: log: envelope of %s: %w", id, err)
		}
		if err := f(id, buf, e.data.seg == nil); err != nil {
			return err
		}
	}
	return nil
}

// reader returns the bytes of sp.
func (sp span) reader() *io.SectionReader { return io.NewSectionReader(sp.seg.r, sp.off, sp.n) }

// appendTo reads sp's bytes onto the end of buf.
func (sp span) appendTo(buf []byte) ([]byte, error) {
	n := len(buf)
	buf = slices.Grow(buf, int(sp.n))[:n+int(sp.n)]
	if _, err := sp.seg.r.ReadAt(buf[n:], sp.off); err != nil && sp.n > 0 {
		return nil, err
	}
	return buf, nil
}

func (l *segmentLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, s := range l.segs {
		errs = append(errs, s.r.Close())
	}
	for _, w := range []durable.File{l.w, l.retired} {
		if w != nil {
			errs = append(errs, w.Close())
		}
	}
	return errors.Join(errs...)
}

// compactOldest moves the live messages out of the oldest segment while
// the sealed segments are less than half live, so that a few messages
// deferred for days do not keep every segment after theirs on disk.
func (l *segmentLog) compactOldest() error {
	oldest, ids := l.claimSparseOldest()
	if oldest == nil {
		return nil // the common case: one look under the lock
	}
	defer func() {
		l.mu.Lock()
		l.moving = false
		l.mu.Unlock()
	}()
	for ; oldest != nil; oldest, ids = l.sparseOldest() {
		for _, id := range ids {
			if err := l.move(id); err != nil {
				return err
			}
		}
		if err := l.flush(); err != nil {
			return err
		}
		if l.oldest() == oldest { // still held, by a read or a failed remove
			return nil
		}
	}
	return nil
}

// claimSparseOldest is sparseOldest for a compaction to start, when none
// runs: it then marks one running.
func (l *segmentLog) claimSparseOldest() (*segment, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.moving {
		return nil, nil
	}
	oldest, ids := l.sparseOldestLocked()
	l.moving = oldest != nil
	return oldest, ids
}

// sparseOldest returns the oldest segment and the messages in it when the
// sealed segments hold less live bytes than half their size.
func (l *segmentLog) sparseOldest() (*segment, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sparseOldestLocked()
}

// sparseOldestLocked is sparseOldest with l.mu held.
func (l *segmentLog) sparseOldestLocked() (*segment, []string) {
	if len(l.segs) < 2 {
		return nil, nil
	}
	var size, live int64
	for _, s := range l.segs[:len(l.segs)-1] {
		size, live = size+s.size, live+s.live
	}
	if live*2 >= size {
		return nil, nil
	}
	oldest := l.segs[0]
	var ids []string
	for id, e := range l.entries {
		if e.env.seg == oldest || e.data.seg == oldest {
			ids = append(ids, id)
		}
	}
	return oldest, ids
}

func (l *segmentLog) oldest() *segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[0]
}

// move appends id's latest envelope and data again, unless a record
// about id came meanwhile (it is then newer than what was read).
func (l *segmentLog) move(id string) error {
	e, ok := l.entry(id)
	if !ok {
		return nil
	}
	frame, err := l.movedFrame(id, e)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.entries[id]; now == nil || *now != e {
		return nil
	}
	if err != nil {
		return fmt.Errorf("queue: log: move %s: %w", id, err)
	}
	seg, at, err := l.write(frame)
	if err != nil {
		return err
	}
	moved := &logEntry{env: span{seg, at, e.env.n}}
	if e.data.seg != nil {
		moved = storeEntry(seg, at, int64(len(frame))-frameHeader, e.data.n)
	}
	l.replace(id, moved)
	return nil
}

// movedFrame reads e back into the record that moves it.
func (l *segmentLog) movedFrame(id string, e logEntry) ([]byte, error) {
	env, err := e.env.appendTo(nil)
	if err != nil {
		return nil, err
	}
	if e.data.seg == nil {
		return envelopeFrame(kindExternal, id, env), nil
	}
	frame, err := e.data.appendTo(beginStoreFrame(nil, id))
	if err != nil {
		return nil, err
	}
	return endStoreFrame(frame, env), nil
}

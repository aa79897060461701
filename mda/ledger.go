package mda

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"postline/durable"
)

// Ledger is the MDA's durable record of the copies it has written, by
// queue ID and recipient, so that a message the MTA delivers again after
// a crash between the MDA's 250 and the MTA's own record of it is
// answered 250 without a second copy in the mailbox.
//
// Before a copy is renamed into new/, a "begin" record naming its file
// is appended to a log and fsynced (beside the file's own fsync); once
// the file is in new/, a "done"
// record is appended without an fsync. A begin without a done (a crash
// in between, or a done lost with the page cache) is settled by looking
// for the file in new/ and cur/. The log has two generations; records
// are forgotten after lifetime (the MTA's queue_lifetime), past which no
// message is delivered again.
//
// Concurrent Begins share their fsyncs (group commit): the log is
// flushed once for every record appended while the previous flush ran.
type Ledger struct {
	fs       durable.FS
	dir      string
	lifetime time.Duration
	flushes  durable.Group

	mu      sync.Mutex
	broken  error // a rotation failed half-way: every write fails
	log     durable.File
	retired durable.File // the previous generation, kept open for a flush under way
	started time.Time    // when the current log generation began
	copies  map[copyKey]Copy
}

type copyKey struct{ queueID, rcpt string }

// Copy is one recipient's copy of a message in a Maildir.
type Copy struct {
	Dir  string    // the Maildir (or Maildir++ folder) below mail_root
	Name string    // the file's name in new/; in cur/ it gains ":2,FLAGS"
	Done bool      // the file was seen in new/
	At   time.Time // when the copy was begun
}

// record is one line of the log.
type record struct {
	Op   string `json:"op"` // "begin" or "done"
	ID   string `json:"id"`
	Rcpt string `json:"rcpt"`
	Dir  string `json:"dir,omitempty"`
	Name string `json:"name,omitempty"`
	At   int64  `json:"at"` // Unix seconds
}

const (
	ledgerCurrent = "delivered.log"
	ledgerOld     = "delivered.old.log"
)

// OpenLedger loads the records in dir younger than lifetime and opens
// the current log for appending; every write goes through fs.
func OpenLedger(fs durable.FS, dir string, lifetime time.Duration, now time.Time) (*Ledger, error) {
	l := &Ledger{fs: fs, dir: dir, lifetime: lifetime, copies: map[copyKey]Copy{}}
	if _, err := l.load(ledgerOld, now); err != nil {
		return nil, err
	}
	first, err := l.load(ledgerCurrent, now)
	if err != nil {
		return nil, err
	}
	l.started = first
	if first.IsZero() {
		l.started = now
	}
	if err := l.openLog(); err != nil {
		return nil, err
	}
	return l, l.rotateIfOld(now)
}

// load reads one generation and returns the time of its first record. A
// last line cut short by a crash is dropped from the file, so the next
// record starts on a line of its own.
func (l *Ledger) load(name string, now time.Time) (time.Time, error) {
	path := filepath.Join(l.dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("mda: delivery ledger: %w", err)
	}
	if end := bytes.LastIndexByte(data, '\n') + 1; end < len(data) {
		if err := l.fs.Truncate(path, int64(end)); err != nil {
			return time.Time{}, fmt.Errorf("mda: delivery ledger: drop a torn record: %w", err)
		}
		data = data[:end]
	}
	var first time.Time
	for sc := bufio.NewScanner(bytes.NewReader(data)); sc.Scan(); {
		var r record
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		at := time.Unix(r.At, 0)
		if first.IsZero() {
			first = at
		}
		if now.Sub(at) <= l.lifetime {
			l.apply(r, at)
		}
	}
	return first, nil
}

func (l *Ledger) apply(r record, at time.Time) {
	k := copyKey{r.ID, r.Rcpt}
	switch r.Op {
	case "begin":
		l.copies[k] = Copy{Dir: r.Dir, Name: r.Name, At: at}
	case "done":
		if c, ok := l.copies[k]; ok {
			c.Done = true
			l.copies[k] = c
		}
	}
}

// openLog opens the current generation for appending. Its name is
// made durable at once: an fsync of the file alone would keep the
// records of a file whose name a power cut may forget (found by the
// power-loss explorer, durable/crashtest).
func (l *Ledger) openLog() error {
	f, err := l.fs.OpenAppend(filepath.Join(l.dir, ledgerCurrent), 0o600)
	if err != nil {
		return fmt.Errorf("mda: delivery ledger: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		return fmt.Errorf("mda: delivery ledger: %w", err)
	}
	l.log = f
	return nil
}

// Find returns the copy of queueID for rcpt begun within the lifetime.
func (l *Ledger) Find(queueID, rcpt string) (Copy, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.copies[copyKey{queueID, rcpt}]
	return c, ok
}

// Begin records that the copy of queueID for rcpt is about to be
// written as file name in the Maildir dir; Flush makes it durable, and
// must have returned before the file is in new/.
func (l *Ledger) Begin(queueID, rcpt, dir, name string, now time.Time) error {
	r := record{Op: "begin", ID: queueID, Rcpt: rcpt, Dir: dir, Name: name, At: now.Unix()}
	return l.append(r, now)
}

// Flush makes every record written so far durable, sharing the fsync
// with concurrent callers.
func (l *Ledger) Flush() error {
	if err := l.flushes.Do(l.flush); err != nil {
		return fmt.Errorf("mda: delivery ledger: %w", err)
	}
	return nil
}

// Done records that the copy begun last for queueID and rcpt is in its
// Maildir. It is not fsynced: without it the Maildir is looked at again.
func (l *Ledger) Done(queueID, rcpt string, now time.Time) error {
	return l.append(record{Op: "done", ID: queueID, Rcpt: rcpt, At: now.Unix()}, now)
}

func (l *Ledger) append(r record, now time.Time) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("mda: delivery ledger: %w", err)
	}
	return l.write(r, append(line, '\n'), now)
}

func (l *Ledger) write(r record, line []byte, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	if err := l.rotateIfOld(now); err != nil {
		// Half rotated, the log cannot be trusted or appended to:
		// postline-mda restarts on ErrFlushFailed and reopens it.
		l.broken = fmt.Errorf("%w: %w", durable.ErrFlushFailed, err)
		return l.broken
	}
	if _, err := l.log.Write(line); err != nil {
		return fmt.Errorf("mda: delivery ledger: %w", err)
	}
	l.apply(r, now)
	return nil
}

// flush makes every record written so far durable; a rotation syncs the
// generation it retires, so syncing the current one is enough.
func (l *Ledger) flush() error {
	l.mu.Lock()
	f := l.log
	l.mu.Unlock()
	return f.Sync()
}

// rotateIfOld starts a new generation once the current one is older than
// the lifetime: the previous one, older still, is dropped.
func (l *Ledger) rotateIfOld(now time.Time) error {
	if now.Sub(l.started) <= l.lifetime {
		return nil
	}
	if err := l.log.Sync(); err != nil {
		return fmt.Errorf("mda: delivery ledger: rotate: %w", err)
	}
	if l.retired != nil {
		l.retired.Close()
	}
	l.retired = l.log // a flush may be syncing it right now
	cur, old := filepath.Join(l.dir, ledgerCurrent), filepath.Join(l.dir, ledgerOld)
	if err := l.fs.Rename(cur, old); err != nil {
		return fmt.Errorf("mda: delivery ledger: rotate: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("mda: delivery ledger: rotate: %w", err)
	}
	for k, c := range l.copies {
		if now.Sub(c.At) > l.lifetime {
			delete(l.copies, k)
		}
	}
	l.started = now
	return l.openLog()
}

// Close closes the log.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.retired != nil {
		l.retired.Close()
	}
	return l.log.Close()
}

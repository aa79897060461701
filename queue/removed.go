package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"postline/durable"
)

// removedLog remembers the IDs of messages that left the queue, so the
// MTA can still tell the MSA that a message was queued (Spool.Queued)
// after it has been delivered and removed: the MSA asks when its
// connection broke after the end of DATA, possibly seconds later and
// after an MTA restart. Appends are not fsynced: a process crash keeps
// them in the page cache, and the question only comes soon after one.
// Two generations of at most rotateAt bytes each bound the files; a
// lookup reads them, which is rare enough to need no index in memory.
type removedLog struct {
	fs       durable.FS
	mu       sync.Mutex
	cur, old string
	f        durable.File
	size     int64
}

const rotateRemovedAt = 1 << 20 // about 58,000 IDs per generation

func openRemovedLog(fs durable.FS, cur, old string) (*removedLog, error) {
	l := &removedLog{fs: fs, cur: cur, old: old}
	return l, l.open()
}

func (l *removedLog) open() error {
	f, err := l.fs.OpenAppend(l.cur, 0o600)
	if err != nil {
		return fmt.Errorf("queue: removed log: %w", err)
	}
	st, err := os.Stat(l.cur)
	if err != nil {
		f.Close()
		return fmt.Errorf("queue: removed log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

func (l *removedLog) add(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size >= rotateRemovedAt {
		l.f.Close()
		if err := l.fs.Rename(l.cur, l.old); err != nil {
			return fmt.Errorf("queue: removed log: rotate: %w", err)
		}
		if err := l.open(); err != nil {
			return err
		}
	}
	n, err := io.WriteString(l.f, id+"\n")
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("queue: removed log: %w", err)
	}
	return nil
}

func (l *removedLog) has(id string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, path := range []string{l.cur, l.old} {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("queue: removed log: %w", err)
		}
		found := false
		for sc := bufio.NewScanner(f); sc.Scan() && !found; {
			found = sc.Text() == id
		}
		f.Close()
		if found {
			return true, nil
		}
	}
	return false, nil
}

func (l *removedLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

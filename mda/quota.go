package mda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"postline/reply"
)

// usageTTL is how long a mailbox's measured size is trusted; the copies
// written meanwhile are added to it, and mail a reader deleted counts
// until the next measure.
const usageTTL = 30 * time.Second

// Quota bounds the bytes one mailbox holds: its Maildir's new/ and cur/
// and those of its Maildir++ folders. Measuring walks those folders, so
// the result is kept for usageTTL.
type Quota struct {
	Limit int64 // bytes per mailbox; 0 or less: no limit

	mu    sync.Mutex
	usage map[string]measured
}

type measured struct {
	bytes int64
	at    time.Time
}

// Reserve checks that size more bytes fit into mailbox and counts them
// as written; Release gives them back when the write failed.
func (q *Quota) Reserve(mailbox string, size int64, now time.Time) error {
	if q == nil || q.Limit <= 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m, ok := q.usage[mailbox]
	if !ok || now.Sub(m.at) > usageTTL {
		bytes, err := mailboxSize(mailbox)
		if err != nil {
			return fmt.Errorf("mda: quota of %s: %w", mailbox, err)
		}
		m = measured{bytes, now}
	}
	if m.bytes+size > q.Limit {
		return reply.MailboxFull
	}
	m.bytes += size
	if q.usage == nil {
		q.usage = map[string]measured{}
	}
	q.usage[mailbox] = m
	return nil
}

// Release undoes a Reserve whose copy was not written.
func (q *Quota) Release(mailbox string, size int64) {
	if q == nil || q.Limit <= 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if m, ok := q.usage[mailbox]; ok {
		m.bytes -= size
		q.usage[mailbox] = m
	}
}

// mailboxSize adds up the files of a Maildir and its Maildir++ folders
// (".Name" folders beside new/ and cur/). Symlinks are not followed.
func mailboxSize(mailbox string) (int64, error) {
	entries, err := os.ReadDir(mailbox)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // created at its first delivery
	}
	if err != nil {
		return 0, err
	}
	folders := []string{mailbox}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") && e.Name() != "." && e.Name() != ".." {
			folders = append(folders, filepath.Join(mailbox, e.Name()))
		}
	}
	var total int64
	for _, f := range folders {
		for _, sub := range []string{"new", "cur"} {
			n, err := filesSize(filepath.Join(f, sub))
			if err != nil {
				return 0, err
			}
			total += n
		}
	}
	return total, nil
}

func filesSize(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil { // a file a reader just moved is skipped
			total += info.Size()
		}
	}
	return total, nil
}

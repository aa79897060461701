package users

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// watched is a file read again when it changes, so an edit takes effect
// without a restart. parse turns its content into the value served; a
// missing file is the value of no content. On a read error the last
// good value stays.
type watched[T any] struct {
	path  string
	parse func(path string, data []byte) (T, error)

	mu     sync.Mutex
	value  T
	info   os.FileInfo // of the file when value was read
	readAt time.Time
}

// get returns the current value, reading the file first if it changed.
func (w *watched[T]) get() T {
	_ = w.refresh()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.value
}

// refresh re-reads the file unless it is surely unchanged since the last
// read: same file (an editor or `postline user` replaces it by rename),
// same size and mtime, and that mtime older than the read by more than
// the timestamp granularity of common filesystems, so an edit in the
// same second as the read is not missed.
func (w *watched[T]) refresh() error {
	st, err := os.Stat(w.path)
	if errors.Is(err, os.ErrNotExist) {
		v, err := w.parse(w.path, nil)
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.value, w.info = v, nil
		w.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	w.mu.Lock()
	old, readAt := w.info, w.readAt
	w.mu.Unlock()
	if old != nil && os.SameFile(old, st) && st.Size() == old.Size() &&
		st.ModTime().Equal(old.ModTime()) && readAt.Sub(st.ModTime()) > 2*time.Second {
		return nil
	}
	now := time.Now()
	data, err := os.ReadFile(w.path)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	v, err := w.parse(w.path, data)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.value, w.info, w.readAt = v, st, now
	w.mu.Unlock()
	return nil
}

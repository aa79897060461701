package outcomes

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultRetention is how long finished messages stay answerable.
const DefaultRetention = 7 * 24 * time.Hour

// ErrNotFound: no such message, or not the asking user's.
var ErrNotFound = errors.New("no such message")

// Store is the record of finished messages: a folder of files named by
// UTC day (2026-05-01.jsonl), a JSON line per message. A file older than
// the retention is deleted whole, so the record stays bounded.
//
// Durability: each line is written and the file flushed (fsync) before
// the MTA removes the message from the queue, so the record of a
// message that left the queue survives a crash; a crash in between
// leaves the message queued and recorded, and the queue's state, newer,
// is what a query answers. Only submissions (with an AuthUser) are
// recorded, so mail from the internet costs nothing here.
type Store struct {
	Dir       string
	Retention time.Duration
	Now       func() time.Time // nil: time.Now

	mu       sync.Mutex
	prunedOn string // the day old files were last deleted
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Record appends m, finished now, and flushes it.
func (s *Store) Record(m Message) error {
	now := s.now().UTC()
	m.Finished = now
	line, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("outcomes: encode %s: %w", m.ID, err)
	}
	day := now.Format(time.DateOnly)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(day)
	path := filepath.Join(s.Dir, day+".jsonl")
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("outcomes: %w", err)
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && statErr != nil {
		err = syncDir(s.Dir) // a new file: its name must survive too
	}
	if err != nil {
		return fmt.Errorf("outcomes: record %s: %w", m.ID, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// prune deletes the files past the retention, once a day.
func (s *Store) prune(today string) {
	if s.prunedOn == today {
		return
	}
	s.prunedOn = today
	for _, name := range s.files() {
		if s.expired(name) {
			os.Remove(filepath.Join(s.Dir, name))
		}
	}
}

// expired reports whether the day file name ended before the retention.
func (s *Store) expired(name string) bool {
	day, err := time.Parse(time.DateOnly, strings.TrimSuffix(name, ".jsonl"))
	return err == nil && s.now().Sub(day.Add(24*time.Hour)) > s.retention()
}

func (s *Store) retention() time.Duration {
	if s.Retention > 0 {
		return s.Retention
	}
	return DefaultRetention
}

// files lists the day files, newest first.
func (s *Store) files() []string {
	entries, _ := os.ReadDir(s.Dir)
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".jsonl") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names
}

// Find returns the record of message id, newest files first. It reads
// the files within the retention line by line: a week of submissions is
// read in well under a second, and queries are rare next to deliveries.
func (s *Store) Find(id string) (*Message, error) {
	needle := `"id":"` + id + `"`
	for _, name := range s.files() {
		if s.expired(name) {
			continue
		}
		if m, err := findIn(filepath.Join(s.Dir, name), id, needle); m != nil || err != nil {
			return m, err
		}
	}
	return nil, ErrNotFound
}

func findIn(path, id, needle string) (*Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil // pruned meanwhile
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var found *Message
	for sc.Scan() {
		if !strings.Contains(sc.Text(), needle) {
			continue
		}
		var m Message
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.ID == id {
			found = &m // the last line of the ID wins
		}
	}
	if err := sc.Err(); err != nil {
		return found, fmt.Errorf("outcomes: read %s: %w", path, err)
	}
	return found, nil
}

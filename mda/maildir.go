package mda

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-maildir"

	"postline/durable"
)

// Maildir writes messages into Maildirs durably: tmp/KEY is written and
// fsynced, renamed to new/KEY, and new/ is fsynced, all through package
// durable, before Deliver returns. go-maildir creates the folders; it
// does not fsync, so it is not used for the message itself.
type Maildir struct {
	FS       durable.FS
	Hostname string
	counter  atomic.Uint64
}

// Deliver copies msg into a new file in the Maildir at dir, creating the
// Maildir first if needed, and returns the file's unique key.
func (m *Maildir) Deliver(dir string, msg io.Reader) (string, error) {
	if err := m.ensure(dir); err != nil {
		return "", err
	}
	key := m.newKey(time.Now())
	err := durable.Write(m.FS, filepath.Join(dir, "tmp", key), filepath.Join(dir, "new", key), 0o600,
		func(w io.Writer) error {
			_, err := io.Copy(w, msg)
			return err
		})
	if err != nil {
		return "", fmt.Errorf("maildir %s: %w", dir, err)
	}
	return key, nil
}

// ensure creates the Maildir (mode 0700) and makes its folders durable.
func (m *Maildir) ensure(dir string) error {
	if st, err := os.Stat(filepath.Join(dir, "new")); err == nil && st.IsDir() {
		return nil
	}
	if err := durable.MkdirAll(m.FS, filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("maildir %s: %w", dir, err)
	}
	if err := maildir.Dir(dir).Init(); err != nil {
		return fmt.Errorf("maildir %s: create: %w", dir, err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := m.FS.SyncDir(d); err != nil {
			return fmt.Errorf("maildir %s: fsync %s: %w", dir, d, err)
		}
	}
	return nil
}

// newKey makes a unique file name in go-maildir's format:
// <unix seconds>.<pid><counter><20 random hex>.<hostname>.
func (m *Maildir) newKey(now time.Time) string {
	var rnd [10]byte
	rand.Read(rnd[:])
	host := strings.NewReplacer("/", `\057`, ":", `\072`).Replace(m.Hostname)
	return fmt.Sprintf("%d.%d%d%s.%s", now.Unix(), os.Getpid(), m.counter.Add(1), hex.EncodeToString(rnd[:]), host)
}

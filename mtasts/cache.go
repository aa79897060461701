package mtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Cached is a policy as the cache keeps it.
type Cached struct {
	Policy  *Policy   `json:"policy"`
	ID      string    `json:"id"`      // of the TXT record it was fetched for
	Fetched time.Time `json:"fetched"` // when
	Expires time.Time `json:"expires"` // fetched + max_age
}

// Cache keeps each domain's policy in memory and as a file in Dir
// (<domain>.json), so it survives restarts (§5.1: a policy is applied
// until its max_age runs out, even while its host is unreachable).
type Cache struct {
	Dir     string
	Fetcher *Fetcher
	Log     zerolog.Logger
	Now     func() time.Time // nil: time.Now

	mu  sync.Mutex
	mem map[string]*Cached
}

// Policy returns the policy to apply to mail for domain, nil when there
// is none (no record, mode none, or nothing fetched and nothing cached).
// It looks the TXT record up each time and fetches the policy again
// when its id changed or the cached one expired; a lookup or fetch that
// fails keeps the cached policy, and a policy that does not parse counts
// as a failed fetch, never as "enforce nothing".
func (c *Cache) Policy(ctx context.Context, domain string) *Cached {
	domain = strings.ToLower(domain)
	now := c.now()
	cached := c.load(domain)
	if cached != nil && !now.Before(cached.Expires) {
		cached = nil
	}
	id, err := c.Fetcher.LookupID(ctx, domain)
	switch {
	case err != nil:
		c.Log.Warn().Err(err).Str("domain", domain).Bool("cached", cached != nil).Msg("mta-sts record lookup failed")
		return usable(cached)
	case id == "" || cached != nil && cached.ID == id:
		return usable(cached)
	}
	p, err := c.Fetcher.Fetch(ctx, domain)
	if err != nil {
		c.Log.Warn().Err(err).Str("domain", domain).Bool("cached", cached != nil).Msg("mta-sts policy not fetched")
		return usable(cached)
	}
	fresh := &Cached{Policy: p, ID: id, Fetched: now, Expires: now.Add(p.MaxAge)}
	if err := c.store(domain, fresh); err != nil {
		c.Log.Warn().Err(err).Str("domain", domain).Msg("mta-sts policy not cached on disk")
	}
	c.Log.Info().Str("domain", domain).Str("mode", p.Mode).Strs("mx", p.MX).Str("id", id).Msg("mta-sts policy fetched")
	return usable(fresh)
}

// usable is c unless its mode is none.
func usable(c *Cached) *Cached {
	if c == nil || c.Policy.Mode == None {
		return nil
	}
	return c
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// load returns domain's cached policy from memory, else from its file.
func (c *Cache) load(domain string) *Cached {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.mem[domain]; ok {
		return p
	}
	b, err := os.ReadFile(c.path(domain))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.Log.Warn().Err(err).Msg("mta-sts cache unreadable")
		}
		return nil
	}
	var p Cached
	if err := json.Unmarshal(b, &p); err != nil || p.Policy == nil {
		c.Log.Warn().Err(err).Str("file", c.path(domain)).Msg("mta-sts cache file unreadable, ignored")
		return nil
	}
	c.remember(domain, &p)
	return &p
}

// store keeps p in memory and writes it to its file (temporary file,
// then rename: a crash leaves the old policy or the new one).
func (c *Cache) store(domain string, p *Cached) error {
	c.mu.Lock()
	c.remember(domain, p)
	c.mu.Unlock()
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("mta-sts cache: %w", err)
	}
	tmp := c.path(domain) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("mta-sts cache: %w", err)
	}
	return os.Rename(tmp, c.path(domain))
}

func (c *Cache) remember(domain string, p *Cached) {
	if c.mem == nil {
		c.mem = map[string]*Cached{}
	}
	c.mem[domain] = p
}

// path is domain's file; domain is a DNS name the MTA routes to, so it
// holds no "/" (checked anyway).
func (c *Cache) path(domain string) string {
	return filepath.Join(c.Dir, strings.ReplaceAll(domain, "/", "_")+".json")
}

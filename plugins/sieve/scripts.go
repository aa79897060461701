package main

import (
	"errors"
	"os"
	"sync"
	"time"

	"postline/plugins/sdk"
	"postline/sieve"
)

// scriptCache keeps each script parsed while its file stays the same, and
// remembers a broken one so that it is logged once, not per message.
type scriptCache struct {
	mu      sync.Mutex
	scripts map[string]cached
}

type cached struct {
	mtime  time.Time
	size   int64
	script *sieve.Script // nil: it did not parse
}

// maxScript bounds a script file: ManageSieve servers take far less.
const maxScript = 1 << 20

func newScriptCache() *scriptCache { return &scriptCache{scripts: map[string]cached{}} }

// load returns the script at path, parsed, or nil when there is none or
// it does not parse (logged once per version of the file).
func (c *scriptCache) load(path string) *sieve.Script {
	st, err := os.Stat(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			sdk.Log().Warn("sieve script unreadable; implicit keep", "script", path, "error", err)
		}
		return nil
	}
	c.mu.Lock()
	got, ok := c.scripts[path]
	c.mu.Unlock()
	if ok && got.mtime.Equal(st.ModTime()) && got.size == st.Size() {
		return got.script
	}
	script := parseFile(path, st.Size())
	c.mu.Lock()
	c.scripts[path] = cached{st.ModTime(), st.Size(), script}
	c.mu.Unlock()
	return script
}

// parseFile parses the script and logs each error with line and column.
func parseFile(path string, size int64) *sieve.Script {
	if size > maxScript {
		sdk.Log().Error("sieve script too big; implicit keep", "script", path, "size", size)
		return nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		sdk.Log().Warn("sieve script unreadable; implicit keep", "script", path, "error", err)
		return nil
	}
	script, err := sieve.Parse(src)
	if err == nil {
		return script
	}
	var list sieve.ErrorList
	if !errors.As(err, &list) {
		sdk.Log().Error("sieve script does not parse; implicit keep", "script", path, "error", err)
		return nil
	}
	for _, e := range list {
		sdk.Log().Error("sieve script does not parse; implicit keep", "script", path,
			"line", e.Line, "column", e.Column, "error", e.Msg)
	}
	return nil
}

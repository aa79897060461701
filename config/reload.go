package config

import (
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
)

// live holds what a running daemon takes from a reloaded config; it is
// shared by pointer, so every holder of the Config sees a reload.
type live struct {
	domains atomic.Pointer[[]string]
}

// localDomains is the current list of local domains: the reloaded one,
// or Domains as loaded.
func (c *Config) localDomains() []string {
	if c.live != nil {
		if d := c.live.domains.Load(); d != nil {
			return *d
		}
	}
	return c.Domains
}

// reloadable are the keys a running daemon applies on SIGHUP: the local
// domains here, TLS certificates (the daemons reload the files), plugins
// (restarted with their new settings). users_file's content is read
// again whenever it changes anyway.
var reloadable = []string{"domains", "tls", "plugins"}

// Reload applies n's local domains to c, for every holder of c, and
// returns the keys that differ between c and n but take effect only at
// the next start, e.g. "mta.listen".
// c must come from Load.
func (c *Config) Reload(n *Config) (needRestart []string) {
	domains := slices.Clone(n.Domains)
	c.live.domains.Store(&domains)
	return changedKeys(reflect.ValueOf(*c), reflect.ValueOf(*n), "")
}

// changedKeys lists the TOML keys whose values differ, one level into
// tables, skipping the reloadable ones.
func changedKeys(a, b reflect.Value, prefix string) []string {
	var keys []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" || slices.Contains(reloadable, tag) {
			continue
		}
		if f.Type.Kind() == reflect.Struct && prefix == "" && f.Type.Name() != "Duration" {
			keys = append(keys, changedKeys(a.Field(i), b.Field(i), tag+".")...)
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			keys = append(keys, prefix+tag)
		}
	}
	return keys
}

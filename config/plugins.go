package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"postline/address"
)

// Plugin is one [[plugins]] table: a filter program a daemon starts and
// calls at fixed hooks (see plugins/README.md). config only checks the
// table's shape; package daemon turns the list into plugins/host specs,
// so that config stays free of the plugin machinery (gRPC, go-plugin).
type Plugin struct {
	Name string `toml:"name"`
	// Path is the executable, relative to the config file's folder; empty
	// means postline-plugin-NAME beside the daemons' own executables.
	Path string `toml:"path"`
	// Program names the bundled plugin to run when Path is empty:
	// postline-plugin-PROGRAM beside the daemons. Empty means Name, so two
	// plugins of one program (two milters) need it: name = "rspamd",
	// program = "milter".
	Program string   `toml:"program"`
	Daemon  string   `toml:"daemon"` // msa, mta or mda
	Hooks   []string `toml:"hooks"`  // empty: every hook it implements
	Order   int      `toml:"order"`
	Timeout Duration `toml:"timeout"`  // per call; 0 is the host's default (10s)
	OnError string   `toml:"on_error"` // "tempfail" (default) or "continue"
	// Enabled = false turns off a plugin, the default ones included.
	Enabled *bool `toml:"enabled"`
	// Config is handed to the plugin at every start: [plugins.config].
	Config map[string]any `toml:"config"`
}

// On reports whether the plugin runs.
func (p Plugin) On() bool { return p.Enabled == nil || *p.Enabled }

// DefaultPlugins run even when the file names no plugins. RFC 5321 §4.4
// requires trace fields: a Return-Path field at final delivery, so the
// bundled return-path plugin runs in the MDA, and a Received field where
// a message enters the host, so the bundled received plugin runs in the
// MSA (submissions) and in the MTA (mail from the internet; the MTA skips
// its data hook for the MSA's trusted socket). A [[plugins]] table with a
// default's name changes its settings (both received plugins unless it
// names a daemon); only enabled = false turns one off.
func DefaultPlugins() []Plugin {
	return []Plugin{
		{Name: "return-path", Daemon: "mda", Hooks: []string{"deliver"}},
		{Name: "received", Daemon: "msa", Hooks: []string{"data"}},
		{Name: "received", Daemon: "mta", Hooks: []string{"data"}},
	}
}

// hooksOfDaemon mirrors plugins/host: the MDA has no SMTP session of its own.
var hooksOfDaemon = map[string][]string{
	"msa": {"connect", "mail", "rcpt", "data"},
	"mta": {"connect", "mail", "rcpt", "data"},
	"mda": {"deliver"},
}

// mergePlugins returns the default plugins, each overridden by a table
// of the file with its name (and its daemon, when the table sets one),
// followed by the file's other plugins. An override keeps the default's
// daemon and hooks unless it sets them.
func mergePlugins(file []Plugin) []Plugin {
	defaults := DefaultPlugins()
	out := DefaultPlugins()
	for _, p := range file {
		matched := overrides(defaults, p)
		if len(matched) == 0 {
			out = append(out, p)
			continue
		}
		for _, i := range matched {
			q := p
			if q.Daemon == "" {
				q.Daemon = defaults[i].Daemon
			}
			if q.Hooks == nil {
				q.Hooks = defaults[i].Hooks
			}
			out[i] = q
		}
	}
	return out
}

// overrides returns the indexes of the defaults that table p overrides:
// those with its name, and its daemon when it names one.
func overrides(defaults []Plugin, p Plugin) []int {
	var idx []int
	for i, d := range defaults {
		if d.Name == p.Name && (p.Daemon == "" || p.Daemon == d.Daemon) {
			idx = append(idx, i)
		}
	}
	return idx
}

// duplicatePlugins refuses two [[plugins]] tables overriding the same
// default plugin: mergePlugins would keep one silently. (Other duplicate
// names are reported by validatePlugins.)
func duplicatePlugins(path, src string, file []Plugin) error {
	var errs []error
	defaults := DefaultPlugins()
	seen := map[int]bool{}
	for i, p := range file {
		dup := false
		for _, j := range overrides(defaults, p) {
			dup = dup || seen[j]
			seen[j] = true
		}
		if dup {
			errs = append(errs, fmt.Errorf("%s:%d: plugins %q: name: two [[plugins]] tables have this name",
				path, lineOfPlugin(src, "", i), p.Name)) // the second table's header
		}
	}
	return errors.Join(errs...)
}

// validatePlugins reports each problem as "file:line: plugins NAME: key: ...",
// the line being the table's name = line (or its [[plugins]] header).
func (c *Config) validatePlugins(path, src string) []error {
	var errs []error
	seen := map[string]bool{}
	for i, p := range c.Plugins {
		where := path
		if line := lineOfPlugin(src, p.Name, i-len(DefaultPlugins())); line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		bad := func(key, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: plugins %q: %s: %s", where, p.Name, key, fmt.Sprintf(format, args...)))
		}
		if p.Name == "" {
			bad("name", "every [[plugins]] table needs a name")
		} else if strings.ContainsFunc(p.Name, badNameRune) || len(p.Name) > 64 {
			bad("name", "must be 1-64 letters, digits, '.', '_' or '-' (it appears in SMTP replies)")
		} else if seen[p.Name+"\x00"+p.Daemon] {
			bad("name", "two [[plugins]] tables have this name")
		}
		// Names are per daemon: the default received runs in the msa and the mta.
		seen[p.Name+"\x00"+p.Daemon] = true
		allowed, ok := hooksOfDaemon[p.Daemon]
		if !ok {
			bad("daemon", "%q is not one of msa, mta, mda", p.Daemon)
		}
		for _, h := range p.Hooks {
			if ok && !slices.Contains(allowed, h) {
				bad("hooks", "%q is not a hook the %s runs (%s)", h, p.Daemon, strings.Join(allowed, ", "))
			}
		}
		if strings.ContainsFunc(p.Program, badNameRune) || strings.Contains(p.Program, "..") || len(p.Program) > 64 {
			bad("program", "must be a bundled plugin's name such as \"milter\" (postline-plugin-NAME beside the daemons); give path for others")
		}
		if p.OnError != "" && p.OnError != "tempfail" && p.OnError != "continue" {
			bad("on_error", "%q is not \"tempfail\" or \"continue\"", p.OnError)
		}
		if p.Timeout < 0 {
			bad("timeout", "must be positive, e.g. \"5s\"")
		}
	}
	return errs
}

// badNameRune rejects what plugins/host rejects in a name.
func badNameRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
}

// lineOfPlugin finds the line of `name = "NAME"` in a [[plugins]] table,
// else the header of the index-th [[plugins]] table (a table without a
// name), else 0.
func lineOfPlugin(src, name string, index int) int {
	inPlugins, tables, header := false, -1, 0
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			inPlugins = strings.HasPrefix(line, "[[plugins]]")
			if inPlugins {
				if tables++; tables == index {
					header = i + 1
				}
			}
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if inPlugins && ok && name != "" && strings.TrimSpace(key) == "name" &&
			strings.Trim(strings.TrimSpace(val), `"'`) == name {
			return i + 1
		}
	}
	return header
}

// pluginConfigKey reports whether k lies inside a [plugins.config] table,
// which is free-form: the TOML library reports keys of tables nested
// there as undecoded although it decodes them into the map.
func pluginConfigKey(k []string) bool {
	return len(k) > 2 && k[0] == "plugins" && k[1] == "config"
}

// DKIMKey is one signing key of the dkim-sign plugin's config.
type DKIMKey struct{ Domain, Selector, KeyFile string }

// DKIMKeys are the keys the dkim-sign plugin signs with, when it is on:
// `postline dns check` checks their records, and the MTA signs the
// bounces it writes with them.
func (c *Config) DKIMKeys() []DKIMKey {
	var keys []DKIMKey
	for _, p := range c.Plugins {
		if p.Name != "dkim-sign" || !p.On() {
			continue
		}
		tables, _ := p.Config["keys"].([]map[string]any)
		for _, t := range tables {
			str := func(name string) string { s, _ := t[name].(string); return s }
			domain, _ := address.NormalizeDomain(str("domain"))
			keys = append(keys, DKIMKey{Domain: domain, Selector: str("selector"), KeyFile: str("key_file")})
		}
	}
	return keys
}

package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Reload makes new local domains known to every holder of the config,
// and names the changed keys that need a restart.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postline.toml")
	write := func(s string) *Config {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := "hostname = \"mx.example.test\"\nlog_level = \"info\"\nstate_dir = \"var\"\ndomains = [\"example.test\"]\n[mta]\nlisten = [\"127.0.0.1:2525\"]\n"
	running := write(base)
	holder := running // what a backend keeps
	changed := write(strings.Replace(strings.Replace(base, `["example.test"]`, `["example.test", "New.Example"]`, 1),
		"2525", "2626", 1) + "[mda]\nquota = 5\n")
	restart := running.Reload(changed)
	if !holder.IsLocalDomain("new.example") || !holder.IsLocalDomain("example.test") {
		t.Error("the new domain list is not seen by the config's holders")
	}
	if !slices.Equal(restart, []string{"mta.listen", "mda.quota"}) {
		t.Errorf("need restart: %v, want [mta.listen mda.quota]", restart)
	}
	if restart := running.Reload(running); len(restart) != 0 {
		t.Errorf("an unchanged config needs a restart for %v", restart)
	}
}

package users

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeAliases(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aliases")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAliasesExpand(t *testing.T) {
	path := writeAliases(t, `# team addresses
info@Example.test    alice@example.test, bob@example.test
sales@example.test   info@example.test carol@example.test bob@example.test
keep@example.test    keep@example.test,alice@example.test
loop1@example.test   loop2@example.test
loop2@example.test   loop1@example.test
fwd@example.test     friend@elsewhere.example
`)
	a, err := OpenAliases(path)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string][]string{
		"INFO@example.test":  {"alice@example.test", "bob@example.test"},
		"sales@example.test": {"alice@example.test", "bob@example.test", "carol@example.test"},
		"keep@example.test":  {"keep@example.test", "alice@example.test"},
		"loop1@example.test": {"loop1@example.test"},
		"fwd@example.test":   {"friend@elsewhere.example"},
	} {
		got, ok := a.Expand(addr)
		if !ok || !slices.Equal(got, want) {
			t.Errorf("Expand(%s) = %v, %v; want %v", addr, got, ok, want)
		}
	}
	if _, ok := a.Expand("alice@example.test"); ok {
		t.Error("a user is an alias")
	}
	if !a.Reaches("sales@example.test", "Carol@example.test") || a.Reaches("info@example.test", "carol@example.test") {
		t.Error("Reaches does not follow the aliases")
	}
	var none *Aliases
	if _, ok := none.Expand("info@example.test"); ok {
		t.Error("no aliases file, yet an alias")
	}
}

// A mistake names the file and the line; an edit is seen without a
// restart; "" and a missing file mean no aliases.
func TestAliasesFile(t *testing.T) {
	path := writeAliases(t, "ok@example.test a@example.test\nbroken@example.test\n")
	if _, err := OpenAliases(path); err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Errorf("error %v, want one naming %s:2", err, path)
	}
	os.WriteFile(path, []byte("x@example.test not-an-address\n"), 0o600)
	if _, err := OpenAliases(path); err == nil || !strings.Contains(err.Error(), path+":1:") {
		t.Errorf("error %v, want one naming line 1", err)
	}
	os.WriteFile(path, []byte("a@example.test b@example.test\n"), 0o600)
	a, err := OpenAliases(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+".new", []byte("c@example.test d@example.test\n"), 0o600)
	os.Rename(path+".new", path)
	if _, ok := a.Expand("c@example.test"); !ok {
		t.Error("an edited file is not read again")
	}
	for _, p := range []string{"", filepath.Join(t.TempDir(), "missing")} {
		if a, err := OpenAliases(p); err != nil || a.Reaches("x@example.test", "y@example.test") {
			t.Errorf("OpenAliases(%q) = %v, %v", p, a, err)
		}
	}
}

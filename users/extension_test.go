package users

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSplitExtension(t *testing.T) {
	for _, c := range []struct{ addr, delim, base, ext string }{
		{"bob+lists@example.org", "+", "bob@example.org", "lists"},
		{"bob+a+b@example.org", "+", "bob@example.org", "a+b"},
		{"bob+@example.org", "+", "bob@example.org", ""},
		{"bob-x@example.org", "-", "bob@example.org", "x"},
	} {
		base, ext, ok := SplitExtension(c.addr, c.delim)
		if !ok || base != c.base || ext != c.ext {
			t.Errorf("SplitExtension(%q, %q) = %q %q %v", c.addr, c.delim, base, ext, ok)
		}
	}
	for _, c := range []struct{ addr, delim string }{{"bob@example.org", "+"}, {"+bob@example.org", "+"}, {"bob+x@example.org", ""}} {
		if _, _, ok := SplitExtension(c.addr, c.delim); ok {
			t.Errorf("SplitExtension(%q, %q) split", c.addr, c.delim)
		}
	}
}

// A catch-all line "@domain target" is read, and only its domain has one.
func TestCatchAll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aliases")
	os.WriteFile(path, []byte("@Example.ORG  bob@example.org\ninfo@example.org alice@example.org\n"), 0o600)
	a, err := OpenAliases(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := a.CatchAll("example.org"); !ok || !slices.Equal(got, []string{"bob@example.org"}) {
		t.Errorf("CatchAll(example.org) = %v %v", got, ok)
	}
	if _, ok := a.CatchAll("example.net"); ok {
		t.Error("example.net has a catch-all")
	}
	os.WriteFile(path, []byte("@ bob@example.org\n"), 0o600)
	if _, err := OpenAliases(path); err == nil {
		t.Error("a catch-all without a domain was read")
	}
}

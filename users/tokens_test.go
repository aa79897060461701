package users_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postline/users"
)

func TestTokensAddLookupRemove(t *testing.T) {
	dir := t.TempDir()
	f := users.TokenFile{Path: filepath.Join(dir, "tokens"), Like: filepath.Join(dir, "users")}
	secret, tok, err := f.Add("Alice@Example.TEST", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "pl_") || len(secret) != 3+43 || tok.User != "alice@example.test" || len(tok.ID) != 12 {
		t.Fatalf("secret %q, token %+v", secret, tok)
	}
	data, _ := os.ReadFile(f.Path)
	if strings.Contains(string(data), secret[3:]) || !strings.Contains(string(data), "sha256:"+tok.Hash) {
		t.Errorf("the file holds the secret or lacks its hash:\n%s", data)
	}
	if st, _ := os.Stat(f.Path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %04o, want 0640 like the users file", st.Mode().Perm())
	}
	db, err := users.OpenTokens(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := db.Lookup(secret); !ok || got.User != "alice@example.test" {
		t.Errorf("Lookup(secret) = %+v, %v", got, ok)
	}
	last := "A"
	if strings.HasSuffix(secret, last) {
		last = "B"
	}
	for _, forged := range []string{"", secret[:len(secret)-1] + last, tok.Hash, "pl_" + tok.Hash} {
		if _, ok := db.Lookup(forged); ok {
			t.Errorf("Lookup(%q) accepted", forged)
		}
	}
	if err := f.Remove("bob@example.test", tok.ID); !errors.Is(err, users.ErrNoSuchToken) {
		t.Errorf("removing another user's token: %v", err)
	}
	if err := f.Remove("alice@example.test", tok.ID); err != nil {
		t.Fatal(err)
	}
	// The file was replaced (a new inode): the watcher reads it again.
	if _, ok := db.Lookup(secret); ok {
		t.Error("a removed token still works")
	}
}

func TestTokensListAndBadLine(t *testing.T) {
	dir := t.TempDir()
	f := users.TokenFile{Path: filepath.Join(dir, "tokens")}
	for _, u := range []string{"a@example.test", "b@example.test", "a@example.test"} {
		if _, _, err := f.Add(u, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if list, err := f.List("a@example.test"); err != nil || len(list) != 2 {
		t.Errorf("List(a) = %v, %v", list, err)
	}
	os.WriteFile(f.Path, []byte("a@example.test abc sha256:xyz\n"), 0o640)
	if _, err := users.OpenTokens(f.Path); err == nil || !strings.Contains(err.Error(), f.Path+":1:") {
		t.Errorf("bad line: %v", err)
	}
}

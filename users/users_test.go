package users_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"postline/users"
)

// cost keeps bcrypt fast in tests; the format is the same at any cost.
const cost = bcrypt.MinCost

func set(t *testing.T, path, address, password string) {
	t.Helper()
	if err := users.Set(path, address, password, cost); err != nil {
		t.Fatal(err)
	}
}

func list(t *testing.T, path string) []string {
	t.Helper()
	l, err := users.List(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func open(t *testing.T, path string) *users.DB {
	t.Helper()
	db, err := users.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestSetListDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if l := list(t, path); len(l) != 0 {
		t.Errorf("missing file lists %q", l)
	}
	set(t, path, "bob@example.test", "pw1")
	set(t, path, " Alice@Example.TEST ", "pw2")
	set(t, path, "bob@example.test", "pw3") // replaces, does not add
	if l := list(t, path); !slices.Equal(l, []string{"alice@example.test", "bob@example.test"}) {
		t.Errorf("List = %q", l)
	}
	if err := users.Delete(path, "BOB@example.test"); err != nil {
		t.Fatal(err)
	}
	if l := list(t, path); !slices.Equal(l, []string{"alice@example.test"}) {
		t.Errorf("List after Delete = %q", l)
	}
	if err := users.Delete(path, "bob@example.test"); !errors.Is(err, users.ErrNoSuchUser) {
		t.Errorf("Delete of an unknown user: %v, want ErrNoSuchUser", err)
	}
	if err := users.Set(path, "carol@example.test", "", cost); err == nil {
		t.Error("Set accepted an empty password")
	}
}

// Dovecot reads the same file: one "address:{BLF-CRYPT}hash::::::" line each.
func TestFileFormatAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	set(t, path, "alice@example.test", "secret")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(string(data), "\n")
	hash, ok := strings.CutPrefix(line, "alice@example.test:{BLF-CRYPT}")
	if !ok || strings.Count(line, "\n") != 0 || !strings.HasSuffix(hash, "::::::") {
		t.Fatalf("file = %q", data)
	}
	if bcrypt.CompareHashAndPassword([]byte(strings.TrimSuffix(hash, "::::::")), []byte("secret")) != nil {
		t.Error("stored hash does not match the password")
	}
	if strings.Contains(string(data), "secret") {
		t.Error("plain password stored")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// 0640: readable by Dovecot's group, never by everyone.
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".users-*")); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestAuthenticate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	set(t, path, "alice@example.test", "secret")
	db := open(t, path)
	tests := []struct {
		address, password string
		want              bool
	}{
		{"alice@example.test", "secret", true},
		{"ALICE@Example.Test", "secret", true},
		{"alice@example.test", "Secret", false},
		{"alice@example.test", "", false},
		{"bob@example.test", "secret", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := db.Authenticate(tt.address, tt.password); got != tt.want {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tt.address, tt.password, got, tt.want)
		}
	}
	if !db.Exists("Alice@example.test") || db.Exists("bob@example.test") {
		t.Error("Exists wrong")
	}
}

// `postline user add` changes the file under running daemons; they must
// see it without a restart.
func TestDBSeesChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	db := open(t, path) // no file yet: no users
	if db.Exists("alice@example.test") {
		t.Fatal("user exists before the file does")
	}
	// Each Set adds a line, so the size changes even where the mtime
	// does not (coarse timestamps): the test cannot flake on that.
	set(t, path, "alice@example.test", "secret")
	if !db.Exists("alice@example.test") {
		t.Error("user added after Open not seen")
	}
	set(t, path, "bob@example.test", "pw")
	if !db.Exists("bob@example.test") || !db.Authenticate("bob@example.test", "pw") {
		t.Error("second user not seen")
	}
	if err := users.Delete(path, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if db.Exists("alice@example.test") {
		t.Error("deleted user still exists")
	}
	os.Remove(path)
	if db.Exists("bob@example.test") {
		t.Error("user still exists after the file was removed")
	}
}

// A password change keeps the file's size (bcrypt hashes have one
// length) and, on a filesystem with coarse timestamps (1s on ext3, HFS+,
// some NFS; 2s on FAT), its mtime too. The new password must work anyway.
func TestDBSeesPasswordChangeWithSameMtime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	set(t, path, "alice@example.test", "old-password")
	db := open(t, path)
	if !db.Authenticate("alice@example.test", "old-password") {
		t.Fatal("old password refused")
	}
	before, _ := os.Stat(path)
	set(t, path, "alice@example.test", "new-password")
	// Simulate the coarse timestamp: same second, same mtime.
	if err := os.Chtimes(path, time.Now(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(path); after.Size() != before.Size() {
		t.Fatalf("size changed (%d -> %d): test premise broken", before.Size(), after.Size())
	}
	if !db.Authenticate("alice@example.test", "new-password") {
		t.Error("new password refused: the DB kept the old file's contents")
	}
	if db.Authenticate("alice@example.test", "old-password") {
		t.Error("old password still accepted after the change")
	}
}

func TestMalformedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	src := "# accounts\n\nalice@example.test:{BLF-CRYPT}$2a$04$x::::::\nbob@example.test:{PLAIN}pw::::::\n"
	os.WriteFile(path, []byte(src), 0o640)
	_, err := users.Open(path)
	if err == nil || !strings.Contains(err.Error(), path+":4:") {
		t.Errorf("Open error = %v, want one naming %s:4", err, path)
	}
	if _, err := users.List(path); err == nil || !strings.Contains(err.Error(), path+":4:") {
		t.Errorf("List error = %v, want one naming %s:4", err, path)
	}
	// Set must not rewrite a file it cannot read: the bad line would go.
	if err := users.Set(path, "carol@example.test", "pw", cost); err == nil {
		t.Error("Set rewrote a malformed file")
	}
}

// A running daemon that meets a broken file keeps the last good list
// rather than locking everyone out.
func TestDBKeepsLastGoodList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	set(t, path, "alice@example.test", "secret")
	db := open(t, path)
	if err := os.WriteFile(path, []byte("garbage line\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if !db.Authenticate("alice@example.test", "secret") {
		t.Error("last good list dropped on a read error")
	}
}

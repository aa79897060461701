package users_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"postline/users"
)

// Rewriting the file as root keeps the owner and group the admin gave
// it, through which the daemons read it after dropping privileges.
func TestSetKeepsOwnerAndGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file away")
	}
	path := filepath.Join(t.TempDir(), "users")
	if err := users.Set(path, "alice@example.test", "pw", cost); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 54321, 54330); err != nil {
		t.Fatal(err)
	}
	if err := users.Set(path, "bob@example.test", "pw", cost); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Uid != 54321 || sys.Gid != 54330 || st.Mode().Perm() != 0o640 {
		t.Errorf("after rewrite: %d:%d %04o, want 54321:54330 0640", sys.Uid, sys.Gid, st.Mode().Perm())
	}
}

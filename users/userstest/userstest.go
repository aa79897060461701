// Package userstest makes real users files for other packages' tests.
package userstest

import (
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"postline/users"
)

// DB returns a users DB backed by a new file in a test folder holding
// address with password, hashed at bcrypt's minimum cost for speed.
func DB(t testing.TB, address, password string) *users.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := users.Set(path, address, password, bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	db, err := users.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

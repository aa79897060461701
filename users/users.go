// Package users is postline's account list: one file in Dovecot's
// passwd-file format ("address:{BLF-CRYPT}bcrypt-hash::::::"), so that one
// password serves SMTP submission and IMAP; and the API tokens of the HTTP
// submission API beside it (tokens.go).
//
// users never stores or logs a plain password or token; it only keeps
// bcrypt hashes of passwords and SHA-256 hashes of tokens.
package users

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/bcrypt"

	"postline/address"
)

// scheme is Dovecot's name for bcrypt hashes.
const scheme = "{BLF-CRYPT}"

// ErrNoSuchUser is returned by Delete for an address not in the file.
var ErrNoSuchUser = errors.New("no such user")

// DB answers "does this address exist" and "is this its password" from the
// users file, re-reading it when it changes so that `postline user add`
// takes effect without a restart.
type DB struct {
	file watched[map[string]string] // address → bcrypt hash
}

// Open returns a DB backed by path. A missing file means no users yet.
func Open(path string) (*DB, error) {
	db := &DB{file: watched[map[string]string]{path: path, parse: parseHashes}}
	if err := db.file.refresh(); err != nil {
		return nil, err
	}
	return db, nil
}

func parseHashes(path string, data []byte) (map[string]string, error) {
	entries, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	hashes := make(map[string]string, len(entries))
	for _, e := range entries {
		hashes[e.address] = e.hash
	}
	return hashes, nil
}

// Exists reports whether address has an account.
func (db *DB) Exists(address string) bool {
	_, ok := db.hash(address)
	return ok
}

// Authenticate checks address's password in constant time with respect to
// the password; an unknown address costs the same bcrypt work.
func (db *DB) Authenticate(address, password string) bool {
	hash, ok := db.hash(address)
	if !ok {
		hash = dummyHash()
	}
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	return ok && err == nil
}

// dummyHash makes a check of an unknown address as slow as a real one.
var dummyHash = sync.OnceValue(func() string {
	h, _ := bcrypt.GenerateFromPassword([]byte("postline-dummy"), bcrypt.DefaultCost)
	return string(h)
})

func (db *DB) hash(address string) (string, bool) {
	h, ok := db.file.get()[Normalize(address)]
	return h, ok
}

// Normalize lower-cases an address; postline treats local parts as
// case-insensitive, as nearly every mail host does.
func Normalize(addr string) string {
	if a, err := address.Parse(strings.TrimSpace(addr)); err == nil {
		return a.Key()
	}
	return strings.ToLower(strings.TrimSpace(addr))
}

type entry struct {
	address string
	hash    string // bcrypt hash without the {BLF-CRYPT} prefix
}

func read(path string) ([]entry, error) {
	data, err := readFile(path, "users")
	if err != nil {
		return nil, err
	}
	return parse(path, data)
}

var errUserLine = errors.New(`expected "address:{BLF-CRYPT}hash"; fix the line or recreate it with ` + "`postline user add`")

func parse(path string, data []byte) ([]entry, error) {
	return records(path, data, func(line string) (entry, error) {
		fields := strings.Split(line, ":")
		if len(fields) < 2 || !strings.HasPrefix(fields[1], scheme) {
			return entry{}, errUserLine
		}
		return entry{Normalize(fields[0]), strings.TrimPrefix(fields[1], scheme)}, nil
	})
}

// List returns the addresses in the file, sorted.
func List(path string) ([]string, error) {
	entries, err := read(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.address)
	}
	sort.Strings(out)
	return out, nil
}

// Set adds address with password, or replaces its password.
func Set(path, address, password string, cost int) error {
	if password == "" {
		return errors.New("users: empty password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return fmt.Errorf("users: hash password: %w", err)
	}
	entries, err := read(path)
	if err != nil {
		return err
	}
	address = Normalize(address)
	return write(path, append(without(entries, address), entry{address, string(hash)}))
}

// Delete removes address.
func Delete(path, address string) error {
	entries, err := read(path)
	if err != nil {
		return err
	}
	address = Normalize(address)
	out := without(entries, address)
	if len(out) == len(entries) {
		return fmt.Errorf("users: %s: %w", address, ErrNoSuchUser)
	}
	return write(path, out)
}

func without(entries []entry, address string) []entry {
	var out []entry
	for _, e := range entries {
		if e.address != address {
			out = append(out, e)
		}
	}
	return out
}

// write replaces the file atomically so the daemons never read half of it.
func write(path string, entries []entry) error {
	var buf bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&buf, "%s:%s%s::::::\n", e.address, scheme, e.hash)
	}
	return replaceFile(path, buf.Bytes())
}

// replaceFile writes data to path through a temporary file renamed over
// it, flushed first, with mode 0640 and the replaced file's owner.
func replaceFile(path string, data []byte) error { return replaceFileLike(path, path, data) }

// replaceFileLike is replaceFile for a file that, when new, takes the
// owner and group of the file like (the tokens file those of the users
// file beside it, so the daemons read both alike).
func replaceFileLike(path, like string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return fmt.Errorf("users: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		like = path
	}
	if err := keepOwner(tmp, like); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("users: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("users: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	return nil
}

// keepOwner gives tmp the owner and group of the file it replaces, when
// run as root: the daemons, once they have dropped to their users, read
// the file through its group (see README, Privileges).
func keepOwner(tmp *os.File, path string) error {
	st, err := os.Stat(path)
	if err != nil || os.Geteuid() != 0 {
		return nil // a new file, or not ours to give away
	}
	sys := st.Sys().(*syscall.Stat_t)
	if err := tmp.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
		return fmt.Errorf("users: keep owner of %s: %w", path, err)
	}
	return nil
}

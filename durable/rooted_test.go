package durable_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"postline/durable"
)

// isSymlinkRefusal reports whether err is what a walk gives on a symlink.
func isSymlinkRefusal(err error) bool {
	return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}

// plantSymlink makes root/at a symlink to a new folder outside root and
// returns that folder.
func plantSymlink(t *testing.T, root, at string) string {
	t.Helper()
	outside := t.TempDir()
	link := filepath.Join(root, at)
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	return outside
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("%s holds %d entries, want none", dir, len(entries))
	}
}

func TestRootedWrite(t *testing.T) {
	root := t.TempDir()
	fs := durable.Rooted{Root: root}
	dir := filepath.Join(root, "a", "b")
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tmp, final := filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x")
	if err := durable.Write(fs, tmp, final, 0o600, writeString("hello\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, final); got != "hello\n" {
		t.Errorf("content = %q", got)
	}
	assertMissing(t, tmp)
	if err := fs.SyncDir(root); err != nil {
		t.Errorf("SyncDir of the root itself: %v", err)
	}
	if err := fs.Remove(final); err != nil {
		t.Fatal(err)
	}
	assertMissing(t, final)
}

// The root itself may be a symlink: an admin's choice, like /var/mail
// pointing to a bigger disk.
func TestRootedRootMayBeSymlink(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "mail")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	fs := durable.Rooted{Root: link}
	if err := fs.MkdirAll(filepath.Join(link, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := durable.Write(fs, filepath.Join(link, "a", "t"), filepath.Join(link, "a", "f"), 0o600, writeString("x")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(real, "a", "f")); got != "x" {
		t.Errorf("content = %q", got)
	}
}

// A symlink planted anywhere below the root is refused, with an error
// naming it, and nothing is created where it points.
func TestRootedRefusesPlantedSymlinks(t *testing.T) {
	tests := []struct {
		name, at string
	}{
		{"intermediate folder", "a"},
		{"final folder", "a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			fs := durable.Rooted{Root: root}
			outside := plantSymlink(t, root, tt.at)
			dir := filepath.Join(root, "a", "b")
			link := filepath.Join(root, tt.at)

			err := durable.Write(fs, filepath.Join(dir, "t"), filepath.Join(dir, "f"), 0o600, writeString("evil"))
			if !isSymlinkRefusal(err) || !strings.Contains(err.Error(), link) {
				t.Errorf("Write: err = %v, want ELOOP or ENOTDIR naming %s", err, link)
			}
			err = fs.MkdirAll(filepath.Join(dir, "c"), 0o700)
			if !isSymlinkRefusal(err) || !strings.Contains(err.Error(), link) {
				t.Errorf("MkdirAll: err = %v, want ELOOP or ENOTDIR naming %s", err, link)
			}
			if err := fs.SyncDir(dir); !isSymlinkRefusal(err) {
				t.Errorf("SyncDir: err = %v, want ELOOP or ENOTDIR", err)
			}
			assertEmpty(t, outside)
		})
	}
}

// A symlink at the temporary file's name is not written through, nor
// removed: it may be someone else's.
func TestRootedRefusesSymlinkAtFileName(t *testing.T) {
	root := t.TempDir()
	fs := durable.Rooted{Root: root}
	victim := filepath.Join(t.TempDir(), "victim")
	tmp, final := filepath.Join(root, "t"), filepath.Join(root, "f")
	if err := os.Symlink(victim, tmp); err != nil {
		t.Fatal(err)
	}
	err := durable.Write(fs, tmp, final, 0o600, writeString("evil"))
	if !errors.Is(err, os.ErrExist) {
		t.Errorf("err = %v, want EEXIST", err)
	}
	assertMissing(t, victim)
	assertMissing(t, final)
	if st, err := os.Lstat(tmp); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink at tmp was removed or replaced (err %v)", err)
	}
}

// Names outside the root are refused before anything is touched.
func TestRootedRefusesNamesOutsideRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	fs := durable.Rooted{Root: root}
	for _, name := range []string{
		"../x",                               // relative: not root joined with anything
		filepath.Join(parent, "x"),           // absolute, beside the root
		root + "/../x",                       // climbs out
		root + "/a/../../x",                  // climbs out further down
		root + "/a/../x",                     // cleans to inside, but ".." is never built
		filepath.Join(parent, "rootsibling"), // shares the root's name as a prefix
	} {
		if _, err := fs.CreateExcl(name, 0o600); err == nil {
			t.Errorf("CreateExcl(%q) succeeded", name)
		}
		if err := fs.MkdirAll(name, 0o700); err == nil {
			t.Errorf("MkdirAll(%q) succeeded", name)
		}
		if err := fs.Rename(filepath.Join(root, "absent"), name); err == nil {
			t.Errorf("Rename(_, %q) succeeded", name)
		}
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only root/", parent, len(entries))
	}
	assertEmpty(t, root)
}

func TestRootedMkdirAll(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mail") // missing: made first
	fs := durable.Rooted{Root: root}
	if err := fs.MkdirAll(filepath.Join(root, "a", "b", "c"), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{".", "a", "a/b", "a/b/c"} {
		st, err := os.Lstat(filepath.Join(root, d))
		if err != nil || !st.IsDir() {
			t.Fatalf("%s not a directory: %v", d, err)
		}
		if want := 0o750 &^ currentUmask(); st.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", d, st.Mode().Perm(), want)
		}
	}
	// Existing folders are fine; a file in the way is not.
	if err := fs.MkdirAll(filepath.Join(root, "a", "b"), 0o700); err != nil {
		t.Errorf("MkdirAll of an existing folder: %v", err)
	}
	os.WriteFile(filepath.Join(root, "file"), nil, 0o600)
	if err := fs.MkdirAll(filepath.Join(root, "file", "x"), 0o700); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("MkdirAll through a file: err = %v, want ENOTDIR", err)
	}
}

func TestRootedMkdirAllRefusesSymlink(t *testing.T) {
	root := t.TempDir()
	fs := durable.Rooted{Root: root}
	outside := plantSymlink(t, root, "a/b")
	err := fs.MkdirAll(filepath.Join(root, "a", "b", "c", "d"), 0o700)
	var serr *durable.SymlinkError
	if !errors.As(err, &serr) || serr.Path != filepath.Join(root, "a", "b") || !isSymlinkRefusal(err) {
		t.Errorf("err = %v, want a SymlinkError naming a/b", err)
	}
	assertEmpty(t, outside)
}

package durable_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"postline/durable"
)

// errInjected is the failure the fake FS produces on purpose.
var errInjected = errors.New("injected failure")

// faultFS wraps the real filesystem and makes one chosen step fail, so
// every error path of Write runs against real files.
type faultFS struct {
	durable.OS
	failCreate, failWrite, failSync, failClose, failRename, failSyncDir bool
	failSyncFS                                                          int // fail the Nth SyncFS call (1-based)

	syncedDirs []string // every SyncDir call, failed or not
	syncFSs    int      // SyncFS calls
}

func (f *faultFS) SyncFS(dir string) error {
	if f.syncFSs++; f.syncFSs == f.failSyncFS {
		return errInjected
	}
	return f.OS.SyncFS(dir)
}

// dirOnly hides SyncFS: Write then fsyncs the file and its folder.
type dirOnly struct{ durable.FS }

func (f *faultFS) CreateExcl(name string, perm os.FileMode) (durable.File, error) {
	if f.failCreate {
		return nil, errInjected
	}
	file, err := f.OS.CreateExcl(name, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Rename(oldname, newname string) error {
	if f.failRename {
		return errInjected
	}
	return f.OS.Rename(oldname, newname)
}

func (f *faultFS) SyncDir(dir string) error {
	f.syncedDirs = append(f.syncedDirs, dir)
	if f.failSyncDir {
		return errInjected
	}
	return f.OS.SyncDir(dir)
}

// faultFile is a real open file whose Write, Sync or Close can fail.
type faultFile struct {
	durable.File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if f.fs.failWrite {
		return 0, errInjected
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if f.fs.failSync {
		return errInjected
	}
	return f.File.Sync()
}

func (f *faultFile) Close() error {
	if f.fs.failClose {
		f.File.Close() // really close it, so the fd does not leak
		return errInjected
	}
	return f.File.Close()
}

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s should not exist (Lstat error: %v)", path, err)
	}
}

// currentUmask reads the process umask without changing it for good.
func currentUmask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

func TestWriteSucceeds(t *testing.T) {
	dir := t.TempDir()
	tmp, final := filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x")
	fs := &faultFS{}
	if err := durable.Write(dirOnly{fs}, tmp, final, 0o600, writeString("hello\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, final); got != "hello\n" {
		t.Errorf("content = %q", got)
	}
	st, err := os.Stat(final)
	if err != nil {
		t.Fatal(err)
	}
	if want := 0o600 &^ currentUmask(); st.Mode().Perm() != want {
		t.Errorf("mode = %v, want %v", st.Mode().Perm(), want)
	}
	assertMissing(t, tmp)
	// The rename is only durable once the final name's folder is synced.
	if !slices.Equal(fs.syncedDirs, []string{dir}) {
		t.Errorf("SyncDir calls = %q, want [%q]", fs.syncedDirs, dir)
	}
}

func TestWriteReplacesExisting(t *testing.T) {
	dir := t.TempDir()
	tmp, final := filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x")
	os.WriteFile(final, []byte("old"), 0o600)
	if err := durable.Write(durable.OS{}, tmp, final, 0o600, writeString("new")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, final); got != "new" {
		t.Errorf("content = %q, want %q", got, "new")
	}
}

// TestWriteFailures makes each step fail in turn: Write must return the
// error, leave nothing at tmp and (but for the last fsync) not touch final.
func TestWriteFailures(t *testing.T) {
	fillErr := errors.New("fill failed")
	tests := []struct {
		name       string
		fs         *faultFS
		fill       func(io.Writer) error
		wantErr    error
		finalIsNew bool // only a failed fsync of the folder comes after the rename
	}{
		{"CreateExcl", &faultFS{failCreate: true}, writeString("new"), errInjected, false},
		{"file Write", &faultFS{failWrite: true}, writeString("new"), errInjected, false},
		{"fill", &faultFS{}, func(io.Writer) error { return fillErr }, fillErr, false},
		{"Sync", &faultFS{failSync: true}, writeString("new"), errInjected, false},
		{"Close", &faultFS{failClose: true}, writeString("new"), errInjected, false},
		{"Rename", &faultFS{failRename: true}, writeString("new"), errInjected, false},
		// The rename happened, so final holds the new content, but it is
		// not durable and the caller must treat the write as not done.
		{"SyncDir", &faultFS{failSyncDir: true}, writeString("new"), errInjected, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tmp, final := filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x")
			if err := os.WriteFile(final, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := durable.Write(dirOnly{tt.fs}, tmp, final, 0o600, tt.fill)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			assertMissing(t, tmp)
			want := "old"
			if tt.finalIsNew {
				want = "new"
			}
			if got := readFile(t, final); got != want {
				t.Errorf("final = %q, want %q", got, want)
			}
		})
	}
}

// On an FSSyncer, Write flushes the filesystem before the rename (the
// content) and after it (the name), and fsyncs neither file nor folder.
// A failed first flush leaves final as it was; a failed second one has
// renamed, but the write does not count as done.
func TestWriteFlushesWholeFS(t *testing.T) {
	for _, tt := range []struct {
		failAt int
		want   string
	}{{0, "new"}, {1, "old"}, {2, "new"}} {
		dir := t.TempDir()
		tmp, final := filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x")
		os.WriteFile(final, []byte("old"), 0o600)
		fs := &faultFS{failSync: true, failSyncDir: true, failSyncFS: tt.failAt}
		err := durable.Write(fs, tmp, final, 0o600, writeString("new"))
		if (err != nil) != (tt.failAt > 0) || fs.syncFSs != 2 && tt.failAt != 1 {
			t.Errorf("failing flush %d: err %v after %d flushes", tt.failAt, err, fs.syncFSs)
		}
		assertMissing(t, tmp)
		if got := readFile(t, final); got != tt.want {
			t.Errorf("failing flush %d: final = %q, want %q", tt.failAt, got, tt.want)
		}
	}
}

// A failed CreateExcl must not remove what is at tmp: it belongs to
// someone else (another writer, or an attacker's symlink we refused).
func TestCreateExclRefusesExisting(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, tmp, victim string)
	}{
		{"file", func(t *testing.T, tmp, _ string) {
			if err := os.WriteFile(tmp, []byte("someone else's"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink", func(t *testing.T, tmp, victim string) {
			if err := os.Symlink(victim, tmp); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", func(t *testing.T, tmp, victim string) {
			if err := os.Symlink(victim+".absent", tmp); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tmp, final := filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x")
			victim := filepath.Join(dir, "victim")
			os.WriteFile(victim, []byte("precious"), 0o600)
			tt.plant(t, tmp, victim)
			before, _ := os.Lstat(tmp)

			err := durable.Write(durable.OS{}, tmp, final, 0o600, writeString("evil"))
			if !errors.Is(err, os.ErrExist) {
				t.Fatalf("err = %v, want EEXIST", err)
			}
			if got := readFile(t, victim); got != "precious" {
				t.Errorf("symlink target was written: %q", got)
			}
			after, err := os.Lstat(tmp)
			if err != nil || !os.SameFile(before, after) {
				t.Errorf("what was at tmp was removed or replaced (err %v)", err)
			}
			assertMissing(t, final)
			assertMissing(t, victim+".absent")
		})
	}
}

func TestMkdirAllCreatesAndSyncsParents(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	fs := &faultFS{}
	if err := durable.MkdirAll(fs, dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "a/b", "a/b/c"} {
		st, err := os.Stat(filepath.Join(root, d))
		if err != nil || !st.IsDir() {
			t.Fatalf("%s not a directory: %v", d, err)
		}
		if st.Mode().Perm() != 0o700&^currentUmask() {
			t.Errorf("%s mode = %v", d, st.Mode().Perm())
		}
	}
	// Each new entry is durable once the folder holding it is synced.
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if !slices.Equal(fs.syncedDirs, want) {
		t.Errorf("SyncDir calls = %q, want %q", fs.syncedDirs, want)
	}

	// Existing: made before (by an earlier process, the admin), durable.
	fs.syncedDirs = nil
	if err := durable.MkdirAll(fs, dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if len(fs.syncedDirs) != 0 {
		t.Errorf("SyncDir called for an existing dir: %q", fs.syncedDirs)
	}
}

// A folder another caller has just made, and not synced yet, gets its
// parent synced by whoever finds it, before it goes on to write into it.
func TestMkdirAllSyncsFolderAnotherIsMaking(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "box")
	fs := &faultFS{}
	b := &durable.Batched{FS: fs}
	b.BeginFolder(dir) // another caller's MkdirAll, between its mkdir and its sync
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := durable.MkdirAll(b, dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if want := []string{root}; !slices.Equal(fs.syncedDirs, want) {
		t.Errorf("SyncDir calls = %q, want %q", fs.syncedDirs, want)
	}
	b.EndFolder(dir, true)
	fs.syncedDirs = nil
	b.BeginFolder(dir) // a caller under way once the folder is durable: no need
	if err := durable.MkdirAll(b, dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if len(fs.syncedDirs) != 0 {
		t.Errorf("SyncDir called for a durable folder: %q", fs.syncedDirs)
	}
}

func TestMkdirAllErrors(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o600)
	if err := durable.MkdirAll(durable.OS{}, file, 0o700); err == nil ||
		!strings.Contains(err.Error(), "not a directory") {
		t.Errorf("MkdirAll on a file: err = %v", err)
	}
	err := durable.MkdirAll(&faultFS{failSyncDir: true}, filepath.Join(root, "new"), 0o700)
	if !errors.Is(err, errInjected) {
		t.Errorf("failing SyncDir: err = %v, want the injected error", err)
	}
}

// Admins commonly make /var/mail or /var/lib/x a symlink to a bigger
// disk; creating folders below it must work as os.MkdirAll does.
func TestMkdirAllBelowSymlinkedDir(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real")
	os.Mkdir(real, 0o700)
	link := filepath.Join(root, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := durable.MkdirAll(durable.OS{}, filepath.Join(link, "a", "b"), 0o700); err != nil {
		t.Fatalf("MkdirAll below a symlinked directory: %v", err)
	}
	if st, err := os.Stat(filepath.Join(real, "a", "b")); err != nil || !st.IsDir() {
		t.Errorf("a/b not created in the link's target: %v", err)
	}
}

// WriteWith gives the file its final name only after alongside
// succeeded; otherwise nothing is left.
func TestWriteWithAlongside(t *testing.T) {
	dir := t.TempDir()
	tmp, final := dir+"/tmp", dir+"/final"
	fill := func(w io.Writer) error { _, err := io.WriteString(w, "x"); return err }
	bad := errors.New("ledger flush failed")
	if err := durable.WriteWith(durable.OS{}, tmp, final, 0o600, fill, func() error { return bad }); !errors.Is(err, bad) {
		t.Errorf("got %v, want the alongside error", err)
	}
	for _, p := range []string{tmp, final} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed alongside", p)
		}
	}
	ran := false
	if err := durable.WriteWith(durable.OS{}, tmp, final, 0o600, fill, func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("got %v, ran %v", err, ran)
	}
	if b, _ := os.ReadFile(final); string(b) != "x" {
		t.Errorf("final holds %q", b)
	}
}

// Syncfs flushes through the folder it opened, for any name given.
func TestSyncfs(t *testing.T) {
	dir := t.TempDir()
	s, err := durable.OpenSyncfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := &durable.Batched{FS: durable.OS{}, Whole: s}
	if err := durable.Write(b, filepath.Join(dir, "t"), filepath.Join(dir, "f"), 0o600, writeString("x")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "f")); got != "x" {
		t.Errorf("content = %q", got)
	}
	if _, err := durable.OpenSyncfs(filepath.Join(dir, "absent")); err == nil {
		t.Error("OpenSyncfs of a missing folder succeeded")
	}
}

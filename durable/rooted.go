package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Rooted is the real filesystem confined to the tree below Root: every
// name it is given must be Root joined with a path below it, and no
// symlink below Root is ever followed, whoever planted it. Root itself
// may be a symlink (an admin's choice, e.g. /var/mail on a bigger disk).
//
// Each call opens Root, walks down one component at a time with
// openat(O_NOFOLLOW|O_DIRECTORY) and acts on the last entry relative to
// the folder it sits in, so a symlink swapped in between two calls is met
// by the next walk instead of being followed.
type Rooted struct {
	Root string
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// CreateExcl implements FS.
func (r Rooted) CreateExcl(name string, perm os.FileMode) (File, error) {
	dfd, base, err := r.openParent(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	// O_EXCL also fails on a symlink, dangling or not (open(2)).
	fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Rename implements FS. renameat(2) acts on the entries themselves: a
// symlink at either name is moved or replaced, never followed.
func (r Rooted) Rename(oldname, newname string) error {
	ofd, obase, err := r.openParent(oldname)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, nbase, err := r.openParent(newname)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := unix.Renameat(ofd, obase, nfd, nbase); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// Remove implements FS; it removes files (or a symlink itself), not folders.
func (r Rooted) Remove(name string) error {
	dfd, base, err := r.openParent(name)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := unix.Unlinkat(dfd, base, 0); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

// SyncFS implements FSSyncer: it flushes the filesystem holding Root.
func (r Rooted) SyncFS(string) error { return syncfsOnce(r.Root) }

// SyncDir implements FS.
func (r Rooted) SyncDir(dir string) error {
	elems, err := r.below(dir)
	if err != nil {
		return err
	}
	fd, err := r.walk(elems)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}

// MkdirAll creates dir and its missing parents below Root with perm,
// never following a symlink, and makes each new entry durable by
// fsyncing the folder that holds it (package-level MkdirAll over Mkdir).
// A missing Root is created first, with package-level MkdirAll on the
// plain filesystem: the path up to Root is the admin's.
func (r Rooted) MkdirAll(dir string, perm os.FileMode) error {
	if _, err := os.Stat(r.Root); errors.Is(err, os.ErrNotExist) {
		if err := MkdirAll(OS{}, r.Root, perm); err != nil {
			return err
		}
	}
	return MkdirAll(r, dir, perm)
}

// Mkdir implements FS: mkdirat(2) in the parent reached without
// following a symlink. Root itself counts as an existing folder.
func (r Rooted) Mkdir(name string, perm os.FileMode) error {
	elems, err := r.below(name)
	if err != nil {
		return err
	}
	if len(elems) == 0 {
		return &os.PathError{Op: "mkdir", Path: name, Err: unix.EEXIST}
	}
	dfd, base, err := r.parentOf(name, elems)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	err = unix.Mkdirat(dfd, base, uint32(perm.Perm()))
	if !errors.Is(err, unix.EEXIST) {
		if err != nil {
			return &os.PathError{Op: "mkdir", Path: name, Err: err}
		}
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "mkdir", Path: name, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return &os.PathError{Op: "mkdir", Path: name, Err: unix.EEXIST}
	case unix.S_IFLNK:
		return &SymlinkError{Path: name, Root: r.Root, Err: unix.ELOOP}
	}
	return &os.PathError{Op: "mkdir", Path: name, Err: unix.ENOTDIR}
}

// OpenAppend implements FS.
func (r Rooted) OpenAppend(name string, perm os.FileMode) (File, error) {
	return r.openFile(name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, perm)
}

// Truncate implements FS.
func (r Rooted) Truncate(name string, size int64) error {
	f, err := r.openFile(name, unix.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.(*os.File).Truncate(size)
}

// openFile opens name with flags, never following a symlink.
func (r Rooted) openFile(name string, flags int, perm os.FileMode) (File, error) {
	dfd, base, err := r.openParent(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// ReadDirNames lists the names in folder dir below Root, reached without
// following a symlink.
func (r Rooted) ReadDirNames(dir string) ([]string, error) {
	elems, err := r.below(dir)
	if err != nil {
		return nil, err
	}
	fd, err := r.walk(elems)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	return f.Readdirnames(-1)
}

// openParent opens the folder that holds name and returns its fd and
// name's last element.
func (r Rooted) openParent(name string) (int, string, error) {
	elems, err := r.below(name)
	if err != nil {
		return -1, "", err
	}
	return r.parentOf(name, elems)
}

// parentOf is openParent for name's elements below Root (r.below).
func (r Rooted) parentOf(name string, elems []string) (int, string, error) {
	if len(elems) == 0 {
		return -1, "", fmt.Errorf("%s is the root itself, not a name below it", name)
	}
	fd, err := r.walk(elems[:len(elems)-1])
	if err != nil {
		return -1, "", err
	}
	return fd, elems[len(elems)-1], nil
}

// below returns the elements of name's path below Root, or an error if
// name is not Root or a path below it.
func (r Rooted) below(name string) ([]string, error) {
	if r.Root == "" {
		return nil, errors.New("empty Root in durable.Rooted")
	}
	// postline never builds a name with "..": one is a bug or an attack,
	// refused even where it would clean to a path inside Root.
	for _, e := range strings.Split(filepath.ToSlash(name), "/") {
		if e == ".." {
			return nil, fmt.Errorf("%s: \"..\" refused below %s", name, r.Root)
		}
	}
	rel, err := filepath.Rel(filepath.Clean(r.Root), filepath.Clean(name))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("%s is not below %s", name, r.Root)
	}
	if rel == "." {
		return nil, nil
	}
	return strings.Split(rel, string(filepath.Separator)), nil
}

// walk opens Root (following it if it is a symlink), then each of elems
// in turn without following symlinks, and returns an fd of the last
// folder. On Linux 5.6 and later one openat2(2) with RESOLVE_NO_SYMLINKS
// and RESOLVE_BENEATH walks them all (the MDA walks to every copy's
// folder twice); when it fails, the walk one element at a time says why.
func (r Rooted) walk(elems []string) (int, error) {
	fd, err := unix.Open(r.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: r.Root, Err: err}
	}
	if len(elems) == 0 {
		return fd, nil
	}
	how := unix.OpenHow{Flags: dirFlags, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
	if next, err := unix.Openat2(fd, strings.Join(elems, "/"), &how); err == nil {
		unix.Close(fd)
		return next, nil
	}
	return r.walkEach(fd, elems)
}

// walkEach is walk one element at a time from fd, Root's, which it closes.
func (r Rooted) walkEach(fd int, elems []string) (int, error) {
	path := r.Root
	for _, e := range elems {
		path = filepath.Join(path, e)
		next, err := unix.Openat(fd, e, dirFlags, 0)
		if err != nil {
			err = r.openError(fd, e, path, err)
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// openError names the path a walk stopped at. O_NOFOLLOW|O_DIRECTORY on a
// symlink gives ENOTDIR or ELOOP, which reads like a different problem,
// so a symlink is named as such: the admin has one to remove.
func (r Rooted) openError(dfd int, e, path string, err error) error {
	var st unix.Stat_t
	if (errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)) &&
		unix.Fstatat(dfd, e, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return &SymlinkError{Path: path, Root: r.Root, Err: err}
	}
	return &os.PathError{Op: "open", Path: path, Err: err}
}

// SymlinkError reports a symlink met below a Rooted's Root. It unwraps to
// the system's error (ENOTDIR or ELOOP).
type SymlinkError struct {
	Path, Root string
	Err        error
}

// Error names the symlink, so the admin knows what to remove.
func (e *SymlinkError) Error() string {
	return fmt.Sprintf("%s is a symlink; symlinks below %s are not followed", e.Path, e.Root)
}

// Unwrap returns the system's error.
func (e *SymlinkError) Unwrap() error { return e.Err }

package mda

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-maildir"

	"postline/durable"
)

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// newMaildir returns a Maildir writing below a new mail root.
func newMaildir(t *testing.T, hostname string) (md *Maildir, root string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "mail") // Deliver creates it
	return &Maildir{FS: durable.Rooted{Root: root}, Hostname: hostname}, root
}

func TestMaildirDeliver(t *testing.T) {
	md, root := newMaildir(t, "mx.example.test")
	dir := filepath.Join(root, "example.test", "alice")

	key, err := md.Deliver(dir, strings.NewReader("Subject: x\n\nhello\n"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "new", key))
	if err != nil || string(data) != "Subject: x\n\nhello\n" {
		t.Fatalf("new/%s = %q, %v", key, data, err)
	}
	assertMode(t, filepath.Join(dir, "new", key), 0o600)
	// A Maildir holds private mail: no folder may be readable by others.
	for _, d := range []string{root, filepath.Dir(dir), dir, dir + "/tmp", dir + "/new", dir + "/cur"} {
		assertMode(t, d, 0o700)
	}
	if n := dirNames(t, filepath.Join(dir, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ after delivery: %q", n)
	}

	// The Maildir exists now: a second delivery adds a second file.
	key2, err := md.Deliver(dir, strings.NewReader("second"))
	if err != nil {
		t.Fatal(err)
	}
	if key2 == key || len(dirNames(t, filepath.Join(dir, "new"))) != 2 {
		t.Errorf("second delivery: key %q (first %q), new/ = %q", key2, key, dirNames(t, filepath.Join(dir, "new")))
	}
	// A Maildir reader (go-maildir, standing in for Dovecot) takes both
	// from new/ under the keys Deliver returned.
	unseen, err := maildir.Dir(dir).Unseen()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range unseen {
		keys = append(keys, m.Key())
	}
	if slices.Sort(keys); !slices.Equal(keys, slices.Sorted(slices.Values([]string{key, key2}))) {
		t.Errorf("go-maildir read keys %q, want %q and %q", keys, key, key2)
	}
}

// A symlink planted in the mail root, as a Maildir or as one of its
// folders, fails the delivery with 451 4.3.0 and an error naming it, and
// nothing is written where it points.
func TestMaildirDeliverRefusesSymlinks(t *testing.T) {
	for _, at := range []string{"example.test", "example.test/alice", "example.test/alice/new", "example.test/alice/tmp"} {
		t.Run(at, func(t *testing.T) {
			md, root := newMaildir(t, "mx")
			outside := t.TempDir()
			link := filepath.Join(root, at)
			if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			_, err := md.Deliver(filepath.Join(root, "example.test", "alice"), strings.NewReader("x"))
			var serr *durable.SymlinkError
			if !errors.As(err, &serr) || serr.Path != link {
				t.Fatalf("err = %v, want a SymlinkError naming %s", err, link)
			}
			if reply := deliveryError(err); reply.Code != 451 {
				t.Errorf("reply %d %v, want 451 4.3.0", reply.Code, reply.EnhancedCode)
			}
			if n := dirNames(t, outside); len(n) != 0 {
				t.Errorf("written outside the mail root: %q", n)
			}
		})
	}
}

// A Maildir is made once per process: a symlink planted in it after the
// first delivery is still refused, and a Maildir deleted meanwhile fails
// one delivery (the MTA retries it) and is made again for the next.
func TestMaildirMadeOnce(t *testing.T) {
	md, root := newMaildir(t, "mx")
	dir := filepath.Join(root, "example.test", "alice")
	if _, err := md.Deliver(dir, strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	os.RemoveAll(filepath.Join(dir, "tmp"))
	if err := os.Symlink(outside, filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	var serr *durable.SymlinkError
	if _, err := md.Deliver(dir, strings.NewReader("x")); !errors.As(err, &serr) {
		t.Errorf("delivery through a symlink planted later: %v, want a SymlinkError", err)
	}
	if n := dirNames(t, outside); len(n) != 0 {
		t.Errorf("written outside the mail root: %q", n)
	}
	os.RemoveAll(dir)
	if _, err := md.Deliver(dir, strings.NewReader("x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delivery to a Maildir deleted meanwhile: %v, want one that is retried", err)
	}
	key, err := md.Deliver(dir, strings.NewReader("again"))
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "new", key)); err != nil || string(data) != "again" {
		t.Errorf("new/%s = %q, %v", key, data, err)
	}
}

// Deliver never writes outside the mail root, whatever dir it is given.
func TestMaildirDeliverOutsideRoot(t *testing.T) {
	md, root := newMaildir(t, "mx")
	outside := t.TempDir()
	for _, dir := range []string{outside, filepath.Join(root, "..", filepath.Base(outside))} {
		if _, err := md.Deliver(dir, strings.NewReader("x")); err == nil {
			t.Errorf("Deliver(%s) succeeded", dir)
		}
	}
	if n := dirNames(t, outside); len(n) != 0 {
		t.Errorf("written outside the mail root: %q", n)
	}
}

// Keys follow go-maildir: <secs>.<pid><counter><20 hex>.<host>, with "/"
// and ":" of the host name escaped as octal so the key stays one path
// element and ":" keeps meaning the start of the flags.
func TestMaildirKeyFormat(t *testing.T) {
	md, root := newMaildir(t, "mx/1:2.example.test")
	dir := filepath.Join(root, "alice")
	for counter := 1; counter <= 2; counter++ {
		before := time.Now().Unix()
		key, err := md.Deliver(dir, strings.NewReader("x"))
		after := time.Now().Unix()
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(fmt.Sprintf(`^(\d+)\.%d%d[0-9a-f]{20}\.%s$`,
			os.Getpid(), counter, regexp.QuoteMeta(`mx\0571\0722.example.test`)))
		m := re.FindStringSubmatch(key)
		if m == nil {
			t.Fatalf("key %q does not match %s", key, re)
		}
		if secs, _ := strconv.ParseInt(m[1], 10, 64); secs < before || secs > after {
			t.Errorf("key time %d not in [%d, %d]", secs, before, after)
		}
	}
}

// enospcFS is the real filesystem whose files fail to grow, like a full disk.
type enospcFS struct{ durable.Rooted }

func (f enospcFS) CreateExcl(name string, perm os.FileMode) (durable.File, error) {
	file, err := f.Rooted.CreateExcl(name, perm)
	if err != nil {
		return nil, err
	}
	return enospcFile{file}, nil
}

type enospcFile struct{ durable.File }

func (enospcFile) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "maildir file", Err: syscall.ENOSPC}
}

// A full disk must give a temporary 452 and leave no partial message.
func TestMaildirDeliverDiskFull(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "alice")
	md := &Maildir{FS: enospcFS{durable.Rooted{Root: root}}, Hostname: "mx"}
	_, err := md.Deliver(dir, strings.NewReader("x"))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if serr := deliveryError(err); serr.Code != 452 {
		t.Errorf("reply %d %v, want 452 4.3.1", serr.Code, serr.EnhancedCode)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if n := dirNames(t, filepath.Join(dir, sub)); len(n) != 0 {
			t.Errorf("%s/ after a failed delivery: %q", sub, n)
		}
	}
}

// A copy whose stream breaks is an error, not a shorter copy: fill must
// not take the data reader's io.ErrUnexpectedEOF for the end.
func TestCopyFullKeepsStreamErrors(t *testing.T) {
	var out bytes.Buffer
	r := io.MultiReader(strings.NewReader("Return-Path: <a@b>\n"), iotest.ErrReader(io.ErrUnexpectedEOF))
	if err := copyFull(&out, r, make([]byte, 64)); err != io.ErrUnexpectedEOF {
		t.Fatalf("copyFull = %v, want io.ErrUnexpectedEOF", err)
	}
	out.Reset()
	r = io.MultiReader(strings.NewReader("a\n"), strings.NewReader("b\n"))
	if err := copyFull(&out, r, make([]byte, 3)); err != nil || out.String() != "a\nb\n" {
		t.Fatalf("copyFull = %v, %q", err, out.String())
	}
}

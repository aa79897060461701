package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"postline/config"
)

// Made-up ids: no such users need to exist for chown or for the checks.
var (
	msaID = Identity{Name: "plmsa", UID: 54321, GID: 54321, Groups: []int{54321, 54330}}
	mtaID = Identity{Name: "plmta", UID: 54322, GID: 54322, Groups: []int{54322, 54330}}
	mdaID = Identity{Name: "plmda", UID: 54323, GID: 54323, Groups: []int{54323, 54330}}
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
}

// openTempDir returns a folder every user can pass through, as a real
// state_dir's parents (/var/lib) are.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ownerOf(t *testing.T, path string) (uid, gid int, perm os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return int(sys.Uid), int(sys.Gid), st.Mode().Perm()
}

func testConfig(dir string) *config.Config {
	return &config.Config{StateDir: filepath.Join(dir, "state"), UsersFile: filepath.Join(dir, "users"),
		MDA: config.MDA{MailRoot: filepath.Join(dir, "mail")}}
}

func TestPrepareGivesEachDaemonItsFolders(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(openTempDir(t))
	self, _ := LookupIdentity("")
	o := &Owners{Self: self, MSA: msaID, MTA: mtaID, MDA: mdaID}
	if err := o.prepare(cfg, []string{"msa", "mta", "mda"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		path     string
		uid, gid int
		perm     os.FileMode
	}{
		{cfg.StateDir, 0, 0, 0o711}, {cfg.RunDir(), 0, 0, 0o711},
		{cfg.QueueDir(), mtaID.UID, mtaID.GID, 0o700},
		{MDASpoolDir(cfg), mdaID.UID, mdaID.GID, 0o700},
		{cfg.MDA.MailRoot, mdaID.UID, mdaID.GID, 0o700},
	} {
		if uid, gid, perm := ownerOf(t, want.path); uid != want.uid || gid != want.gid || perm != want.perm {
			t.Errorf("%s: %d:%d %04o, want %d:%d %04o", want.path, uid, gid, perm, want.uid, want.gid, want.perm)
		}
	}
}

// A queue left by a run as root is handed over whole; one that belongs
// to another user is not taken, the error says how to do it.
func TestPrepareHandsOverQueueLeftByRoot(t *testing.T) {
	requireRoot(t)
	dir := openTempDir(t)
	cfg := testConfig(dir)
	self, _ := LookupIdentity("")
	msg := filepath.Join(cfg.QueueDir(), "msg", "ID1")
	os.MkdirAll(filepath.Dir(msg), 0o700)
	os.WriteFile(msg, []byte("x"), 0o600)
	outside := filepath.Join(dir, "outside")
	os.WriteFile(outside, nil, 0o600)
	os.Symlink(outside, filepath.Join(cfg.QueueDir(), "link"))
	o := &Owners{Self: self, MSA: msaID, MTA: mtaID, MDA: mdaID}
	if err := o.prepare(cfg, []string{"mta"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{msg, filepath.Dir(msg)} {
		if uid, _, _ := ownerOf(t, p); uid != mtaID.UID {
			t.Errorf("%s: uid %d, want %d", p, uid, mtaID.UID)
		}
	}
	if uid, _, _ := ownerOf(t, outside); uid != 0 {
		t.Fatalf("followed a symlink: %s now uid %d", outside, uid)
	}
	o.MTA = Identity{Name: "other", UID: 54399, GID: 54399}
	err := o.prepare(cfg, []string{"mta"})
	if err == nil || !strings.Contains(err.Error(), "chown -R other: "+cfg.QueueDir()) {
		t.Errorf("queue of another user: %v", err)
	}
}

func TestPrepareNamesFolderDaemonCannotPass(t *testing.T) {
	requireRoot(t)
	dir := openTempDir(t)
	cfg := testConfig(filepath.Join(dir, "closed"))
	os.Mkdir(filepath.Join(dir, "closed"), 0o700)
	self, _ := LookupIdentity("")
	o := &Owners{Self: self, MSA: msaID, MTA: mtaID, MDA: mdaID}
	err := o.prepare(cfg, []string{"mda"})
	want := "user plmda cannot reach " + cfg.MDA.MailRoot + ": " + filepath.Join(dir, "closed") + " is mode 0700"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestCanReachReadsModeBits(t *testing.T) {
	dir := openTempDir(t)
	users := filepath.Join(dir, "users")
	os.WriteFile(users, nil, 0o640)
	other := Identity{Name: "x", UID: 54398, GID: 54398}
	if err := canReach(other, users, false); err != nil {
		t.Errorf("search through 0755 folders: %v", err)
	}
	if err := canReach(other, users, true); err == nil || !strings.Contains(err.Error(), "cannot read "+users) {
		t.Errorf("read of a 0640 file by another user: %v", err)
	}
	st, _ := os.Stat(users)
	member := Identity{Name: "m", UID: 54397, GID: 1, Groups: []int{1, int(st.Sys().(*syscall.Stat_t).Gid)}}
	if err := canReach(member, users, true); err != nil {
		t.Errorf("read of a 0640 file by a group member: %v", err)
	}
	os.Chmod(dir, 0o750)
	if err := canReach(other, users, false); err == nil || !strings.Contains(err.Error(), "chmod o+x "+dir) {
		t.Errorf("search through a 0750 folder: %v", err)
	}
}

// Only the peer that hands the daemon mail may connect: the socket is
// the daemon's, in the peer's group, 0660; 0600 when they are one user.
func TestListenSocketModes(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(openTempDir(t))
	self, _ := LookupIdentity("")
	o := &Owners{Self: self, MSA: msaID, MTA: mtaID, MDA: mtaID}
	for _, c := range []struct {
		svc, path string
		uid, gid  int
		perm      os.FileMode
	}{
		{"mta", cfg.MTASocket(), mtaID.UID, msaID.GID, 0o660},
		{"mda", cfg.MDASocket(), mtaID.UID, mtaID.GID, 0o600},
	} {
		l, err := o.ListenSocket(c.svc, c.path)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if uid, gid, perm := ownerOf(t, c.path); uid != c.uid || gid != c.gid || perm != c.perm {
			t.Errorf("%s: %d:%d %04o, want %d:%d %04o", c.svc, uid, gid, perm, c.uid, c.gid, c.perm)
		}
	}
	// An MSA left as root needs no group access, and root's group gets none.
	o.MSA = self
	cfg = testConfig(openTempDir(t))
	l, err := o.ListenSocket("mta", cfg.MTASocket())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if uid, gid, perm := ownerOf(t, cfg.MTASocket()); uid != mtaID.UID || gid != mtaID.GID || perm != 0o600 {
		t.Errorf("msa as root: %d:%d %04o, want %d:%d 0600", uid, gid, perm, mtaID.UID, mtaID.GID)
	}
}

// With no user keys nothing changes hands and the folders stay 0700.
func TestPrepareWithoutUsersKeepsInvokingUser(t *testing.T) {
	cfg := testConfig(openTempDir(t))
	o, err := Prepare(cfg, "msa", "mta", "mda")
	if err != nil {
		t.Fatal(err)
	}
	if o.separated() {
		t.Error("separated without user keys")
	}
	for _, p := range []string{cfg.StateDir, cfg.QueueDir(), cfg.MDA.MailRoot} {
		if uid, _, perm := ownerOf(t, p); uid != os.Geteuid() || perm != 0o700 {
			t.Errorf("%s: uid %d %04o", p, uid, perm)
		}
	}
	l, err := o.ListenSocket("mta", cfg.MTASocket())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, _, perm := ownerOf(t, cfg.MTASocket()); perm != 0o600 {
		t.Errorf("socket %04o, want 0600", perm)
	}
}

func TestDropPrivilegesRefusesOtherUserWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("as root the switch would succeed (and end the test process's root)")
	}
	err := canSwitchTo(Identity{Name: "someone", UID: os.Geteuid() + 1})
	if err == nil || !strings.Contains(err.Error(), `cannot switch to user "someone"`) {
		t.Errorf("got %v", err)
	}
	if err := canSwitchTo(Identity{Name: "me", UID: os.Geteuid()}); err != nil {
		t.Errorf("switching to oneself: %v", err)
	}
}

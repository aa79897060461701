package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"postline/daemon"
)

// A user key naming no system user stops `postline check` and `postline
// start` with the file, the line and the name.
func TestCheckNamesMissingUser(t *testing.T) {
	t.Parallel()
	config := validConfig + "[msa]\nuser = \"plnosuch1\"\n[mda]\nuser = \"plnosuch2\"\n"
	path := writeFile(t, "bad.toml", config)
	for _, cmd := range []string{"check", "start"} {
		out, err := runPostline(path, "", cmd)
		if err == nil {
			t.Errorf("%s passed with missing users:\n%s", cmd, out)
		}
		for _, want := range []string{
			path + `:7: msa.user: no system user "plnosuch1"`,
			path + `:9: mda.user: no system user "plnosuch2"`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: got %q, want it to contain %q", cmd, out, want)
			}
		}
	}
}

// Started as root with user keys, each daemon runs as its user, owns
// exactly its folders, and only the daemon that hands it mail can reach
// its socket. Mail still flows, and users added later still count.
func TestPrivilegeSeparation(t *testing.T) {
	if os.Geteuid() != 0 {
		interopMissing(t, "privilege separation needs root to create users and switch to them; run `sudo go test -run Privilege ./e2e`")
	}
	group := createGroup(t)
	a, b, c := createUser(t, group), createUser(t, group), createUser(t, group)
	t.Run("postline and vmail", func(t *testing.T) { testPrivileges(t, group, a, a, b) })
	t.Run("three users", func(t *testing.T) { testPrivileges(t, group, a, b, c) })
}

func testPrivileges(t *testing.T, group *user.Group, msaU, mtaU, mdaU *user.User) {
	s := newPrivilegedStack(t, group, msaU, mtaU, mdaU)
	for name, u := range map[string]*user.User{"msa": msaU, "mta": mtaU, "mda": mdaU} {
		checkRunsAs(t, s.ChildPID(name), u, group)
	}
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: "Subject: hi\r\n\r\nhi\r\n"}); err != nil {
		t.Fatal(err)
	}
	s.WaitForMail(demoUser, 1, 10*time.Second)
	entries, _ := os.ReadDir(filepath.Join(s.Mailbox(demoUser), "new"))
	state := filepath.Join(s.Dir, "var")
	checkOwner(t, filepath.Join(s.Mailbox(demoUser), "new", entries[0].Name()), mdaU, mdaU, 0o600)
	checkOwner(t, filepath.Join(s.Mailbox(demoUser), "new"), mdaU, mdaU, 0o700)
	checkOwner(t, s.MailRoot, mdaU, mdaU, 0o700)
	checkOwner(t, filepath.Join(state, "mda"), mdaU, mdaU, 0o700)
	checkOwner(t, filepath.Join(state, "queue"), mtaU, mtaU, 0o700)
	checkOwner(t, filepath.Join(state, "queue", "log"), mtaU, mtaU, 0o700)
	checkOwner(t, filepath.Join(state, "mta"), mtaU, mtaU, 0o700)
	checkOwner(t, filepath.Join(state, "mta", "srs.secret"), mtaU, mtaU, 0o600)
	root, _ := user.LookupId("0")
	checkOwner(t, state, root, root, 0o711)
	checkOwner(t, filepath.Join(state, "run"), root, root, 0o711)
	checkOwner(t, filepath.Join(state, "tls", "key.pem"), root, root, 0o600)
	checkSockets(t, state, msaU, mtaU, mdaU)

	// `postline user add` keeps the file's group, and the daemons, no
	// longer root, read the new account through it.
	s.Postline("late-password\n", "user", "add", "late@example.test")
	checkOwner(t, filepath.Join(s.Dir, "users"), root, groupAsUser(group), 0o640)
	late := Submission{User: "late@example.test", Pass: "late-password", To: []string{"late@example.test"}, Body: "Subject: late\r\n\r\nhi\r\n"}
	if _, err := s.Submit(late); err != nil {
		t.Fatal(err)
	}
	s.WaitForMail("late@example.test", 1, 10*time.Second)
	checkChildrenDieWithSupervisor(t, s)
}

// newPrivilegedStack starts a stack whose daemons drop to the given
// users, after checking that a folder they could not pass stops `postline
// start` by name.
func newPrivilegedStack(t *testing.T, group *user.Group, msaU, mtaU, mdaU *user.User) *Stack {
	dir, err := os.MkdirTemp("", "pl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Stack{t: t, Dir: dir, Config: filepath.Join(dir, "postline.toml"), log: newStackLog(t),
		Submission: freeAddr(t), Submissions: freeAddr(t), MTA: freeAddr(t),
		MailRoot: filepath.Join(dir, "var", "mail")}
	key := func(u *user.User) string { return fmt.Sprintf("user = %q\n", u.Username) }
	s.writeConfig(StackConfig{MSA: key(msaU), MTA: key(mtaU), MDA: key(mdaU)})
	s.Postline(demoPassword+"\n", "user", "add", demoUser)
	// The users file is root's, readable by the group all three are in.
	gid, _ := strconv.Atoi(group.Gid)
	if err := os.Chown(filepath.Join(dir, "users"), 0, gid); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "postline"), "-c", s.Config, "start").CombinedOutput()
	want := fmt.Sprintf("user %s cannot reach %s", mdaU.Username, s.MailRoot)
	if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "chmod o+x "+dir) {
		t.Fatalf("start with %s closed (0700): %v, want %q and the fix in:\n%s", dir, err, want, out)
	}
	// Like /var/lib: everyone may pass through to state_dir and mail_root.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.start()
	return s
}

// checkRunsAs reads the real, effective, saved and filesystem ids of pid.
func checkRunsAs(t *testing.T, pid int, u *user.User, group *user.Group) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	field := func(name string) []string {
		m := regexp.MustCompile(`(?m)^` + name + `:\s*(.*)$`).FindSubmatch(status)
		if m == nil {
			return nil
		}
		return strings.Fields(string(m[1]))
	}
	for name, want := range map[string]string{"Uid": u.Uid, "Gid": u.Gid} {
		if ids := field(name); len(ids) != 4 || slices.ContainsFunc(ids, func(id string) bool { return id != want }) {
			t.Errorf("pid %d (%s): %s %v, want %s four times", pid, u.Username, name, ids, want)
		}
	}
	if groups := field("Groups"); !slices.Contains(groups, group.Gid) || slices.Contains(groups, "0") {
		t.Errorf("pid %d (%s): groups %v, want %s and not 0", pid, u.Username, groups, group.Gid)
	}
}

// checkSockets tries every socket as every user: only the daemon's own
// user and the user of the daemon that hands it mail may connect.
func checkSockets(t *testing.T, state string, msaU, mtaU, mdaU *user.User) {
	t.Helper()
	run := filepath.Join(state, "run")
	sockets := []struct {
		path        string
		owner, peer *user.User
		greets      bool // an SMTP or LMTP server, which canDialAs tries
	}{
		{filepath.Join(run, "mta.sock"), mtaU, msaU, true},
		{filepath.Join(run, "mta-status.sock"), mtaU, msaU, false},
		{filepath.Join(run, "mda.sock"), mdaU, mtaU, true},
		{filepath.Join(run, "mta-mda.sock"), mtaU, mdaU, true}, // the MDA's mail: Sieve redirects, replies
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	for _, sock := range sockets {
		group, mode := sock.owner, os.FileMode(0o600)
		if sock.peer.Uid != sock.owner.Uid {
			group, mode = sock.peer, 0o660
		}
		checkOwner(t, sock.path, sock.owner, group, mode)
		if !sock.greets {
			continue
		}
		for _, u := range []*user.User{msaU, mtaU, mdaU, nobody} {
			want := u.Uid == sock.owner.Uid || u.Uid == sock.peer.Uid
			if got := canDialAs(t, u, sock.path); got != want {
				t.Errorf("%s connecting to %s: %v, want %v", u.Username, filepath.Base(sock.path), got, want)
			}
		}
	}
}

// checkOwner checks path's owner, group (owner's primary group of
// group) and mode.
func checkOwner(t *testing.T, path string, owner, group *user.User, mode os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Error(err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	uid, gid := strconv.Itoa(int(sys.Uid)), strconv.Itoa(int(sys.Gid))
	if uid != owner.Uid || gid != group.Gid || st.Mode().Perm() != mode {
		t.Errorf("%s: %s:%s %04o, want %s(%s):%s %04o", path, uid, gid, st.Mode().Perm(),
			owner.Username, owner.Uid, group.Gid, mode)
	}
}

func groupAsUser(g *user.Group) *user.User { return &user.User{Username: g.Name, Gid: g.Gid} }

// checkChildrenDieWithSupervisor kills `postline start` with SIGKILL:
// its children, though no longer root, still get their parent-death
// SIGTERM and exit.
func checkChildrenDieWithSupervisor(t *testing.T, s *Stack) {
	t.Helper()
	pids := []int{s.ChildPID("msa"), s.ChildPID("mta"), s.ChildPID("mda")}
	s.cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for running(pid) {
			if time.Now().After(deadline) {
				// Leave no daemon running past the test.
				for _, p := range pids {
					syscall.Kill(p, syscall.SIGKILL)
				}
				t.Fatalf("child %d still runs after its supervisor was killed", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// running reports whether pid exists and is not a zombie left for init.
func running(pid int) bool {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err == nil && !regexp.MustCompile(`(?m)^State:\s+Z`).Match(status)
}

func createGroup(t *testing.T) *user.Group {
	t.Helper()
	name := fmt.Sprintf("plg%06d", rand.IntN(1000000))
	if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// createUser adds a system user with its own primary group (useradd's
// default), also in group.
func createUser(t *testing.T, group *user.Group) *user.User {
	t.Helper()
	name := fmt.Sprintf("plt%06d", rand.IntN(1000000))
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
		"--groups", group.Name, name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The test binary doubles as a client that connects as another user:
// run with these variables it drops to the user, with the daemons' own
// code, dials the socket and exits 0 (connected and greeted), 13
// (permission denied) or 1, before any test or TestMain runs.
const (
	dialPathEnv = "POSTLINE_TEST_DIAL"
	dialUserEnv = "POSTLINE_TEST_DIAL_AS"
)

func init() {
	if path := os.Getenv(dialPathEnv); path != "" {
		os.Exit(dialAs(os.Getenv(dialUserEnv), path))
	}
}

func dialAs(name, path string) int {
	if err := daemon.DropPrivileges(zerolog.Nop(), name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := net.Dial("unix", path)
	if errors.Is(err, syscall.EACCES) {
		return 13
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	// Greeted, then QUIT: the daemon served us and logs no broken session.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if greeting, _ := r.ReadString('\n'); !strings.HasPrefix(greeting, "220 ") {
		fmt.Fprintf(os.Stderr, "greeting %q\n", greeting)
		return 1
	}
	fmt.Fprint(c, "QUIT\r\n")
	r.ReadString('\n')
	return 0
}

func canDialAs(t *testing.T, u *user.User, path string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), dialPathEnv+"="+path, dialUserEnv+"="+u.Username)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &exit) && exit.ExitCode() == 13:
		return false
	}
	t.Fatalf("dial %s as %s: %v\n%s", path, u.Username, err, out)
	return false
}

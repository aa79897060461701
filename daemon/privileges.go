package daemon

import (
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/rs/zerolog"
)

// Identity is a user a daemon runs as: its ids and every group it is in.
type Identity struct {
	Name   string
	UID    int
	GID    int   // primary group
	Groups []int // supplementary groups, the primary one included
}

// LookupIdentity returns the system user name, or for "" the user this
// process runs as: a daemon with no user key keeps the invoking user.
func LookupIdentity(name string) (Identity, error) {
	if name == "" {
		return invokingIdentity()
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Identity{}, fmt.Errorf("daemon: user %q: %w", name, err)
	}
	id := Identity{Name: u.Username}
	if id.UID, err = strconv.Atoi(u.Uid); err != nil {
		return Identity{}, fmt.Errorf("daemon: user %q: uid %q: %w", name, u.Uid, err)
	}
	if id.GID, err = strconv.Atoi(u.Gid); err != nil {
		return Identity{}, fmt.Errorf("daemon: user %q: gid %q: %w", name, u.Gid, err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return Identity{}, fmt.Errorf("daemon: groups of user %q: %w", name, err)
	}
	id.Groups = []int{id.GID}
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil && !slices.Contains(id.Groups, n) {
			id.Groups = append(id.Groups, n)
		}
	}
	return id, nil
}

func invokingIdentity() (Identity, error) {
	groups, err := os.Getgroups()
	if err != nil {
		return Identity{}, fmt.Errorf("daemon: own groups: %w", err)
	}
	id := Identity{Name: strconv.Itoa(os.Geteuid()), UID: os.Geteuid(), GID: os.Getegid(), Groups: groups}
	if u, err := user.LookupId(id.Name); err == nil {
		id.Name = u.Username
	}
	if !slices.Contains(id.Groups, id.GID) {
		id.Groups = append(id.Groups, id.GID)
	}
	return id, nil
}

// InGroup reports whether gid is one of id's groups.
func (id Identity) InGroup(gid int) bool { return id.GID == gid || slices.Contains(id.Groups, gid) }

// canSwitchTo reports why this process cannot become id, or nil: only
// root can change its user; anyone else may only "become" itself.
func canSwitchTo(id Identity) error {
	if euid := os.Geteuid(); euid != 0 && euid != id.UID {
		return fmt.Errorf("daemon: cannot switch to user %q (uid %d): only root can, and this process runs as uid %d; start it as root or remove the user key", id.Name, id.UID, euid)
	}
	return nil
}

// DropPrivileges makes the process run as the system user name, for good.
// Call it once the daemon holds what only root can get (ports below 1024,
// its socket in a root-owned folder, the TLS key) and before it serves a
// client or touches a spool, so that a flaw in the SMTP code reaches no
// further than that user's files. An empty name keeps the invoking user.
func DropPrivileges(log zerolog.Logger, name string) error {
	if name == "" {
		return nil
	}
	id, err := LookupIdentity(name)
	if err != nil {
		return err
	}
	if err := canSwitchTo(id); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		log.Info().Str("user", id.Name).Int("uid", id.UID).Msg("already running as the configured user")
		return nil
	}
	// Groups first, then the gid: both need root, which Setuid gives up.
	// Since Go 1.16 all three apply to every thread of the process.
	if err := syscall.Setgroups(id.Groups); err != nil {
		return fmt.Errorf("daemon: setgroups %v for %s: %w", id.Groups, id.Name, err)
	}
	if err := syscall.Setgid(id.GID); err != nil {
		return fmt.Errorf("daemon: setgid %d for %s: %w", id.GID, id.Name, err)
	}
	if err := syscall.Setuid(id.UID); err != nil {
		return fmt.Errorf("daemon: setuid %d for %s: %w", id.UID, id.Name, err)
	}
	if err := verifyDropped(id); err != nil {
		return err
	}
	if err := rearmParentDeathSignal(); err != nil {
		return err
	}
	log.Info().Str("user", id.Name).Int("uid", id.UID).Int("gid", id.GID).Ints("groups", id.Groups).Msg("privileges dropped")
	return nil
}

// verifyDropped checks that real and effective ids are id's and that root
// cannot be regained: setuid(0) succeeds while the saved uid is still 0.
func verifyDropped(id Identity) error {
	if u, eu, g, eg := syscall.Getuid(), syscall.Geteuid(), syscall.Getgid(), syscall.Getegid(); u != id.UID || eu != id.UID || g != id.GID || eg != id.GID {
		return fmt.Errorf("daemon: after switching to %s: uid %d euid %d gid %d egid %d, want uid and gid %d %d", id.Name, u, eu, g, eg, id.UID, id.GID)
	}
	groups, err := syscall.Getgroups()
	if err != nil {
		return fmt.Errorf("daemon: getgroups: %w", err)
	}
	slices.Sort(groups)
	want := slices.Sorted(slices.Values(id.Groups))
	if !slices.Equal(groups, want) {
		return fmt.Errorf("daemon: after switching to %s: groups %v, want %v", id.Name, groups, want)
	}
	if id.UID != 0 && syscall.Setuid(0) == nil {
		return fmt.Errorf("daemon: after switching to %s: setuid(0) still succeeds", id.Name)
	}
	return nil
}

// The kernel clears a process's parent-death signal when its effective
// uid changes, which would let a daemon outlive a killed `postline start`
// (which asks for SIGTERM, see cmd/postline/start.go). Both values are
// read while package initialisation runs, on the main thread, the one
// the signal was set on.
var (
	parentDeathSignal = readParentDeathSignal()
	parentAtStart     = os.Getppid()
)

func readParentDeathSignal() syscall.Signal {
	var sig int32
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0)
	return syscall.Signal(sig)
}

// rearmParentDeathSignal sets the signal again after a uid change. Any
// thread carrying it is enough for the kernel to send it to the process.
func rearmParentDeathSignal() error {
	if parentDeathSignal == 0 {
		return nil
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(parentDeathSignal), 0); errno != 0 {
		return fmt.Errorf("daemon: set parent-death signal again: %w", errno)
	}
	// The parent may have died while the signal was unset: then nobody
	// will send it, and the daemon must not keep running orphaned.
	if os.Getppid() != parentAtStart {
		return fmt.Errorf("daemon: parent process %d exited while dropping privileges", parentAtStart)
	}
	return nil
}

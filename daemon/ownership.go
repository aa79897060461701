package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"postline/config"
	"postline/durable"
)

// Owners is who owns what under state_dir and mail_root: the one place
// that decides the owners and modes of postline's folders and sockets.
//
// Started as root with user keys, each daemon drops to its user once it
// holds its ports and its socket, so everything it touches afterwards
// must be its own:
//
//	path                  owner  group            mode
//	state_dir, run/       root   root             0711 (each daemon may pass, none may list)
//	state_dir/tls/        root   root             0700 (keys are loaded before dropping)
//	state_dir/queue/      mta    mta              0700, files 0600
//	state_dir/mta/        mta    mta              0700, files 0600
//	state_dir/mda/        mda    mda              0700, files 0600
//	mail_root             mda    mda              0700 (Maildirs 0700, files 0600)
//	run/mta.sock          mta    msa's primary    0660 (0600 when msa and mta are one user)
//	run/mta-mda.sock      mta    mda's primary    0660 (0600 when mda and mta are one user)
//	run/mta-status.sock   mta    msa's primary    0660 (as mta.sock: the HTTP API's status queries)
//	run/mda.sock          mda    mta's primary    0660 (0600 when mta and mda are one user)
//
// (A socket whose peer stays root is 0600 too: root needs no permission.)
// With no user keys, or when not started as root, every daemon runs as the
// invoking user and the folders are left as they are (created 0700).
type Owners struct {
	Self          Identity // the process preparing the folders
	MSA, MTA, MDA Identity
}

// LookupOwners resolves the [msa], [mta] and [mda] user keys. It fails
// when a user is named that this process cannot switch to.
func LookupOwners(cfg *config.Config) (*Owners, error) {
	o := &Owners{}
	var err error
	if o.Self, err = LookupIdentity(""); err != nil {
		return nil, err
	}
	for _, d := range []struct {
		id   *Identity
		name string
	}{{&o.MSA, cfg.MSA.User}, {&o.MTA, cfg.MTA.User}, {&o.MDA, cfg.MDA.User}} {
		if *d.id, err = LookupIdentity(d.name); err != nil {
			return nil, err
		}
		if err := canSwitchTo(*d.id); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Prepare resolves the owners and makes the folders the daemons svcs
// ("msa", "mta", "mda") need: the supervisor prepares all of them before
// starting any, and each daemon its own again, so that it also works
// when started alone.
func Prepare(cfg *config.Config, svcs ...string) (*Owners, error) {
	o, err := LookupOwners(cfg)
	if err != nil {
		return nil, err
	}
	if err := o.prepare(cfg, svcs); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *Owners) prepare(cfg *config.Config, svcs []string) error {
	for _, f := range o.folders(cfg, svcs) {
		if err := o.ensure(f); err != nil {
			return err
		}
	}
	if !o.separated() {
		return nil
	}
	return o.checkReach(cfg, svcs)
}

// separated reports whether some daemon runs as another user than the
// one preparing; only then are owners and modes changed.
func (o *Owners) separated() bool {
	return o.Self.UID == 0 && (o.MSA.UID != 0 || o.MTA.UID != 0 || o.MDA.UID != 0)
}

// MDASpoolDir holds the MDA's copy of each message while it is delivered
// (mda.Backend.SpoolDir).
func MDASpoolDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "mda") }

// MTAStateDir holds the MTA's state besides its queue: the SRS secret.
func MTAStateDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "mta") }

// MSASpoolDir holds the MSA's copy of a message while filter plugins read
// its body (msa.Backend.SpillDir).
func MSASpoolDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "msa") }

// folder is one folder and who should own it.
type folder struct {
	path  string
	owner Identity
	mode  os.FileMode
	// tree: also hand over what is inside, when it was left by a run as
	// root. Only for the small spools; mail_root may hold millions of files.
	tree bool
}

func (o *Owners) folders(cfg *config.Config, svcs []string) []folder {
	shared := os.FileMode(0o700)
	if o.separated() {
		shared = 0o711 // search only: a daemon can reach its folder but not list the others
	}
	fs := []folder{{cfg.StateDir, o.Self, shared, false}, {cfg.RunDir(), o.Self, shared, false}}
	for _, svc := range svcs {
		switch svc {
		case "msa":
			fs = append(fs, folder{MSASpoolDir(cfg), o.MSA, 0o700, true})
		case "mta":
			fs = append(fs, folder{cfg.QueueDir(), o.MTA, 0o700, true}, folder{MTAStateDir(cfg), o.MTA, 0o700, true})
		case "mda":
			fs = append(fs, folder{MDASpoolDir(cfg), o.MDA, 0o700, true},
				folder{cfg.MDA.MailRoot, o.MDA, 0o700, false})
		}
	}
	return fs
}

// ensure creates f, and when the daemons are separated gives it its
// owner and mode.
func (o *Owners) ensure(f folder) error {
	if err := durable.MkdirAll(durable.OS{}, f.path, f.mode); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if !o.separated() {
		return nil // everyone is the invoking user: leave folders as they are
	}
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	uid := int(st.Sys().(*syscall.Stat_t).Uid)
	switch {
	case uid == f.owner.UID || f.owner.UID == 0:
	case uid == 0 && f.tree && st.Mode().Perm()&0o077 == 0:
		// Left by a run as root and closed to everyone else: nobody can
		// have planted a symlink inside, so handing it all over is safe.
		if err := chownTree(f.path, f.owner); err != nil {
			return err
		}
	case uid == 0:
	default:
		return fmt.Errorf("daemon: %s belongs to uid %d, not to %s (uid %d); give it over with `chown -R %s: %s`",
			f.path, uid, f.owner.Name, f.owner.UID, f.owner.Name, f.path)
	}
	if err := os.Chown(f.path, f.owner.UID, f.owner.GID); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if err := os.Chmod(f.path, f.mode); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	return nil
}

// chownTree gives everything under dir to id, never following a symlink.
func chownTree(dir string, id Identity) error {
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, id.UID, id.GID); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		return nil
	})
}

// ListenSocket listens on the unix socket of daemon svc ("mta" or "mda")
// so that only the daemon that hands it mail can connect.
//
// The socket is made while the daemon is still root, then given to the
// daemon's user and to the peer's primary group, mode 0660: Linux checks
// write permission on the socket file at connect. (A folder per socket
// would do the same on systems that ignore socket modes; Linux does not.)
// This relies on each daemon user having its own primary group, as
// useradd makes by default; every member of that group can connect.
// When peer and daemon are one user, or the peer stays root (which
// needs no permission), the socket stays 0600. A daemon that has dropped
// root cannot remove its socket from run/ when it stops; the next start
// replaces the stale file (ListenUnix).
func (o *Owners) ListenSocket(svc, path string) (net.Listener, error) {
	owner, peer := o.MTA, o.MSA
	switch svc {
	case "mda":
		owner, peer = o.MDA, o.MTA
	case "mta-mda": // the MTA's socket for the MDA's mail
		owner, peer = o.MTA, o.MDA
	}
	mode, gid := os.FileMode(0o600), owner.GID
	if peer.UID != owner.UID && peer.UID != 0 {
		mode, gid = 0o660, peer.GID
	}
	l, err := ListenUnix(path, mode)
	if err != nil || !o.separated() {
		return l, err
	}
	if err := os.Chown(path, owner.UID, gid); err != nil {
		l.Close()
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return l, nil
}

// checkReach fails naming the folder or file that a daemon, once it has
// dropped to its user, could not get to; better at start than at the
// first message. It reads mode bits only, not ACLs.
func (o *Owners) checkReach(cfg *config.Config, svcs []string) error {
	type need struct {
		id   Identity
		path string
		read bool // the file itself must be readable
	}
	var needs []need
	for _, svc := range svcs {
		switch svc {
		case "msa":
			needs = append(needs, need{o.MSA, cfg.MTASocket(), false}, need{o.MSA, cfg.UsersFile, true},
				need{o.MSA, cfg.MSA.TokensFile, true})
		case "mta":
			needs = append(needs, need{o.MTA, cfg.QueueDir(), false}, need{o.MTA, cfg.MDASocket(), false},
				need{o.MTA, cfg.UsersFile, true})
		case "mda":
			needs = append(needs, need{o.MDA, MDASpoolDir(cfg), false}, need{o.MDA, cfg.MDA.MailRoot, false},
				need{o.MDA, cfg.UsersFile, true})
		}
	}
	var errs []error
	for _, n := range needs {
		if err := canReach(n.id, n.path, n.read); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// canReach reports whether id can search every folder above path and,
// if read, read path itself when it exists.
func canReach(id Identity, path string, read bool) error {
	if id.UID == 0 {
		return nil
	}
	if read {
		if st, err := os.Stat(path); err == nil && !mayAccess(id, st, 4) {
			return fmt.Errorf("daemon: user %s cannot read %s (%s); make it readable by a group %s is in",
				id.Name, path, describe(st), id.Name)
		}
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		if !mayAccess(id, st, 1) {
			return fmt.Errorf("daemon: user %s cannot reach %s: %s is %s; let it through with `chmod o+x %s`",
				id.Name, path, dir, describe(st), dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// mayAccess applies the owner, group or other bits of st for id, as the
// kernel does: bit is 4 (read), 2 (write) or 1 (execute, search).
func mayAccess(id Identity, st os.FileInfo, bit os.FileMode) bool {
	sys := st.Sys().(*syscall.Stat_t)
	perm := st.Mode().Perm()
	switch {
	case int(sys.Uid) == id.UID:
		return perm&(bit<<6) != 0
	case id.InGroup(int(sys.Gid)):
		return perm&(bit<<3) != 0
	}
	return perm&bit != 0
}

func describe(st os.FileInfo) string {
	sys := st.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("mode %04o, uid %d, gid %d", st.Mode().Perm(), sys.Uid, sys.Gid)
}

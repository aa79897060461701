package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"postline/dkimkey"
	"postline/dnsrecords"
	"postline/durable"
	"postline/users"
)

// systemIDs are the users setup made or found; all -1 when not root,
// when the daemons keep the invoking user and nothing is chowned.
type systemIDs struct {
	root             bool
	gid              int // the MSA's and MTA's user's group: reads the users file and keys
	mailUID, mailGID int
}

// systemUsers makes the daemons' users when they are missing, the MDA's
// in the group of the others', so that it reads the users file too
// (README, Privileges).
func (s *setupRun) systemUsers() error {
	s.ids = systemIDs{gid: -1, mailUID: -1, mailGID: -1}
	if os.Geteuid() != 0 {
		s.say("not root: no system users made; the daemons will run as the user who starts them")
		return nil
	}
	o := s.opts
	u, err := s.systemUser(o.user)
	if err != nil {
		return err
	}
	mail, err := s.systemUser(o.mailUser, "--groups", o.user)
	if err != nil {
		return err
	}
	if err := s.joinGroup(mail, o.user, u.Gid); err != nil {
		return err
	}
	s.ids.root = true
	s.ids.gid, _ = strconv.Atoi(u.Gid)
	s.ids.mailUID, _ = strconv.Atoi(mail.Uid)
	s.ids.mailGID, _ = strconv.Atoi(mail.Gid)
	return nil
}

// systemUser looks name up, or makes it a system user without a home or
// a shell (Debian's way for daemons) with its own group.
func (s *setupRun) systemUser(name string, extra ...string) (*user.User, error) {
	if u, err := user.Lookup(name); err == nil {
		s.say("kept system user %s", name)
		return u, nil
	}
	args := append([]string{"--system", "--no-create-home", "--shell", "/usr/sbin/nologin"}, extra...)
	if out, err := exec.Command("useradd", append(args, name)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("useradd %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	s.say("made system user %s", name)
	return user.Lookup(name)
}

// joinGroup puts u in group (gid) unless it is in it already.
func (s *setupRun) joinGroup(u *user.User, group, gid string) error {
	gids, err := u.GroupIds()
	if err != nil {
		return fmt.Errorf("groups of %s: %w", u.Username, err)
	}
	if slices.Contains(gids, gid) {
		return nil
	}
	if out, err := exec.Command("usermod", "--append", "--groups", group, u.Username).CombinedOutput(); err != nil {
		return fmt.Errorf("usermod --append --groups %s %s: %v: %s", group, u.Username, err, bytes.TrimSpace(out))
	}
	s.say("added %s to group %s", u.Username, group)
	return nil
}

// folders makes the folders with the modes and owners of README's
// Privileges table. An existing folder is left as it is.
func (s *setupRun) folders() error {
	o, ids := s.opts, s.ids
	for _, f := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{o.dir, 0o755, -1, -1},
		{o.dkimDir(), 0o750, -1, ids.gid},
		{o.state, 0o711, -1, -1},
		{o.mail, 0o700, ids.mailUID, ids.mailGID},
	} {
		if err := s.folder(f.path, f.mode, f.uid, f.gid); err != nil {
			return err
		}
	}
	return nil
}

func (s *setupRun) folder(path string, mode os.FileMode, uid, gid int) error {
	if st, err := os.Stat(path); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a folder; move it away or give another path", path)
		}
		s.say("kept %s", path)
		return nil
	}
	if err := os.MkdirAll(path, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil { // MkdirAll's mode is cut by the umask
		return err
	}
	if err := os.Lchown(path, uid, gid); err != nil {
		return err
	}
	s.say("made %s", path)
	return nil
}

// dkimKey keeps the domain's newest key in the dkim folder, or makes one.
func (s *setupRun) dkimKey() error {
	o := s.opts
	path, selector := newestKey(o.dkimDir(), o.domain)
	if path != "" {
		s.say("kept DKIM key %s", path)
	} else {
		selector = dkimkey.DefaultSelector(s.now)
		path = dkimkey.Path(o.dkimDir(), o.domain, selector)
		key, err := dkimkey.Generate(o.dkim)
		if err != nil {
			return err
		}
		if err := dkimkey.Write(path, key, s.ids.gid); err != nil {
			return err
		}
		s.say("made DKIM key %s (%s, selector %s)", path, o.dkim, selector)
	}
	key, err := dkimkey.Read(path)
	if err != nil {
		return fmt.Errorf("DKIM key: %w", err)
	}
	record, err := dkimkey.Record(key)
	s.key = dnsrecords.DKIMKeyInfo{Selector: selector, Record: record, KeyFile: path}
	return err
}

// newestKey finds the domain's key in dir with the greatest selector
// (dated selectors sort by day), if it has one.
func newestKey(dir, domain string) (path, selector string) {
	files, _ := filepath.Glob(dkimkey.Path(dir, domain, "*"))
	for _, f := range files {
		sel := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), domain+"."), ".pem")
		if dkimkey.ValidSelector(sel) && sel > selector {
			path, selector = f, sel
		}
	}
	return path, selector
}

// adminAccount adds the admin to the users file, asking for a password,
// unless the account is there.
func (s *setupRun) adminAccount() error {
	o := s.opts
	list, err := users.List(o.usersPath())
	if err != nil {
		return err
	}
	if slices.Contains(list, o.admin) {
		s.say("kept account %s in %s", o.admin, o.usersPath())
		return nil
	}
	password, err := readPassword(os.Stdin)
	if err != nil {
		return err
	}
	if err := users.Set(o.usersPath(), o.admin, password, bcrypt.DefaultCost); err != nil {
		return err
	}
	if err := os.Lchown(o.usersPath(), -1, s.ids.gid); err != nil {
		return err
	}
	s.say("made account %s in %s", o.admin, o.usersPath())
	return nil
}

// aliasesFor are the addresses every domain should have (RFC 2142:
// postmaster and abuse) and those its DMARC and TLS-RPT records send
// reports to; all go to the admin.
var aliasesFor = []string{"postmaster", "abuse", "dmarc-reports", "tls-reports"}

// aliases adds the missing ones to the aliases file.
func (s *setupRun) aliases() error {
	o := s.opts
	data, err := os.ReadFile(o.aliasesPath())
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(data) == 0 {
		data = []byte("# Aliases: an address, then where its mail goes (commas or spaces between\n# targets), as in Postfix's virtual(5). Read again when it changes.\n")
	}
	have := aliasKeys(data)
	var added []string
	for _, local := range aliasesFor {
		if a := local + "@" + o.domain; !have[a] {
			data = fmt.Appendf(data, "%-30s %s\n", a, o.admin)
			added = append(added, a)
		}
	}
	if len(added) == 0 {
		s.say("kept aliases in %s", o.aliasesPath())
		return nil
	}
	if err := writeAtomically(o.aliasesPath(), data, 0o640, s.ids.gid); err != nil {
		return err
	}
	s.say("added aliases %s to %s", strings.Join(added, ", "), o.aliasesPath())
	return nil
}

// aliasKeys are the addresses an aliases file already defines.
func aliasKeys(data []byte) map[string]bool {
	keys := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			keys[strings.ToLower(f[0])] = true
		}
	}
	return keys
}

// writeAtomically replaces path with data, durably (written, flushed,
// renamed, folder flushed), with mode and, if gid >= 0, that group.
func writeAtomically(path string, data []byte, mode os.FileMode, gid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	os.Remove(tmp) // left by a run that was stopped
	return durable.Write(durable.OS{}, tmp, path, mode, func(w io.Writer) error {
		f := w.(*os.File)
		if err := f.Chmod(mode); err != nil { // the create's mode is cut by the umask
			return err
		}
		if err := f.Chown(-1, gid); err != nil {
			return err
		}
		_, err := f.Write(data)
		return err
	})
}

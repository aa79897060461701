package mda

import (
	"path/filepath"
	"strings"
	"testing"

	"postline/config"
	"postline/users/userstest"
)

// FuzzResolve: whatever address the MTA passes, the Maildir it maps to is
// exactly two safe folder levels below mail_root, never outside it.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"alice@example.test", "postmaster@Example.Test.", "../../etc@example.test",
		"a/b@example.test", ".hidden@example.test", "x@../example.test", "\x00@example.test"} {
		f.Add(s)
	}
	root := "/srv/mail"
	m := &Mailboxes{Config: &config.Config{Domains: []string{"example.test"}, MDA: config.MDA{MailRoot: root}},
		Users: userstest.DB(f, "alice@example.test", "pw")}
	f.Fuzz(func(t *testing.T, addr string) {
		dir, serr := m.Resolve(addr)
		if serr != nil {
			return
		}
		rel, err := filepath.Rel(root, dir)
		parts := strings.Split(rel, string(filepath.Separator))
		if err != nil || len(parts) != 2 || !SafeFolderName(parts[0]) || !SafeFolderName(parts[1]) {
			t.Fatalf("Resolve(%q) = %q: not <domain>/<local> below %s", addr, dir, root)
		}
	})
}

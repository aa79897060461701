package mda

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-smtp"

	"postline/address"
	"postline/config"
	"postline/reply"
	"postline/users"
)

// Mailboxes maps a recipient address to its Maildir:
// <mail_root>/<domain>/<local-part>/, both lower-cased; user+ext (with
// recipient_delimiter) to user's, into its folder .ext if it has one.
type Mailboxes struct {
	Config *config.Config
	Users  *users.DB
}

// Resolve returns the Maildir for address, or the LMTP reply refusing it.
// postmaster@ every local domain always exists (RFC 5321 §4.5.1).
func (m *Mailboxes) Resolve(addr string) (string, *smtp.SMTPError) {
	a, err := address.Parse(addr)
	if err != nil {
		return "", reply.UnknownUser
	}
	local, domain := strings.ToLower(a.Local), a.Domain
	if !m.Config.IsLocalDomain(domain) {
		return "", reply.NotLocal
	}
	if !SafeFolderName(local) || !SafeFolderName(domain) {
		return "", reply.BadMailbox
	}
	if local == "postmaster" || m.Users.Exists(local+"@"+domain) {
		return filepath.Join(m.Config.MDA.MailRoot, domain, local), nil
	}
	base, ext, ok := users.SplitExtension(a.Local+"@"+domain, m.Config.RecipientDelimiter)
	if !ok || !m.Users.Exists(base) {
		return "", reply.UnknownUser
	}
	dir := filepath.Join(m.Config.MDA.MailRoot, domain, strings.ToLower(strings.TrimSuffix(base, "@"+domain)))
	return extensionFolder(dir, ext), nil
}

// extensionFolder is where mail to user+ext goes in the Maildir dir: its
// Maildir++ folder ".ext" when the user made one (the name as written,
// else in lower case), else the inbox. The folder is never made here,
// so nobody can fill a user's folder list from outside.
func extensionFolder(dir, ext string) string {
	for _, name := range []string{ext, strings.ToLower(ext)} {
		if !SafeFolderName(name) {
			continue
		}
		folder := filepath.Join(dir, "."+name)
		if st, err := os.Lstat(folder); err == nil && st.IsDir() {
			return folder
		}
	}
	return dir
}

// SafeFolderName reports whether name can be used as one path element
// under mail_root without escaping it or hiding as a dot file.
func SafeFolderName(name string) bool {
	if name == "" || name[0] == '.' || len(name) > 255 {
		return false
	}
	for _, r := range name {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

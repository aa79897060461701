package main

import (
	"os"
	"path/filepath"
	"strings"

	"postline/plugins/sdk"
	"postline/sieve"
)

// verdict turns a run's actions into the deliver verdict. Keep and
// fileinto become copies; with none, the message is discarded (its
// redirects and replies still go). A reject refuses the copy; the MTA
// then returns the message to its sender with the reason (RFC 5429 §2.1:
// refusing in the protocol is preferred to an MDN).
func (f *filter) verdict(res *sieve.Result, d *sdk.Delivery, vacation *vacationStore) sdk.Verdict {
	v, copies := sdk.Continue(), 0
	for _, a := range res.Actions {
		switch a := a.(type) {
		case sieve.Keep:
			v, copies = v.WithCopy("", a.Flags...), copies+1
		case sieve.FileInto:
			v, copies = v.WithCopy(existingFolder(a, d.Mailbox), a.Flags...), copies+1
		case sieve.Redirect:
			v = v.Redirect(a.Address)
		case sieve.Reject:
			return sdk.Reject(550, "5.7.1", oneLine(a.Reason))
		case sieve.EReject:
			return sdk.Reject(550, "5.7.1", oneLine(a.Reason))
		case sieve.Vacation:
			v = f.reply(v, a, d, vacation)
		}
	}
	if copies == 0 {
		return v.Discarding()
	}
	return v
}

// folderOf maps a Sieve mailbox name to a Maildir++ folder: INBOX is the
// Maildir itself, and hierarchy separators ("/" or Dovecot's "." after
// "INBOX.") become Maildir++'s ".".
func folderOf(mailbox string) string {
	if strings.EqualFold(mailbox, "INBOX") {
		return ""
	}
	for _, prefix := range []string{"INBOX.", "INBOX/", "inbox.", "inbox/"} {
		mailbox = strings.TrimPrefix(mailbox, prefix)
	}
	return strings.ReplaceAll(mailbox, "/", ".")
}

// existingFolder is fileinto's folder; without :create a folder that does
// not exist yet is INBOX instead (RFC 5490 §3.2 leaves a missing mailbox an
// error, whose answer is the keep; Dovecot's default does the same).
func existingFolder(a sieve.FileInto, mailbox string) string {
	folder := folderOf(a.Mailbox)
	if a.Create || folder == "" {
		return folder
	}
	if _, err := os.Stat(filepath.Join(mailbox, "."+folder)); err != nil {
		sdk.Log().Info("fileinto a folder that does not exist, without :create; kept in INBOX", "folder", folder)
		return ""
	}
	return folder
}

// oneLine keeps a reason fit for an SMTP reply line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

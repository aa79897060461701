package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"postline/plugins/sdk"
	"postline/sieve"
)

// vacationStore remembers the replies sent (RFC 5230 §4.2): one small file
// per owner, handle and sender, holding when the period ends.
type vacationStore struct{ dir string }

// memory is the store as one owner's scripts see it.
func (s *vacationStore) memory(owner string) sieve.VacationMemory {
	return ownerMemory{s, strings.ToLower(owner)}
}

type ownerMemory struct {
	s     *vacationStore
	owner string
}

func (m ownerMemory) Seen(handle, sender string) bool {
	b, err := os.ReadFile(m.s.file(m.owner, handle, sender))
	if err != nil {
		return false
	}
	until, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return err == nil && time.Now().Unix() < until
}

func (s *vacationStore) file(owner, handle, sender string) string {
	sum := sha256.Sum256([]byte(owner + "\x00" + handle + "\x00" + strings.ToLower(sender)))
	return filepath.Join(s.dir, "vacation", hex.EncodeToString(sum[:16]))
}

// record notes a reply sent, for seconds.
func (s *vacationStore) record(owner, handle, sender string, seconds int64) error {
	if s.dir == "" {
		return fmt.Errorf("no state folder for the vacation memory")
	}
	path := s.file(strings.ToLower(owner), handle, sender)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(strconv.FormatInt(time.Now().Unix()+seconds, 10)), 0o600)
}

// reply adds the vacation response to v and records it. Without a memory
// to record it in, no reply goes: better none than one per message.
func (f *filter) reply(v sdk.Verdict, a sieve.Vacation, d *sdk.Delivery, store *vacationStore) sdk.Verdict {
	if err := store.record(f.config().owner(d.Recipient), a.Handle, a.To, a.Seconds); err != nil {
		sdk.Log().Warn("vacation reply not sent", "rcpt", d.Recipient, "error", err)
		return v
	}
	return v.Send("", []string{a.To}, replyMessage(a, d, f.host.Hostname, f.config().owner))
}

// replyMessage is the auto-reply (RFC 5230 §5, RFC 3834 §3): from the
// owner, to the sender, Auto-Submitted: auto-replied, In-Reply-To and
// References to the original.
func replyMessage(a sieve.Vacation, d *sdk.Delivery, hostname string, owner func(string) string) []byte {
	var b bytes.Buffer
	to := (&mail.Address{Address: a.To}).String()
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\n", replyFrom(a.From, d.Recipient, owner), to, mime.QEncoding.Encode("utf-8", a.Subject))
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%s@%s>\r\n", time.Now().Format(time.RFC1123Z), randomID(), hostname)
	if id := d.Header.Get("Message-Id"); id != "" {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: %s\r\n", id, id)
	}
	b.WriteString("Auto-Submitted: auto-replied (vacation)\r\nMIME-Version: 1.0\r\n")
	if a.Mime {
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(a.Reason, "\r\n", "\n"), "\n", "\r\n"))
		return b.Bytes()
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(a.Reason, "\r\n", "\n"), "\n", "\r\n"))
	return b.Bytes()
}

// replyFrom is the From of a reply: vacation's :from when it is one
// address of the recipient's own (its user, any extension), else the
// recipient. A script must not sign replies as someone else, nor put
// header lines in the field: the address is parsed and written anew.
func replyFrom(from, rcpt string, owner func(string) string) string {
	if a, err := mail.ParseAddress(from); err == nil && owner(a.Address) == owner(rcpt) {
		return a.String()
	}
	return (&mail.Address{Address: rcpt}).String()
}

func randomID() string {
	var r [12]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

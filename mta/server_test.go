package mta

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/durable"
	"postline/queue"
	"postline/users"
	"postline/users/userstest"
)

// newTestSession returns a session of the MTA's SMTP listener, trusted
// (the MSA's socket) or not (the internet), with one real local user.
func newTestSession(t *testing.T, trusted bool) *session {
	t.Helper()
	db := userstest.DB(t, "alice@example.test", "secret")
	b := &Backend{Config: testConfig(), Users: db, Trusted: trusted, Log: zerolog.Nop()}
	return &session{b: b, log: b.Log}
}

func TestCheckRecipient(t *testing.T) {
	tests := []struct {
		to       string
		trusted  bool
		wantCode int // 0: accepted
		wantEnh  smtp.EnhancedCode
	}{
		{"alice@example.test", false, 0, smtp.EnhancedCode{}},
		{"Alice@EXAMPLE.test", false, 0, smtp.EnhancedCode{}},
		{"bob@example.test", false, 550, smtp.EnhancedCode{5, 1, 1}},
		{"bob@example.test", true, 550, smtp.EnhancedCode{5, 1, 1}}, // trust is no excuse for a typo
		{"postmaster@example.test", false, 0, smtp.EnhancedCode{}},
		{"PostMaster@Example.Test", false, 0, smtp.EnhancedCode{}},
		{"POSTMASTER@example.test", true, 0, smtp.EnhancedCode{}},
		{"someone@example.org", false, 554, smtp.EnhancedCode{5, 7, 1}},
		{"postmaster@example.org", false, 554, smtp.EnhancedCode{5, 7, 1}},
		{"alice@example.test@example.org", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"someone@example.org", true, 0, smtp.EnhancedCode{}},
		{"", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"@example.test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"alice@", true, 501, smtp.EnhancedCode{5, 1, 3}},
		{"alice", true, 501, smtp.EnhancedCode{5, 1, 3}},
		// Relay tricks: each stays local (and unknown) or is refused.
		{"alice%example.org@example.test", false, 550, smtp.EnhancedCode{5, 1, 1}},
		{`"alice@example.org"@example.test`, false, 550, smtp.EnhancedCode{5, 1, 1}},
		{"alice@[192.0.2.1]", false, 554, smtp.EnhancedCode{5, 7, 1}},
		{"alice@example.test.", false, 0, smtp.EnhancedCode{}},
		{"someone@example.org.", false, 554, smtp.EnhancedCode{5, 7, 1}},
		{"someone@exämple.org", false, 554, smtp.EnhancedCode{5, 7, 1}},
	}
	sessions := map[bool]*session{false: newTestSession(t, false), true: newTestSession(t, true)}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/trusted=%v", tt.to, tt.trusted), func(t *testing.T) {
			_, err := sessions[tt.trusted].checkRecipient(tt.to)
			switch {
			case tt.wantCode == 0 && err != nil:
				t.Errorf("refused: %v", err)
			case tt.wantCode != 0 && err == nil:
				t.Errorf("accepted, want %d %v", tt.wantCode, tt.wantEnh)
			case err != nil && (err.Code != tt.wantCode || err.EnhancedCode != tt.wantEnh):
				t.Errorf("got %d %v, want %d %v", err.Code, err.EnhancedCode, tt.wantCode, tt.wantEnh)
			}
		})
	}
}

// Rcpt keeps accepted recipients for Data, and Mail starts afresh.
func TestSessionRcptCollects(t *testing.T) {
	s := newTestSession(t, false)
	if err := s.Mail("x@example.org", nil); err != nil {
		t.Fatal(err)
	}
	s.Rcpt("alice@example.test", nil)
	s.Rcpt("nobody@example.test", nil)
	s.Rcpt("postmaster@example.test", nil)
	if len(s.rcpts) != 2 || s.rcpts[0] != "alice@example.test" || s.rcpts[1] != "postmaster@example.test" {
		t.Errorf("rcpts = %q", s.rcpts)
	}
	s.Mail("y@example.org", nil)
	if s.from != "y@example.org" || len(s.rcpts) != 0 {
		t.Errorf("after a new MAIL: from %q rcpts %q", s.from, s.rcpts)
	}
}

// Only the trusted socket may name the submitter with AUTH=.
func TestSessionAuthParameter(t *testing.T) {
	user := "alice@example.test"
	for _, trusted := range []bool{false, true} {
		s := newTestSession(t, trusted)
		s.Mail("alice@example.test", &smtp.MailOptions{Auth: &user})
		if want := map[bool]string{false: "", true: user}[trusted]; s.authUser != want {
			t.Errorf("trusted=%v: authUser = %q, want %q", trusted, s.authUser, want)
		}
	}
}

func TestStoreError(t *testing.T) {
	sizeErr := &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "too big"}
	tests := []struct {
		err      error
		wantCode int
		wantEnh  smtp.EnhancedCode
	}{
		{fmt.Errorf("queue: store: %w", syscall.ENOSPC), 452, smtp.EnhancedCode{4, 3, 1}},
		{fmt.Errorf("queue: store: %w", syscall.EDQUOT), 452, smtp.EnhancedCode{4, 3, 1}},
		{fmt.Errorf("queue: store: %w", syscall.EROFS), 452, smtp.EnhancedCode{4, 3, 1}},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, 452, smtp.EnhancedCode{4, 3, 1}},
		{fmt.Errorf("queue: store: %w", sizeErr), 552, smtp.EnhancedCode{5, 3, 4}},
		{errors.New("queue: store: input/output error"), 451, smtp.EnhancedCode{4, 3, 0}},
		// A failed flush, and every flush after it (fsyncgate): try again later.
		{&os.PathError{Op: "syncfs", Path: "queue", Err: syscall.EIO}, 451, smtp.EnhancedCode{4, 3, 0}},
		{fmt.Errorf("queue: store: %w", durable.ErrFlushFailed), 451, smtp.EnhancedCode{4, 3, 0}},
	}
	for _, tt := range tests {
		got := storeError(tt.err)
		if got.Code != tt.wantCode || got.EnhancedCode != tt.wantEnh {
			t.Errorf("storeError(%v) = %d %v, want %d %v", tt.err, got.Code, got.EnhancedCode, tt.wantCode, tt.wantEnh)
		}
	}
}

// The queue ID the MSA allocated is kept, on the trusted socket only,
// when it is well formed and not queued yet.
func TestSessionQueueIDParameter(t *testing.T) {
	spool, err := queue.Open(t.TempDir(), durable.OS{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	queued := queue.NewID(now)
	if err := spool.Store(&queue.Envelope{ID: queued}, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	fresh := queue.NewID(now)
	tests := []struct {
		trusted bool
		id      string
		keep    bool
	}{
		{true, fresh, true},
		{false, fresh, false},
		{true, queued, false},
		{true, "../../etc/passwd", false},
		{true, "", false},
	}
	for _, tt := range tests {
		s := newTestSession(t, tt.trusted)
		s.b.Queue, s.b.SpillDir = spool, spool.TempDir()
		s.Mail("alice@example.test", &smtp.MailOptions{Params: map[string]string{queue.IDParam: tt.id}})
		got := s.newID(now)
		if (got == tt.id) != tt.keep || !queue.ValidID(got) {
			t.Errorf("trusted=%v id %q: got %q, keep want %v", tt.trusted, tt.id, got, tt.keep)
		}
	}
}

// On the trusted socket the MSA may ask whether a message was queued:
// yes while it is in the spool and after it left it, no for one never
// queued; a client from the internet cannot ask.
func TestSessionAnswersQueued(t *testing.T) {
	spool, err := queue.Open(t.TempDir(), durable.OS{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	queued, removed, never := queue.NewID(now), queue.NewID(now), queue.NewID(now)
	for _, id := range []string{queued, removed} {
		if err := spool.Store(&queue.Envelope{ID: id}, strings.NewReader("x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	spool.Remove(removed)
	ask := func(trusted bool, id string) error {
		s := newTestSession(t, trusted)
		s.b.Queue, s.b.SpillDir = spool, spool.TempDir()
		return s.Mail("", &smtp.MailOptions{Params: map[string]string{queue.QueuedParam: id}})
	}
	for id, want := range map[string]bool{queued: true, removed: true, never: false, "../x": false} {
		err := ask(true, id)
		var serr *smtp.SMTPError
		if got := err == nil; got != want || (!want && (!errors.As(err, &serr) || serr.Code != 550)) {
			t.Errorf("%s: %v, want queued=%v", id, err, want)
		}
	}
	if s := newTestSession(t, false); s.Mail("", &smtp.MailOptions{Params: map[string]string{queue.QueuedParam: never}}) != nil {
		t.Error("the public listener answered the question (it must ignore the parameter, which go-smtp refuses there)")
	}
}

// Aliases become their targets in the queued envelope, each once; an
// alias forwarding out of the local domains makes the message relayable,
// while a client's own recipients never do.
func TestRecipientsExpandAliases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aliases")
	os.WriteFile(path, []byte("team@example.test alice@example.test, bob@example.test\nfwd@example.test friend@elsewhere.example\n"), 0o600)
	aliases, err := users.OpenAliases(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rcpts []string
		want  []string
		relay bool
	}{
		{[]string{"team@example.test", "alice@example.test"}, []string{"alice@example.test", "bob@example.test"}, false},
		{[]string{"fwd@example.test"}, []string{"friend@elsewhere.example"}, true},
	} {
		s := newTestSession(t, false)
		s.b.Aliases, s.rcpts = aliases, tt.rcpts
		env := &queue.Envelope{}
		s.recipients(env)
		var got []string
		for _, r := range env.Recipients {
			got = append(got, r.Address)
		}
		if !slices.Equal(got, tt.want) || env.Relay != tt.relay {
			t.Errorf("%v: recipients %v relay %v, want %v %v", tt.rcpts, got, env.Relay, tt.want, tt.relay)
		}
	}
}

package mda

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"postline/config"
	"postline/users/userstest"
)

func TestSafeFolderName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"alice", true},
		{"alice.smith", true},
		{"a..b", true},
		{"first+tag", true},
		{"üñí", true},
		{"example.test", true},
		{strings.Repeat("a", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"a/b", false},
		{"/", false},
		{"../etc", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\tb", false},
		{"\x1f", false},
		{"a\x7f", false},
		{strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		if got := SafeFolderName(tt.name); got != tt.want {
			t.Errorf("SafeFolderName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// testMailboxes has the local domains example.test and example.net and
// the one user alice@example.test.
func testMailboxes(t *testing.T, mailRoot string) *Mailboxes {
	t.Helper()
	db := userstest.DB(t, "alice@example.test", "secret")
	cfg := &config.Config{Domains: []string{"example.test", "example.net"}, MDA: config.MDA{MailRoot: mailRoot}}
	return &Mailboxes{Config: cfg, Users: db}
}

func TestResolve(t *testing.T) {
	root := "/srv/mail"
	mb := testMailboxes(t, root)
	tests := []struct {
		address  string
		wantDir  string
		wantCode int // 0 when accepted
		wantEnh  smtp.EnhancedCode
	}{
		{"alice@example.test", root + "/example.test/alice", 0, smtp.EnhancedCode{}},
		{"Alice@Example.TEST", root + "/example.test/alice", 0, smtp.EnhancedCode{}},
		{"ALICE@example.test.", root + "/example.test/alice", 0, smtp.EnhancedCode{}},
		{"postmaster@example.test", root + "/example.test/postmaster", 0, smtp.EnhancedCode{}},
		{"PostMaster@EXAMPLE.NET", root + "/example.net/postmaster", 0, smtp.EnhancedCode{}},
		// RFC 3463: 5.1.1 bad mailbox, 5.1.2 bad system, 5.1.3 bad syntax.
		{"bob@example.test", "", 550, smtp.EnhancedCode{5, 1, 1}},
		{"alice@example.net", "", 550, smtp.EnhancedCode{5, 1, 1}},
		{"alice", "", 550, smtp.EnhancedCode{5, 1, 1}},
		{"alice@example.org", "", 550, smtp.EnhancedCode{5, 1, 2}},
		{"alice@example.test.evil", "", 550, smtp.EnhancedCode{5, 1, 2}},
		{"../alice@example.test", "", 553, smtp.EnhancedCode{5, 1, 3}},
		{"a/b@example.test", "", 553, smtp.EnhancedCode{5, 1, 3}},
		{".alice@example.test", "", 553, smtp.EnhancedCode{5, 1, 3}},
	}
	for _, tt := range tests {
		dir, serr := mb.Resolve(tt.address)
		switch {
		case tt.wantCode == 0 && (serr != nil || dir != tt.wantDir):
			t.Errorf("Resolve(%q) = %q, %v; want %q", tt.address, dir, serr, tt.wantDir)
		case tt.wantCode != 0 && (serr == nil || serr.Code != tt.wantCode || serr.EnhancedCode != tt.wantEnh):
			t.Errorf("Resolve(%q) = %q, %v; want %d %v", tt.address, dir, serr, tt.wantCode, tt.wantEnh)
		}
	}
}

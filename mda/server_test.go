package mda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/durable"
)

func TestDeliveryError(t *testing.T) {
	quota := &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "over quota"}
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantEnh  smtp.EnhancedCode
	}{
		{"ENOSPC", syscall.ENOSPC, 452, smtp.EnhancedCode{4, 3, 1}},
		{"ENOSPC wrapped", fmt.Errorf("maildir x: %w", &os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}), 452, smtp.EnhancedCode{4, 3, 1}},
		{"EDQUOT", syscall.EDQUOT, 452, smtp.EnhancedCode{4, 2, 2}},
		{"EDQUOT wrapped", fmt.Errorf("maildir x: %w", &os.PathError{Op: "write", Path: "f", Err: syscall.EDQUOT}), 452, smtp.EnhancedCode{4, 2, 2}},
		{"EIO", fmt.Errorf("maildir x: %w", syscall.EIO), 451, smtp.EnhancedCode{4, 3, 0}},
		{"other", errors.New("something"), 451, smtp.EnhancedCode{4, 3, 0}},
		{"SMTP reply passed on", fmt.Errorf("x: %w", quota), 552, smtp.EnhancedCode{5, 2, 2}},
	}
	for _, tt := range tests {
		got := deliveryError(tt.err)
		if got.Code != tt.wantCode || got.EnhancedCode != tt.wantEnh {
			t.Errorf("%s: deliveryError = %d %v, want %d %v", tt.name, got.Code, got.EnhancedCode, tt.wantCode, tt.wantEnh)
		}
	}
}

// failingSyncFS is the real mail root whose whole-filesystem flushes
// fail with EIO.
type failingSyncFS struct{ durable.Rooted }

func (failingSyncFS) SyncFS(dir string) error {
	return &os.PathError{Op: "syncfs", Path: dir, Err: syscall.EIO}
}

// A copy that a failed flush ended is deferred (451 4.3.0), is not left
// in new/, and is reported, so that postline-mda restarts; so is every
// copy after it, which the MDA does not flush again.
func TestDeliveryFlushFailure(t *testing.T) {
	root := t.TempDir()
	var reported []error
	m := &Maildir{FS: NewBatchedFS(failingSyncFS{durable.Rooted{Root: root}}, nil), Hostname: "mx.example.test"}
	s := &session{b: &Backend{Maildir: m, Log: zerolog.Nop(), FlushFailed: func(err error) { reported = append(reported, err) }}}
	rc := recipient{"alice@example.test", filepath.Join(root, "example.test", "alice")}
	for i := range 2 {
		err := s.writeCopy(strings.NewReader("Subject: x\n\nbody\n"), 0, rc)
		var serr *smtp.SMTPError
		if !errors.As(err, &serr) || serr.Code != 451 || serr.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
			t.Errorf("copy %d: %v, want 451 4.3.0", i, err)
		}
	}
	if names, _ := os.ReadDir(filepath.Join(rc.dir, "new")); len(names) != 0 {
		t.Errorf("new/ holds %d files after failed flushes", len(names))
	}
	if len(reported) != 2 || !errors.Is(reported[0], syscall.EIO) || !errors.Is(reported[1], durable.ErrFlushFailed) {
		t.Errorf("reported %v, want the failed flush, then the copy after it", reported)
	}
}

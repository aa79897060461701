package mda

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"
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

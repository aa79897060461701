package msa

import (
	"io"
	"net/mail"
	"strings"
	"testing"
)

// A submission that is only body text (no header fields, no empty line)
// still gets Message-ID and Date, and its text must stay body text:
// RFC 5322 §2.1 puts an empty line between the header and the body, so
// without one the first lines of text are read as (broken) header fields
// and MUAs do not show them.
func TestCompleteHeaderBodyOnly(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"plain text", "Hello Bob,\r\nsee you tomorrow.\r\n"},
		// "Date:" after the first text line is body, so it is no Date field.
		{"text with a Date line", "Hi,\r\nDate: tomorrow at noon\r\nBye\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := complete(t, tt.in)
			if !strings.HasSuffix(out, tt.in) {
				t.Errorf("text not passed on: %q", out)
			}
			msg, err := mail.ReadMessage(strings.NewReader(out))
			if err != nil {
				t.Fatalf("output is not a message (%v):\n%s", err, out)
			}
			if msg.Header.Get("Message-ID") == "" {
				t.Error("no Message-ID field")
			}
			if _, err := msg.Header.Date(); err != nil {
				t.Errorf("no valid Date field: %v", err)
			}
			body, _ := io.ReadAll(msg.Body)
			if string(body) != tt.in {
				t.Errorf("body = %q, want %q", body, tt.in)
			}
		})
	}
}

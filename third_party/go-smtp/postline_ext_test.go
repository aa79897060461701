package smtp_test

import (
	"io"
	"strings"
	"testing"
)

// [postline patch] the error limit ends the session with 421 4.7.0, and
// MaxCommands bounds a session's commands.
func TestSessionLimits(t *testing.T) {
	_, s, c, scanner := testServerAuthenticated(t)
	defer s.Close()
	defer c.Close()
	s.MaxErrors = 2
	for i := 0; i < 3; i++ {
		io.WriteString(c, "BOGUS\r\n")
		scanner.Scan()
	}
	scanner.Scan()
	if !strings.HasPrefix(scanner.Text(), "421 4.7.0 ") {
		t.Errorf("after too many errors: %q, want 421 4.7.0", scanner.Text())
	}

	_, s2, c2, scanner2 := testServerAuthenticated(t)
	defer s2.Close()
	defer c2.Close()
	s2.MaxCommands = 5 // EHLO and AUTH were two
	var replies []string
	for i := 0; i < 5; i++ {
		io.WriteString(c2, "NOOP\r\n")
		scanner2.Scan()
		replies = append(replies, scanner2.Text())
	}
	if !strings.HasPrefix(replies[2], "250 ") || !strings.HasPrefix(replies[3], "421 4.7.0 ") {
		t.Errorf("replies to NOOPs: %q, want the 4th to be 421 4.7.0", replies)
	}
}

package mta

import (
	"bufio"
	"strings"
	"testing"
)

func TestSplitHeader(t *testing.T) {
	tests := []struct {
		msg, head, rest string
		synthetic       bool
	}{
		{"Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\n", "", false},
		{"Subject: a\r\n folded\r\n\r\nbody\r\n", "Subject: a\r\n folded\r\n\r\n", "", false},
		{"\r\nbody\r\n", "\r\n", "", false},
		{"no header here\r\n", "\r\n", "no header here\r\n", false},
		{"Subject: a\r\nbody without blank line\r\n", "Subject: a\r\n\r\n", "body without blank line\r\n", false},
		{"Subject: only\r\n", "Subject: only\r\n\r\n", "", true},
		{"", "\r\n", "", true},
	}
	for _, tt := range tests {
		br := bufio.NewReader(strings.NewReader(tt.msg))
		head, rest, synthetic, err := splitHeader(br)
		after, _ := br.ReadString(0)
		if err != nil || string(head) != tt.head || string(rest) != tt.rest || synthetic != tt.synthetic {
			t.Errorf("%q: head %q rest %q synthetic %v err %v", tt.msg, head, rest, synthetic, err)
		}
		if string(head)+string(rest)+after != tt.msg && !tt.synthetic && !strings.HasPrefix(tt.rest, "no header") && !strings.HasPrefix(tt.rest, "body") {
			t.Errorf("%q: bytes lost: %q + %q + %q", tt.msg, head, rest, after)
		}
	}
}

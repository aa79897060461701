package sieve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func mustRun(t testing.TB, src, msg string, env Envelope, opts Options) (*Result, error) {
	t.Helper()
	s, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	in, err := MessageInput([]byte(msg), env)
	if err != nil {
		t.Fatalf("message: %v", err)
	}
	in.Options = opts
	return s.Run(context.Background(), in)
}

const testMsg = "From: alice@example.com\r\nTo: me@example.net\r\nSubject: hello\r\n\r\nbody\r\n"

var testEnv = Envelope{From: "alice@example.com", To: "me@example.net"}

// TestMatchesIsLinear: a pattern that backtracking matchers take
// exponential time on finishes at once.
func TestMatchesIsLinear(t *testing.T) {
	value := strings.Repeat("a", 5000)
	pat := strings.Repeat("*a", 200) + "*b"
	start := time.Now()
	if _, ok := glob("i;octet", value, pat); ok {
		t.Fatal("matched, want no match")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("glob took %v", d)
	}
}

func TestGlobCaptures(t *testing.T) {
	caps, ok := glob("i;ascii-casemap", "a1b2b3c", "A*B*C")
	if !ok || strings.Join(caps, "|") != "a1b2b3c|1|2b3" {
		t.Errorf("got %q %v", caps, ok)
	}
	caps, ok = glob("i;octet", "abcabc", "?*c*")
	if !ok || strings.Join(caps, "|") != "abcabc|a|b|abc" {
		t.Errorf("got %q %v", caps, ok)
	}
}

func TestRedirectLimitConfigurable(t *testing.T) {
	src := "redirect \"a@x.org\"; redirect \"b@x.org\"; redirect \"c@x.org\";"
	res, err := mustRun(t, src, testMsg, testEnv, Options{MaxRedirects: 2})
	var re *RuntimeError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a RuntimeError", err)
	}
	if k, ok := res.Actions[0].(Keep); len(res.Actions) != 1 || !ok || !k.Implicit {
		t.Errorf("actions after failure = %+v, want implicit keep only", res.Actions)
	}
}

func TestStepLimit(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 500; i++ {
		b.WriteString("if header :contains \"subject\" \"x\" { keep; }\n")
	}
	_, err := mustRun(t, b.String(), testMsg, testEnv, Options{MaxSteps: 100})
	if err == nil || !strings.Contains(err.Error(), "instruction limit") {
		t.Fatalf("got %v, want the instruction limit", err)
	}
}

type memory map[string]bool

func (m memory) Seen(handle, sender string) bool { return m[handle+"/"+sender] }

func TestVacationMemory(t *testing.T) {
	s, _ := Parse([]byte("require \"vacation\"; vacation :handle \"h\" \"away\";"))
	in, _ := MessageInput([]byte(testMsg), testEnv)
	in.Vacation = memory{"h/alice@example.com": true}
	res, err := s.Run(context.Background(), in)
	if err != nil || len(res.Actions) != 1 || len(res.Notes) != 1 {
		t.Fatalf("got %+v %v, want only the implicit keep and a note", res, err)
	}
}

func TestUserAddressesForVacation(t *testing.T) {
	s, _ := Parse([]byte("require \"vacation\"; vacation \"away\";"))
	msg := strings.Replace(testMsg, "me@example.net", "Me <other@example.net>", 1)
	in, _ := MessageInput([]byte(msg), testEnv)
	in.UserAddresses = []string{"other@example.net"}
	res, _ := s.Run(context.Background(), in)
	v, ok := res.Actions[0].(Vacation)
	if !ok || v.From != "other@example.net" || v.Subject != "Auto: hello" {
		t.Fatalf("got %+v", res.Actions)
	}
}

func TestSubaddressDelimiter(t *testing.T) {
	src := "require [\"envelope\", \"subaddress\", \"fileinto\"]; if envelope :detail \"to\" \"tag\" { fileinto \"T\"; }"
	res, _ := mustRun(t, src, testMsg, Envelope{From: "a@b.c", To: "me-tag@example.net"}, Options{SubaddressDelimiter: "-"})
	if f, ok := res.Actions[0].(FileInto); !ok || f.Mailbox != "T" {
		t.Fatalf("got %+v", res.Actions)
	}
}

func TestContextCancelled(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 1000; i++ {
		b.WriteString("if true { }\n")
	}
	s, _ := Parse([]byte(b.String()))
	in, _ := MessageInput([]byte(testMsg), testEnv)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Run(ctx, in); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{"keep;", "require [\"fileinto\",\"variables\"]; if header :matches \"s\" \"*\" { fileinto \"${1}\"; }",
		"if anyof(true, not false) { stop; } else { discard; }", "reject text:\n.x\n..\n.\n;", "/* x */ # y\n",
		"if size :over 1G { keep; }", "set :upper \"a\" \"${hex:41}\";"}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse([]byte(src))
		if err != nil {
			return
		}
		in, _ := MessageInput([]byte(testMsg), testEnv)
		in.Options.MaxSteps = 10000
		s.Run(context.Background(), in)
	})
}

func BenchmarkRun50Rules(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("require [\"fileinto\", \"imap4flags\", \"variables\", \"envelope\", \"relational\", \"comparator-i;ascii-numeric\"];\n")
	for i := 0; i < 50; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&sb, "if header :contains \"subject\" \"project-%d\" { fileinto \"Projects/%d\"; stop; }\n", i, i)
		case 1:
			fmt.Fprintf(&sb, "if address :domain :is \"from\" \"list%d.example.org\" { fileinto \"Lists/%d\"; }\n", i, i)
		case 2:
			fmt.Fprintf(&sb, "if header :matches \"list-id\" \"*<team%d.*>\" { fileinto \"Team/${1}\"; }\n", i)
		case 3:
			fmt.Fprintf(&sb, "if allof (envelope :is \"to\" \"me+%d@example.net\", header :value \"gt\" :comparator \"i;ascii-numeric\" \"x-spam-score\" \"%d\") { addflag \"Junk\"; }\n", i, i)
		case 4:
			fmt.Fprintf(&sb, "if exists \"x-tag-%d\" { setflag \"\\\\Flagged\"; }\n", i)
		}
	}
	msg := "From: Alice <alice@example.com>\r\nTo: me@example.net\r\nSubject: weekly report\r\nX-Spam-Score: 3\r\nList-Id: Dev <dev.example.org>\r\n\r\n" +
		strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 85)
	s, err := Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	in, _ := MessageInput([]byte(msg), testEnv)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Run(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

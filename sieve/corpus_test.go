package sieve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The corpus: testdata/corpus/NNN-name.sieve with, optionally,
// NNN-name.env ("from: x", "to: y", "message: file.eml" from messages/,
// "no-interop: why") and NNN-name.eml; NNN-name.expected holds the
// canonical action lines (see canonical), sorted.

var update = flag.Bool("update", false, "write the corpus .expected files from sieve-test")

type corpusCase struct {
	name, script, message string
	from, to              string
	noInterop             string
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	dir := filepath.Join("testdata", "corpus")
	scripts, err := filepath.Glob(filepath.Join(dir, "*.sieve"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no corpus in %s: %v", dir, err)
	}
	var cases []corpusCase
	for _, s := range scripts {
		base := strings.TrimSuffix(s, ".sieve")
		c := corpusCase{name: filepath.Base(base), script: s, message: base + ".eml",
			from: "alice@example.com", to: "me@example.net"}
		if err := c.readEnv(base + ".env"); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		cases = append(cases, c)
	}
	return cases
}

func (c *corpusCase) readEnv(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "from":
			c.from = v
		case "to":
			c.to = v
		case "message":
			c.message = filepath.Join("testdata", "corpus", "messages", v)
		case "no-interop":
			c.noInterop = v
		case "":
		default:
			if ok {
				return fmt.Errorf("unknown env key %q", k)
			}
		}
	}
	return nil
}

func (c corpusCase) expectedPath() string {
	return strings.TrimSuffix(c.script, ".sieve") + ".expected"
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read expected: %v", err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// runOurs runs a corpus case through this package.
func runOurs(c corpusCase) ([]string, error) {
	src, err := os.ReadFile(c.script)
	if err != nil {
		return nil, err
	}
	msg, err := os.ReadFile(c.message)
	if err != nil {
		return nil, err
	}
	s, err := Parse(src)
	if err != nil {
		return []string{"compile-error"}, nil
	}
	in, err := MessageInput(msg, Envelope{From: c.from, To: c.to})
	if err != nil {
		return nil, err
	}
	res, err := s.Run(context.Background(), in)
	lines := canonical(res)
	if err != nil {
		lines = append(lines, "error")
	}
	sort.Strings(lines)
	return lines, nil
}

// canonical renders actions as the lines both implementations are compared
// on: flags lower-cased and sorted, text line ends as LF.
func canonical(res *Result) []string {
	var out []string
	for _, a := range res.Actions {
		out = append(out, canonicalAction(a))
	}
	return out
}

func canonicalAction(a Action) string {
	switch a := a.(type) {
	case Keep:
		s := storeLine(inbox, a.Flags, false, false)
		if a.Implicit {
			return "implicit " + s
		}
		return s
	case FileInto:
		return storeLine(a.Mailbox, a.Flags, a.Create, a.Copy)
	case Redirect:
		return "redirect " + q(a.Address) + opt(a.Copy, " copy")
	case Discard:
		return "discard"
	case Reject:
		return "reject " + q(a.Reason)
	case EReject:
		return "ereject " + q(a.Reason)
	case Vacation:
		return fmt.Sprintf("vacation to %s from %s subject %s seconds %d handle %s reason %s",
			q(a.To), q(a.From), q(a.Subject), a.Seconds, q(a.Handle), q(a.Reason))
	}
	return fmt.Sprintf("unknown %T", a)
}

func storeLine(mailbox string, flags []string, create, copyOnly bool) string {
	s := "store " + q(mailbox)
	if f := canonFlags(flags); f != "" {
		s += " flags " + q(f)
	}
	return s + opt(create, " create") + opt(copyOnly, " copy")
}

func canonFlags(flags []string) string {
	var l []string
	for _, f := range flags {
		l = append(l, strings.ToLower(f))
	}
	sort.Strings(l)
	return strings.Join(l, " ")
}

func q(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strconv.Quote(strings.TrimRight(s, "\n"))
}

func opt(b bool, s string) string {
	if b {
		return s
	}
	return ""
}

func TestCorpusExpected(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 60 {
		t.Errorf("corpus has %d cases, want at least 60", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := runOurs(c)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				return // the expected files come from sieve-test
			}
			want := readLines(t, c.expectedPath())
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("postline:\n  %s\nexpected:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

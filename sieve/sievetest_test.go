package sieve

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// This file runs the corpus through Dovecot Pigeonhole's sieve-test and
// turns its report into the same canonical lines as ours.

func TestCorpusAgainstSieveTest(t *testing.T) {
	bin, err := exec.LookPath("sieve-test")
	if err != nil {
		if os.Getenv("POSTLINE_REQUIRE_INTEROP") == "1" {
			t.Fatal("sieve-test not installed (apt-get install dovecot-sieve) and POSTLINE_REQUIRE_INTEROP=1")
		}
		t.Skip("sieve-test not installed (apt-get install dovecot-sieve)")
	}
	for _, c := range loadCorpus(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.noInterop != "" {
				t.Skip("not compared with sieve-test: " + c.noInterop)
			}
			got, err := runSieveTest(bin, c)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				writeExpected(t, c, got)
				return
			}
			want := readLines(t, c.expectedPath())
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("sieve-test:\n  %s\nexpected:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

func writeExpected(t *testing.T, c corpusCase, lines []string) {
	if err := os.WriteFile(c.expectedPath(), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sieveTestArgs are the options common to every run. As root, sieve-test
// must drop to an unprivileged uid; the redirect limit is set to ours.
func sieveTestArgs(c corpusCase, dir string) []string {
	var args []string
	if os.Geteuid() == 0 {
		args = append(args, "-o", "mail_uid=nobody", "-o", "mail_gid=nogroup")
	}
	return append(args, "-o", "mail_home="+dir, "-o", "plugin/sieve_max_redirects=10",
		"-x", "+vacation-seconds", "-f", c.from, "-a", c.to, "-r", c.to)
}

// runSieveTest runs sieve-test once to list the actions and, when a
// vacation response is among them, once more with -e to learn whether it
// would really be sent (the rules of RFC 5230 §4.5 apply only then).
func runSieveTest(bin string, c corpusCase) ([]string, error) {
	dir, err := os.MkdirTemp("", "sieve-interop-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, err
	}
	src, err := os.ReadFile(c.script)
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "case.sieve")
	if err := os.WriteFile(script, src, 0o644); err != nil {
		return nil, err
	}
	msg, _ := filepath.Abs(c.message)
	out := runBin(bin, append(sieveTestArgs(c, dir), script, msg))
	lines, vac := parseReport(out)
	if vac != nil {
		lines = append(lines, executeVacation(bin, c, dir, script, msg, vac, lines)...)
	}
	sort.Strings(lines)
	return lines, nil
}

func runBin(bin string, args []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out)
}

// vacationReport is what the plain run says of a vacation action.
type vacationReport struct {
	seconds, handle string
	reason          []string
}

// parseReport reads the "Performed actions" / "Implicit keep" report.
func parseReport(out string) ([]string, *vacationReport) {
	if strings.Contains(out, "failed to compile sieve script") {
		return []string{"compile-error"}, nil
	}
	if strings.Contains(out, "final result: failed") {
		return []string{"error", `implicit store "INBOX"`}, nil
	}
	p := &reportParser{}
	for _, l := range strings.Split(out, "\n") {
		p.line(l)
	}
	p.flush()
	return p.lines, p.vac
}

type reportParser struct {
	lines    []string
	implicit bool
	cur      string // the action being read
	mods     map[string]string
	vac      *vacationReport
	inBody   bool
	inHandle bool
}

func (p *reportParser) flush() {
	if p.cur != "" {
		l := p.cur
		if f := p.mods["flags"]; f != "" {
			l += " flags " + q(f)
		}
		for _, m := range []string{"create", "copy"} {
			if _, ok := p.mods[m]; ok {
				l += " " + m
			}
		}
		p.lines = append(p.lines, l)
	}
	p.cur, p.mods = "", map[string]string{}
}

func (p *reportParser) line(l string) {
	switch {
	case p.inBody:
		if l == "END MESSAGE" {
			p.inBody = false
		} else {
			p.vac.reason = append(p.vac.reason, l)
		}
	case l == "START MESSAGE":
		p.inBody = true
	case strings.HasPrefix(l, "Implicit keep:"):
		p.flush()
		p.implicit = true
	case strings.HasPrefix(l, " * "):
		p.flush()
		p.cur = p.action(strings.TrimPrefix(l, " * "))
	case strings.HasPrefix(l, "        + "):
		k, v := reportModifier(strings.TrimPrefix(l, "        + "))
		p.mods[k] = v
	case strings.HasPrefix(l, "    => ") && p.vac != nil:
		k, v, _ := strings.Cut(strings.TrimPrefix(l, "    => "), ":")
		p.vacField(strings.TrimSpace(k), strings.TrimPrefix(v, " "))
	case p.inHandle && l != "":
		p.vac.handle += "\n" + l // a handle made of a multi-line reason
	}
	if l == "" || strings.HasPrefix(l, " * ") {
		p.inHandle = false
	}
}

func (p *reportParser) vacField(k, v string) {
	switch k {
	case "seconds":
		p.vac.seconds = v
	case "handle":
		p.vac.handle, p.inHandle = v, true
	}
}

func (p *reportParser) action(a string) string {
	prefix := ""
	if p.implicit {
		prefix = "implicit "
	}
	switch {
	case strings.HasPrefix(a, "store message in folder: "):
		return prefix + "store " + q(strings.TrimPrefix(a, "store message in folder: "))
	case strings.HasPrefix(a, "redirect message to: "):
		return "redirect " + q(strings.Trim(strings.TrimPrefix(a, "redirect message to: "), "<>"))
	case a == "discard":
		return "discard"
	case strings.HasPrefix(a, "reject message with reason: "):
		return "reject " + q(strings.TrimPrefix(a, "reject message with reason: "))
	case strings.HasPrefix(a, "send vacation message:"):
		p.vac = &vacationReport{}
		return ""
	}
	return "unknown " + q(a)
}

func reportModifier(m string) (string, string) {
	switch {
	case m == "preserve implicit keep":
		return "copy", ""
	case m == "create mailbox if it does not exist":
		return "create", ""
	case strings.HasPrefix(m, "add IMAP flags: "):
		return "flags", canonFlags(strings.Fields(strings.TrimPrefix(m, "add IMAP flags: ")))
	}
	return "unknown " + q(m), ""
}

// executeVacation runs sieve-test -e and returns the vacation line if the
// response is sent. The folders the script files into are made first, so
// that storing cannot fail before the response is considered.
func executeVacation(bin string, c corpusCase, dir, script, msg string, v *vacationReport, lines []string) []string {
	md := filepath.Join(dir, "Maildir")
	for _, l := range lines {
		if name, ok := storeName(l); ok && name != "INBOX" {
			os.MkdirAll(filepath.Join(md, "."+name, "new"), 0o777)
			os.MkdirAll(filepath.Join(md, "."+name, "cur"), 0o777)
			os.MkdirAll(filepath.Join(md, "."+name, "tmp"), 0o777)
		}
	}
	os.MkdirAll(md, 0o777)
	exec.Command("chmod", "-R", "0777", dir).Run()
	args := append(sieveTestArgs(c, dir), "-e", "-l", "maildir:"+md, script, msg)
	out := runBin(bin, args)
	if !strings.Contains(out, "vacation action: sent vacation response") {
		return nil
	}
	h := vacationHeader(out)
	return []string{fmt.Sprintf("vacation to %s from %s subject %s seconds %s handle %s reason %s",
		q(addrOnly(h.Get("To"))), q(addrOnly(h.Get("From"))), q(decodeWords(h.Get("Subject"))),
		v.seconds, q(v.handle), q(strings.Join(v.reason, "\n")))}
}

func storeName(line string) (string, bool) {
	if !strings.HasPrefix(line, "store \"") {
		return "", false
	}
	rest := strings.TrimPrefix(line, "store ")
	end := strings.Index(rest[1:], "\"")
	return rest[1 : end+1], end >= 0
}

// vacationHeader returns the header of the message sent from <>.
func vacationHeader(out string) mail.Header {
	i := strings.Index(out, "sending message from <>:\n")
	if i < 0 {
		return mail.Header{}
	}
	m, err := mail.ReadMessage(bytes.NewReader([]byte(out[i+len("sending message from <>:\n"):])))
	if err != nil {
		return mail.Header{}
	}
	return m.Header
}

func addrOnly(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		return a.Address
	}
	return strings.Trim(s, "<> ")
}

func decodeWords(s string) string {
	d := mime.WordDecoder{}
	if out, err := d.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

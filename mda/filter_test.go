package mda

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/plugins/host"
	"postline/queue"
)

// buildPlugins builds the bundled return-path plugin and the host's echo
// and panicky test plugins into a temporary folder.
func buildPlugins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, pkg := range map[string]string{
		"return-path": "./cmd/postline-plugin-return-path",
		"echo":        "./plugins/host/testdata/echo",
		"panicky":     "./plugins/host/testdata/panicky",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

// deliverWith delivers msg (LF line ends, as spooled) from sender to one
// recipient through a chain of the given plugins, and returns the reply
// and the Maildir's root.
func deliverWith(t *testing.T, bin, sender, msg string, plugins ...string) (*smtp.SMTPError, string) {
	t.Helper()
	return deliverInto(t, bin, "", sender, msg, plugins...)
}

// deliverInto is deliverWith for a message that a filter in the MSA or
// MTA filed into folder.
func deliverInto(t *testing.T, bin, folder, sender, msg string, plugins ...string) (*smtp.SMTPError, string) {
	t.Helper()
	var specs []host.Spec
	for i, p := range plugins {
		specs = append(specs, host.Spec{Name: p, Path: filepath.Join(bin, p), Daemon: "mda", Order: i})
	}
	chain, err := host.Start(context.Background(), specs, host.Options{Daemon: "mda", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	md, root := newMaildir(t, "mx.example.test")
	s := &session{b: &Backend{Maildir: md, Plugins: chain, Log: zerolog.Nop()}, from: sender, queueID: "Q1", folder: folder}
	f, err := os.CreateTemp(t.TempDir(), "msg-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(msg)
	reply, _ := s.deliverOne(f, recipient{"alice@example.test", filepath.Join(root, "example.test", "alice")}).(*smtp.SMTPError)
	return reply, root
}

// delivered returns the one file in root's alice Maildir folder sub ("" for INBOX).
func delivered(t *testing.T, root, sub string) string {
	t.Helper()
	dir := filepath.Join(root, "example.test", "alice", sub, "new")
	names := dirNames(t, dir)
	if len(names) != 1 {
		t.Fatalf("%s holds %v, want one message", dir, names)
	}
	b, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeliverHook(t *testing.T) {
	bin := buildPlugins(t)
	const body = "\nhello\n\nReturn-Path: <in-body@example.test>\n"

	t.Run("return-path replaces existing ones", func(t *testing.T) {
		msg := "Return-Path: <forged@example.test>\nSubject: hi\nreturn-path:\n <folded@example.test>\n" + body
		reply, root := deliverWith(t, bin, "bob@example.test", msg, "return-path")
		if reply == nil || reply.Code != 250 {
			t.Fatalf("reply %v", reply)
		}
		want := "Return-Path: <bob@example.test>\nSubject: hi\n" + body
		if got := delivered(t, root, ""); got != want {
			t.Errorf("delivered:\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("null sender", func(t *testing.T) {
		_, root := deliverWith(t, bin, "", "Subject: bounce\n"+body, "return-path")
		if got := delivered(t, root, ""); !strings.HasPrefix(got, "Return-Path: <>\nSubject: bounce\n\nhello") {
			t.Errorf("delivered %q", got)
		}
	})
	t.Run("header only message", func(t *testing.T) {
		_, root := deliverWith(t, bin, "bob@example.test", "Subject: no body", "return-path")
		if got := delivered(t, root, ""); got != "Return-Path: <bob@example.test>\nSubject: no body\n" {
			t.Errorf("delivered %q", got)
		}
	})
	t.Run("junk folder", func(t *testing.T) {
		reply, root := deliverWith(t, bin, "bob@example.test", "X-Verdict: junk\n"+body, "echo", "return-path")
		if reply == nil || reply.Code != 250 {
			t.Fatalf("reply %v", reply)
		}
		// echo's "X-Echo: <mark>" edit, with no mark configured.
		if got := delivered(t, root, ".Junk"); got != "Return-Path: <bob@example.test>\nX-Echo: \nX-Verdict: junk\n"+body {
			t.Errorf("delivered %q", got)
		}
	})
	for _, tt := range []struct {
		verdict, plugin string
		code            int
		enh             smtp.EnhancedCode
	}{
		{"reject", "echo", 554, smtp.EnhancedCode{5, 7, 1}},
		{"tempfail", "echo", 450, smtp.EnhancedCode{4, 2, 0}},
		{"discard", "echo", 250, smtp.EnhancedCode{2, 0, 0}},
		{"crash", "panicky", 451, smtp.EnhancedCode{4, 7, 0}},
	} {
		t.Run(tt.verdict, func(t *testing.T) {
			reply, root := deliverWith(t, bin, "bob@example.test", "X-Verdict: "+tt.verdict+"\nX-Panic: yes\n"+body, tt.plugin, "return-path")
			if reply == nil || reply.Code != tt.code || reply.EnhancedCode != tt.enh {
				t.Errorf("reply %v, want %d %v", reply, tt.code, tt.enh)
			}
			if _, err := os.Stat(filepath.Join(root, "example.test", "alice", "new")); !os.IsNotExist(err) {
				t.Errorf("a message was written: %v", err)
			}
		})
	}
}

func TestReadHeader(t *testing.T) {
	for _, tt := range []struct{ in, head, rest string }{
		{"A: 1\nB: 2\n\nbody\n", "A: 1\nB: 2\n\n", "body\n"},
		{"\nbody only\n", "\n", "body only\n"},
		{"A: 1\n", "A: 1\n\n", ""},
		{"A: 1", "A: 1\n\n", ""},
		{"", "\n", ""},
	} {
		head, rest, _, err := readHeader(strings.NewReader(tt.in))
		if err != nil || string(head) != tt.head || string(rest) != tt.rest {
			t.Errorf("readHeader(%q) = %q, %q, %v; want %q, %q", tt.in, head, rest, err, tt.head, tt.rest)
		}
	}
	long := strings.Repeat("X: "+strings.Repeat("y", 1000)+"\n", maxHeaderBlock/1000+1)
	head, rest, synthetic, _ := readHeader(strings.NewReader(long + "\nbody"))
	if string(head) != "\n" || !synthetic || len(rest) < maxHeaderBlock || !strings.HasPrefix(long, string(rest)) {
		t.Errorf("over-long header: head %q, synthetic %v, rest %d bytes", head, synthetic, len(rest))
	}
}

// A folder chosen before the MDA (queue.FolderParam) is where the copy
// goes, with or without deliver plugins, unless one of them chooses another.
func TestFolderFromMail(t *testing.T) {
	bin := buildPlugins(t)
	for _, plugins := range [][]string{nil, {"return-path"}} {
		reply, root := deliverInto(t, bin, "Junk", "bob@example.test", "Subject: s\n\nb\n", plugins...)
		if reply == nil || reply.Code != 250 || !strings.HasSuffix(delivered(t, root, ".Junk"), "Subject: s\n\nb\n") {
			t.Errorf("plugins %v: reply %v", plugins, reply)
		}
	}
	_, root := deliverInto(t, bin, "Junk", "bob@example.test", "X-Verdict: continue\n\nb\n", "echo")
	delivered(t, root, ".Junk")
	_, root = deliverInto(t, bin, "Lists", "bob@example.test", "X-Verdict: junk\n\nb\n", "echo")
	delivered(t, root, ".Junk")

	s := &session{b: &Backend{Log: zerolog.Nop()}}
	for _, bad := range []string{"../x", ".hidden", "a/b", "a..b"} {
		err := s.Mail("bob@example.test", &smtp.MailOptions{Params: map[string]string{queue.FolderParam: bad}})
		if serr, ok := err.(*smtp.SMTPError); !ok || serr.Code != 501 {
			t.Errorf("folder %q: %v, want 501", bad, err)
		}
	}
}

// A deliver plugin's copies are each written, with their flags as the
// Maildir info of a file in cur/.
func TestDeliverCopies(t *testing.T) {
	bin := buildPlugins(t)
	reply, root := deliverWith(t, bin, "bob@example.test", "X-Verdict: copies\n\nb\n", "echo")
	if reply == nil || reply.Code != 250 {
		t.Fatalf("reply %v", reply)
	}
	alice := filepath.Join(root, "example.test", "alice")
	cur, _ := filepath.Glob(filepath.Join(alice, "cur", "*:2,FS"))
	archived, _ := filepath.Glob(filepath.Join(alice, ".Archive", "new", "*"))
	inbox, _ := filepath.Glob(filepath.Join(alice, "new", "*"))
	if len(cur) != 1 || len(archived) != 1 || len(inbox) != 0 {
		t.Fatalf("INBOX cur %q, Archive %q, INBOX new %q", cur, archived, inbox)
	}
	for _, f := range append(cur, archived...) {
		if b, _ := os.ReadFile(f); !strings.HasSuffix(string(b), "X-Verdict: copies\n\nb\n") {
			t.Errorf("%s: %q", f, b)
		}
	}
}

func TestFlags(t *testing.T) {
	if got := Flags([]string{`\Seen`, `\flagged`, `\Draft`, `\Seen`, "$label1", `\Recent`}); got != "DFS" {
		t.Errorf("Flags = %q, want DFS", got)
	}
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/rs/zerolog"

	"postline/plugins/host"
)

// pluginBin is bin/postline-plugin-antispam, built once by TestMain for
// the tests that run it the way the MTA does, through plugins/host.
var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postline-antispam-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pluginBin = filepath.Join(dir, "postline-plugin-antispam")
	if out, err := exec.Command("go", "build", "-o", pluginBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the plugin: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	host.Cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startChain runs the built plugin in an MTA chain with cfg.
func startChain(t *testing.T, cfg map[string]any) (*host.Chain, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	log := zerolog.New(buf).Level(zerolog.DebugLevel)
	spec := host.Spec{Name: "antispam", Path: pluginBin, Daemon: "mta", Timeout: time.Minute, Config: cfg}
	c, err := host.Start(context.Background(), []host.Spec{spec}, host.Options{Daemon: "mta", Hostname: hostname, Log: log})
	if err != nil {
		t.Fatalf("host.Start: %v\n%s", err, buf)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("daemon log:\n%s", buf)
		}
	})
	return c, buf
}

var hostConn = host.ConnInfo{ClientIP: "127.0.0.2", ClientPort: 40000, Helo: "client.example.test", Protocol: "ESMTP", QueueID: "HOSTQUEUEID00001"}

// TestThroughHost runs the real binary as the MTA would: config through
// JSON, body in 64 KiB chunks, verdicts and edits checked by the host.
func TestThroughHost(t *testing.T) {
	w := newWorld(t)
	c, log := startChain(t, w.config(map[string]any{
		"dnsbl_zones": []any{"bl.test"},
		"rules": []any{
			map[string]any{"name": "JUNKY", "header": "Subject", "pattern": "junk", "score": int64(2)},
			map[string]any{"name": "AWFUL", "body": "(?i)awful", "score": 12.5},
		},
	}))
	ctx := context.Background()
	tx := host.TxInfo{Conn: hostConn, Sender: "a@example.test", Recipients: []string{"rcpt@mx.example.test"}}

	// Signed, from a listed IP, carrying fields a forger would add.
	signed := w.sign(t, plainHeader, plainBody)
	forged := "Authentication-Results: mx.example.test; dkim=pass header.d=bank.example\r\nX-Spam-Status: No, score=-100\r\n" + signed
	res := c.Data(ctx, tx, []byte(forged), strings.NewReader(plainBody))
	ar := "mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=pass header.d=example.test header.i=@example.test; dmarc=pass header.from=example.test"
	if res.Action != host.Continue || res.Folder != "" || len(res.Edits) != 6 {
		t.Fatalf("result %+v", res)
	}
	edited, err := host.ApplyEdits([]byte(forged), res.Edits)
	if err != nil {
		t.Fatal(err)
	}
	top := "Authentication-Results: " + ar + "\r\nX-Spam-Score: 4.0\r\nX-Spam-Status: No, score=4.0 required=5.0 tests=DNSBL_bl.test\r\n"
	if unfolded := strings.ReplaceAll(string(edited), "\r\n ", " "); !strings.HasPrefix(unfolded, top) || strings.Count(string(edited), "Authentication-Results") != 1 ||
		strings.Count(string(edited), "X-Spam-Status") != 1 || !strings.HasSuffix(string(edited), signed) {
		t.Errorf("edited header:\n%s\nwant it to start with\n%s", edited, top)
	}
	// The plugin's own lines come over its stderr, after its verdict.
	scored := func(l string) bool {
		return strings.Contains(l, `"queue_id":"HOSTQUEUEID00001"`) && strings.Contains(l, `"tests":"DNSBL_bl.test"`)
	}
	for deadline := time.Now().Add(5 * time.Second); !scored(log.String()) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if l := log.String(); !scored(l) {
		t.Errorf("no scored line with queue_id and tests in the log:\n%s", l)
	}

	// 4.0 from the DNSBL and 2 from a rule: into Junk.
	junk := header("From: a@example.test", "Subject: junk")
	if res := c.Data(ctx, tx, []byte(junk), strings.NewReader(plainBody)); res.Action != host.Continue || res.Folder != "Junk" {
		t.Errorf("junk: %+v", res)
	}

	// A body rule pushes it over reject_score.
	res = c.Data(ctx, tx, []byte(plainHeader), strings.NewReader("This is AWFUL.\r\n"))
	want := host.Reply{Code: 550, Enhanced: "5.7.1", Text: "message refused as spam (score 16.5)"}
	if res.Action != host.Reject || res.Reply != want || res.By != "antispam" || len(res.Edits) != 0 {
		t.Errorf("reject: %+v, want %v", res, want)
	}

	// The same message, submitted by a user, is not the plugin's business.
	auth := tx
	auth.Conn.AuthUser = "alice"
	if res := c.Data(ctx, auth, []byte(plainHeader), strings.NewReader("This is AWFUL.\r\n")); res.Action != host.Continue || len(res.Edits) != 0 {
		t.Errorf("authenticated: %+v", res)
	}
}

// TestHostRefusesBadConfig: a config mistake stops the daemon's start
// with the key and the fix.
func TestHostRefusesBadConfig(t *testing.T) {
	spec := host.Spec{Name: "antispam", Path: pluginBin, Daemon: "mta",
		Config: map[string]any{"rules": []any{map[string]any{"name": "R", "body": "(", "score": 1}}}}
	_, err := host.Start(context.Background(), []host.Spec{spec}, host.Options{Daemon: "mta", Hostname: hostname, Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "rules[0].body: bad regexp") {
		t.Fatalf("host.Start: %v", err)
	}
}

// pattern is an endless body of short lines that costs no memory to
// hold; the same bytes however it is read.
type pattern struct{ off int }

func (p *pattern) Read(b []byte) (int, error) {
	const line = "0123456789abcdef\r\n"
	for i := range b {
		b[i] = line[(p.off+i)%len(line)]
	}
	p.off += len(b)
	return len(b), nil
}

// TestLargeBody streams a DKIM-signed 50 MiB body through the built
// plugin: it must verify the signature, match body rules on the first
// MiB, skip spamd and stay small.
func TestLargeBody(t *testing.T) {
	const size = 50 << 20
	w := newWorld(t)
	c, _ := startChain(t, w.config(map[string]any{
		"spamd": freeAddr(t), // not asked: the message is over spamd_max_size
		"rules": []any{map[string]any{"name": "PATTERN", "body": "^0123456789abcdef$", "score": 0.5}},
	}))
	h := plainHeader
	signer, err := dkim.NewSigner(&dkim.SignOptions{Domain: "example.test", Selector: "sel", Signer: w.key, HeaderKeys: []string{"From", "Subject"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(signer, io.MultiReader(strings.NewReader(h), io.LimitReader(&pattern{}, size))); err != nil {
		t.Fatal(err)
	}
	if err := signer.Close(); err != nil {
		t.Fatal(err)
	}
	h = signer.Signature() + h
	pid := strconv.Itoa(pluginPID(t, c))
	before, err := vmHWM(pid)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	tx := host.TxInfo{Conn: hostConn, Sender: "a@example.test", Size: int64(len(h)) + size}
	tx.Conn.ClientIP = "127.0.0.1"
	res := c.Data(context.Background(), tx, []byte(h), io.LimitReader(&pattern{}, size))
	took := time.Since(start)

	status := "No, score=0.5 required=5.0 tests=PATTERN"
	if res.Action != host.Continue || len(res.Edits) != 6 || res.Edits[3].Value != status ||
		!strings.Contains(res.Edits[5].Value, "dkim=pass header.d=example.test") {
		t.Fatalf("result %+v", res)
	}
	peak, err := vmHWM(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("50 MiB body in %s (%.0f MiB/s); plugin peak RSS (VmHWM) %d KiB after start, %d KiB after the message",
		took.Round(time.Millisecond), float64(size)/(1<<20)/took.Seconds(), before, peak)
	if peak > 48<<10 { // bounded memory, not timing: the body alone is 50 MiB
		t.Errorf("plugin peak RSS %d KiB: the body seems to be held", peak)
	}
}

func pluginPID(t *testing.T, c *host.Chain) int {
	t.Helper()
	for _, s := range c.Status() {
		if s.Name == "antispam" && s.PID != 0 {
			return s.PID
		}
	}
	t.Fatalf("no running antispam plugin in %+v", c.Status())
	return 0
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(pid string) (int, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %s", pid)
}

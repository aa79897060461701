package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"postline/plugins/sdk"
)

// gtube is SpamAssassin's test string: any spamd scores it about 1000.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

var spamdHeader = header("From: A <a@example.test>", "To: rcpt@mx.example.test", "Subject: lunch",
	"Date: Sun, 22 Nov 2026 08:45:30 +0000", "Message-ID: <lunch.1@example.test>")

// TestSpamd asks a real SpamAssassin spamd, started for the test.
func TestSpamd(t *testing.T) {
	addr := startSpamd(t)
	w := newWorld(t)
	f := w.filter(t, map[string]any{"spamd": addr})
	c := f.config()
	ctx := context.Background()

	t.Run("GTUBE is refused", func(t *testing.T) {
		body := "Hello,\r\n" + gtube + "\r\n"
		r, err := check(ctx, c, message(fromLocalhost, spamdHeader, strings.NewReader(body)), sdk.Log())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(r.tests, "SPAMD") || r.total() < 1000 {
			t.Fatalf("score %.1f, tests %v: spamd's GTUBE score is missing", r.total(), r.tests)
		}
		t.Logf("GTUBE scored %.1f", r.total())
		got := run(t, f, message(fromLocalhost, spamdHeader, strings.NewReader(body)))
		checkVerdict(t, got, sdk.Reject(550, "5.7.1", fmt.Sprintf("message refused as spam (score %.1f)", r.total())))
	})

	t.Run("a plain message is asked and kept", func(t *testing.T) {
		body := "Shall we have lunch at noon on Tuesday?\r\n\r\nA.\r\n"
		r, err := check(ctx, c, message(fromLocalhost, spamdHeader, strings.NewReader(body)), sdk.Log())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("spamd scored a plain message %.1f", r.total())
		if !slices.Contains(r.tests, "SPAMD") || r.total() >= c.junkScore {
			t.Errorf("score %.1f, tests %v; want SPAMD below %.1f", r.total(), r.tests, c.junkScore)
		}
	})

	t.Run("a message over spamd_max_size is not sent", func(t *testing.T) {
		small := w.filter(t, map[string]any{"spamd": addr, "spamd_max_size": int64(1000)})
		body := gtube + "\r\n" + strings.Repeat("filler line\r\n", 100)
		for _, size := range []int64{0, int64(len(spamdHeader) + len(body))} { // unknown, then known
			m := message(fromLocalhost, spamdHeader, strings.NewReader(body))
			m.Size = size
			checkVerdict(t, run(t, small, m), delivered("", cleanAR, "0.0", "No, score=0.0 required=5.0 tests=none"))
		}
	})
}

// TestSpamdDown: a spamd that refuses connections or never answers adds
// nothing and fails nothing.
func TestSpamdDown(t *testing.T) {
	w := newWorld(t)
	closed := freeAddr(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accepts, reads, never answers
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			go bufio.NewReader(c).WriteTo(nopWriter{})
		}
	}()
	for name, addr := range map[string]string{"connection refused": closed, "no answer": l.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			f := w.filter(t, map[string]any{"spamd": addr, "spamd_timeout": "300ms"})
			start := time.Now()
			got := run(t, f, message(fromLocalhost, spamdHeader, strings.NewReader(gtube+"\r\n")))
			checkVerdict(t, got, delivered("", cleanAR, "0.0", "No, score=0.0 required=5.0 tests=none"))
			if took := time.Since(start); took > 5*time.Second { // does not hang
				t.Errorf("took %s", took)
			}
		})
	}
}

func TestReadSpamd(t *testing.T) {
	tests := []struct {
		answer string
		score  float64
		err    string
	}{
		{"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\nSpam: True ; 1004.2 / 5.0\r\n\r\nGTUBE", 1004.2, ""},
		{"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -0.3 / 5.0\r\n\r\n", -0.3, ""},
		{"SPAMD/1.0 76 Bad header line: (EOF)\r\n", 0, `spamd: answered "SPAMD/1.0 76 Bad header line: (EOF)"`},
		{"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", 0, "spamd: no Spam header in the answer"},
		{"SPAMD/1.1 0 EX_OK\r\nSpam: True ; lots\r\n\r\n", 0, `spamd: unreadable Spam header "True ; lots"`},
		{"SPAMD/1.1 0 EX_OK\r\nSpam: Tr", 0, "spamd: read headers: EOF"},
	}
	for _, tt := range tests {
		a, err := readSpamd(bufio.NewReader(strings.NewReader(tt.answer)))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: err %v, want %s", tt.answer, err, tt.err)
			}
			continue
		}
		if err != nil || a.score != tt.score {
			t.Errorf("%q: %+v, %v; want score %v", tt.answer, a, err, tt.score)
		}
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// freeAddr is a 127.0.0.1 TCP address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startSpamd starts Debian's spamd (packages spamd and spamassassin) on a
// free port with the rules it ships, no network tests (-L) and no user
// config, and stops it when t ends. Without spamd the test is skipped,
// unless POSTLINE_REQUIRE_INTEROP=1 promises it is installed.
func startSpamd(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("spamd")
	if err != nil {
		path, err = exec.LookPath("/usr/sbin/spamd")
	}
	if err != nil {
		msg := "spamd not installed; `apt-get install spamd spamassassin` to run this test"
		if os.Getenv("POSTLINE_REQUIRE_INTEROP") == "1" {
			t.Fatal("POSTLINE_REQUIRE_INTEROP=1: " + msg)
		}
		t.Skip(msg)
	}
	addr := freeAddr(t)
	args := []string{"--listen=" + addr, "--allowed-ips=127.0.0.1", "--nouser-config", "--local",
		"--max-children=1", "--syslog=stderr", "--pidfile=" + filepath.Join(t.TempDir(), "spamd.pid")}
	if os.Geteuid() == 0 {
		args = append(args, "--username=nobody") // spamd refuses to run children as root
	}
	cmd := exec.Command(path, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start spamd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("spamd's log:\n%s", out.String())
		}
	})
	for !pingSpamd(addr) {
		if time.Since(start) > 60*time.Second || cmd.ProcessState != nil {
			t.Fatalf("spamd not answering PING after %s:\n%s", time.Since(start), out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("spamd answered PING %s after its start", time.Since(start).Round(10*time.Millisecond))
	return addr
}

func pingSpamd(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("PING SPAMC/1.5\r\n\r\n")); err != nil {
		return false
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.Contains(line, "PONG")
}

// syncBuffer collects output written from other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

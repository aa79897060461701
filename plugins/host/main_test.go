package host

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// binDir holds the real plugin binaries the tests start: plugins/example
// and every folder of testdata/, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postline-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binDir = dir
	args := []string{"build", "-o", dir + "/", "./plugins/example"}
	entries, _ := os.ReadDir("testdata")
	for _, e := range entries {
		if e.IsDir() {
			// "./plugins/host/testdata/..." matches nothing: the go tool
			// skips testdata folders in patterns, so name each one.
			args = append(args, "./plugins/host/testdata/"+e.Name())
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building test plugins: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	Cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// syncBuffer collects the daemon's log lines; go-plugin writes from its
// own goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// line returns the first log line containing every one of parts, or "".
func (s *syncBuffer) line(parts ...string) string {
	for _, l := range strings.Split(s.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

// waitLine waits up to 5 s for a log line containing every one of parts:
// plugin lines travel through the plugin's stderr pipe, asynchronously.
func (s *syncBuffer) waitLine(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if l := s.line(parts...); l != "" {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q in:\n%s", parts, s.String())
	return ""
}

func testLogger(daemon string) (zerolog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return zerolog.New(buf).With().Timestamp().Str("svc", daemon).Logger().Level(zerolog.DebugLevel), buf
}

// startChain starts specs for daemon and closes the chain when t ends,
// printing the daemon's log if t failed.
func startChain(t testing.TB, daemon string, specs ...Spec) (*Chain, *syncBuffer) {
	t.Helper()
	log, buf := testLogger(daemon)
	c, err := Start(context.Background(), specs, Options{Daemon: daemon, Hostname: "mx.example.test", Log: log})
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, buf)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("daemon log:\n%s", buf)
		}
	})
	return c, buf
}

func spec(name, binary, daemon string, cfg map[string]any) Spec {
	return Spec{Name: name, Path: bin(binary), Daemon: daemon, Config: cfg}
}

// header is a header block with folded fields, odd spacing and letter
// case, and a field that carries the verdict echo should give at Data.
func header(verdict string, extra ...string) []byte {
	h := "Received: from client.example (client.example [192.0.2.1])\r\n" +
		"\tby mx.example.test with ESMTP id 06K03AGGXD8H8HT5; Mon, 1 Jan 2024 00:00:00 +0000\r\n" +
		"From: A <a@example.test>\r\n" +
		"subject:  hello \r\n" +
		"X-Verdict: " + verdict + "\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return []byte(h + "\r\n")
}

func pidOf(t testing.TB, c *Chain, name string) int {
	t.Helper()
	for _, s := range c.Status() {
		if s.Name == name {
			return s.PID
		}
	}
	t.Fatalf("no plugin %q in %+v", name, c.Status())
	return 0
}

// waitRestarted waits until plugin name runs with a PID other than old.
func waitRestarted(t testing.TB, c *Chain, name string, old int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pid := pidOf(t, c, name); pid != 0 && pid != old {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("plugin %s not restarted: %+v", name, c.Status())
	return 0
}

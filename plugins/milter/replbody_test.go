package main

// End to end through plugins/host: the real plugin binary (built by
// TestMain) started as the MTA starts it, talking to a scripted milter.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"github.com/rs/zerolog"

	"postline/plugins/host"
)

var hostConn = host.ConnInfo{ClientIP: "192.0.2.1", ClientPort: 40401, ReverseDNS: "client.example", Helo: "client.example",
	Protocol: "ESMTP", QueueID: "4XyZ1234"}

// startPlugin runs the plugin binary for the MTA with cfg.
func startPlugin(t *testing.T, cfg map[string]any, onError string) *host.Chain {
	t.Helper()
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	c, err := host.Start(context.Background(), []host.Spec{{Name: "milter", Path: pluginBin, Daemon: "mta",
		Timeout: 30 * time.Second, OnError: onError, Config: cfg}}, host.Options{Daemon: "mta", Hostname: "mx.example.test", Log: log})
	if err != nil {
		t.Fatalf("host.Start: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	return c
}

// syncBuffer collects the daemon's log lines, written from go-plugin's
// goroutines.
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

// bodyPattern is n bytes of numbered CRLF lines.
func bodyPattern(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "replaced line %08d: the quick brown fox jumps over the lazy dog\r\n", i)
	}
	return b.Bytes()[:n]
}

// A milter's new body of a few MB reaches the message that comes out,
// with the milter's header edits; the milter got the body as received.
func TestReplaceBodyThroughHost(t *testing.T) {
	newBody := bodyPattern(4 << 20)
	tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		if err := m.ChangeHeader(1, "Subject", "[scanned] big"); err != nil {
			return nil, err
		}
		if err := m.AddHeader("X-Replaced", "yes"); err != nil {
			return nil, err
		}
		return milter.RespAccept, m.ReplaceBody(bytes.NewReader(newBody))
	}})
	c := startPlugin(t, cfgFor(specs(tm)), "")
	oldBody := strings.Repeat("original body line\r\n", 100000) // 2 MB
	msg := "From: A <a@example.test>\r\nSubject: big\r\n\r\n" + oldBody
	tx := host.TxInfo{Conn: hostConn, Sender: "a@example.test", Recipients: []string{"b@example.test"}}
	f, err := c.FilterMessage(context.Background(), tx, strings.NewReader(msg), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f.Message)
	if err != nil {
		t.Fatal(err)
	}
	wantHead := "From: A <a@example.test>\r\nSubject: [scanned] big\r\nX-Replaced: yes\r\n\r\n"
	if !bytes.HasPrefix(got, []byte(wantHead)) {
		t.Errorf("header: %q, want %q", got[:min(len(got), 200)], wantHead)
	} else if !bytes.Equal(got[len(wantHead):], newBody) {
		t.Errorf("body: %d bytes, not the milter's %d", len(got)-len(wantHead), len(newBody))
	}
	if f.Result.Action != host.Continue || f.Result.BodyBy != "milter" {
		t.Errorf("result %+v", f.Result)
	}
	if n := tm.bodySize.Load(); n != int64(len(oldBody)) {
		t.Errorf("milter got %d body bytes, want %d", n, len(oldBody))
	}
	for _, s := range c.Status() {
		if hwm, err := vmHWM(s.PID); err == nil {
			t.Logf("plugin peak RSS %d KiB for a %d kB body each way", hwm, len(newBody)>>10)
		}
	}
}

// vmHWM is a process's peak resident set in KiB (Linux).
func vmHWM(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, fmt.Errorf("no VmHWM")
}

// Through the host, the whole SMTP transaction: the hooks' verdicts,
// a refused recipient, and header edits applied to the message.
func TestTransactionThroughHost(t *testing.T) {
	tm := startMilter(t, script{
		rcpt: func(to string, _ milter.Modifier) (*milter.Response, error) {
			if strings.HasPrefix(to, "spamtrap@") {
				return withCode(550, "5.1.1 No such user"), nil
			}
			return nil, nil
		},
		eom: func(m milter.Modifier) (*milter.Response, error) {
			return milter.RespAccept, m.InsertHeader(0, "Authentication-Results", "mx.example.test;\n\tspf=pass smtp.mailfrom=example.test")
		},
	})
	c := startPlugin(t, cfgFor(specs(tm)), "")
	ctx := context.Background()
	conn := hostConn
	conn.ClientPort = 40402
	if r := c.Connect(ctx, conn); r.Action != host.Continue {
		t.Errorf("connect: %+v", r)
	}
	if r := c.Mail(ctx, host.MailInfo{Conn: conn, Sender: "a@example.test"}); r.Action != host.Continue {
		t.Errorf("mail: %+v", r)
	}
	r := c.Rcpt(ctx, host.RcptInfo{Conn: conn, Sender: "a@example.test", Recipient: "spamtrap@example.test"})
	if r.Action != host.Reject || r.Reply != (host.Reply{Code: 550, Enhanced: "5.1.1", Text: "No such user"}) {
		t.Errorf("rcpt spamtrap: %+v", r)
	}
	if r := c.Rcpt(ctx, host.RcptInfo{Conn: conn, Sender: "a@example.test", Recipient: "b@example.test"}); r.Action != host.Continue {
		t.Errorf("rcpt: %+v", r)
	}
	tx := host.TxInfo{Conn: conn, Sender: "a@example.test", Recipients: []string{"b@example.test"}}
	f, err := c.FilterMessage(ctx, tx, strings.NewReader(testMsg), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f.Message)
	want := "Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=example.test\r\n" + testMsg
	if string(got) != want {
		t.Errorf("message:\n%q\nwant\n%q", got, want)
	}
	if n := tm.sessions.Load(); n != 1 {
		t.Errorf("%d milter connections, want 1", n)
	}
}

// A milter that is down fails the call, which the host answers per
// on_error: 451 4.7.0 by default, or no objection with "continue".
func TestMilterDownThroughHost(t *testing.T) {
	dead := deadEndpoint(t)
	for _, tc := range []struct {
		onError string
		want    host.Action
	}{{"", host.Tempfail}, {"continue", host.Continue}} {
		t.Run("on_error="+tc.onError, func(t *testing.T) {
			c := startPlugin(t, cfgFor([]string{dead}), tc.onError)
			r := c.Mail(context.Background(), host.MailInfo{Conn: hostConn, Sender: "a@example.test"})
			if r.Action != tc.want {
				t.Errorf("mail: %+v, want action %v", r, tc.want)
			}
			if tc.want == host.Tempfail && (r.Reply.Code != 451 || r.Reply.Enhanced != "4.7.0") {
				t.Errorf("reply %+v, want 451 4.7.0", r.Reply)
			}
		})
	}
}

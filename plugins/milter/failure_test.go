package main

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"postline/plugins/sdk"
)

// readPacket reads one milter packet: its code and data.
func readPacket(c net.Conn) (byte, []byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return 0, nil, err
	}
	pkt := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := io.ReadFull(c, pkt); err != nil {
		return 0, nil, err
	}
	if len(pkt) == 0 {
		return 0, nil, errors.New("empty packet")
	}
	return pkt[0], pkt[1:], nil
}

func writePacket(c net.Conn, code byte, data []byte) error {
	pkt := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	_, err := c.Write(append(append(pkt, code), data...))
	return err
}

// negotiate answers the MTA's SMFIC_OPTNEG with version 6, no actions and
// no protocol options, as a real milter would.
func negotiate(c net.Conn) error {
	if code, _, err := readPacket(c); err != nil || code != 'O' {
		return errors.New("no OPTNEG")
	}
	return writePacket(c, 'O', binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 6), 0), 0))
}

const httpGarbage = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<html></html>"

// hooks runs each hook once on a new connection of h and returns their
// errors, by hook.
func hooks(h *harness, port int) map[string]error {
	c := client(port)
	errs := map[string]error{}
	_, errs["connect"] = h.connect(c)
	_, errs["mail"] = h.mail(c, "a@example.test")
	_, errs["rcpt"] = h.rcpt(c, "a@example.test", "b@example.test")
	_, errs["data"] = h.data(c, "a@example.test", []string{"b@example.test"}, testMsg)
	return errs
}

// checkErrors wants every hook to have failed with an error naming spec.
func checkErrors(t *testing.T, errs map[string]error, spec string) {
	t.Helper()
	for hook, err := range errs {
		if err == nil {
			t.Errorf("%s: no error", hook)
		} else if !strings.Contains(err.Error(), "milter "+spec) {
			t.Errorf("%s: error %q does not name the milter %s", hook, err, spec)
		}
	}
}

// Something that does not speak the milter protocol fails every hook
// call (the host answers per on_error), at any point of the protocol.
func TestGarbageMilter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(net.Conn)
	}{
		{"HTTP server", func(c net.Conn) {
			_, _ = c.Write([]byte(httpGarbage))
			_, _ = io.Copy(io.Discard, c)
		}},
		{"HTTP after OPTNEG", func(c net.Conn) {
			if negotiate(c) != nil {
				return
			}
			_, _, _ = readPacket(c) // the macros of connect
			_, _ = c.Write([]byte(httpGarbage))
			_, _ = io.Copy(io.Discard, c)
		}},
		{"unknown reply code", func(c net.Conn) {
			if negotiate(c) != nil {
				return
			}
			for {
				code, _, err := readPacket(c)
				if err != nil {
					return
				}
				if code == 'C' {
					_ = writePacket(c, 'Z', nil)
				}
			}
		}},
		{"zero-length packet", func(c net.Conn) {
			if negotiate(c) != nil {
				return
			}
			_, _ = c.Write([]byte{0, 0, 0, 0})
			_, _ = io.Copy(io.Discard, c)
		}},
		{"packet too big", func(c net.Conn) {
			if negotiate(c) != nil {
				return
			}
			_, _ = c.Write([]byte{0x7f, 0, 0, 0, 'c'})
			_, _ = io.Copy(io.Discard, c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := rawListener(t, tc.serve)
			h := newHarness(t, cfgFor([]string{spec}))
			checkErrors(t, hooks(h, 40301), spec)
		})
	}
}

// A milter that takes the connection and never answers fails the hook
// after command_timeout.
func TestSilentMilter(t *testing.T) {
	spec := rawListener(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	h := newHarness(t, cfgFor([]string{spec}, "command_timeout", "300ms"))
	start := time.Now()
	_, err := h.connect(client(40302))
	took := time.Since(start)
	if err == nil {
		t.Fatal("no error")
	}
	if took < 250*time.Millisecond || took > 5*time.Second {
		t.Errorf("failed after %v, want about command_timeout (300ms)", took)
	}
}

// A milter that stops answering in the middle of a message fails the data
// hook after command_timeout.
func TestMilterHangsAtEndOfMessage(t *testing.T) {
	release := make(chan struct{})
	tm := startMilter(t, script{eom: func(milter.Modifier) (*milter.Response, error) {
		<-release
		return milter.RespAccept, nil
	}})
	t.Cleanup(func() { close(release) }) // before the server closes
	h := newHarness(t, cfgFor(specs(tm), "command_timeout", "300ms"))
	start := time.Now()
	_, err := h.data(client(40303), "a@example.test", []string{"b@example.test"}, testMsg)
	if err == nil || !strings.Contains(err.Error(), "end of message") {
		t.Errorf("error %v, want one at the end of message", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("failed after %v", took)
	}
}

// Nothing listening fails every hook.
func TestNothingListening(t *testing.T) {
	spec := deadEndpoint(t)
	h := newHarness(t, cfgFor([]string{spec}))
	checkErrors(t, hooks(h, 40304), spec)

	sock := "unix:" + t.TempDir() + "/no.sock"
	h = newHarness(t, cfgFor([]string{sock}))
	checkErrors(t, hooks(h, 40305), sock)
}

// A milter that breaks the connection in the middle of the body, or at
// its end, fails the data hook.
func TestMilterClosesMidMessage(t *testing.T) {
	boom := errors.New("boom") // go-milter's server closes the connection on an error
	for _, tc := range []struct {
		name string
		sc   script
	}{
		{"body", script{body: func([]byte, milter.Modifier) (*milter.Response, error) { return nil, boom }}},
		{"header", script{header: func(string, string, milter.Modifier) (*milter.Response, error) { return nil, boom }}},
		{"end of message", script{eom: func(milter.Modifier) (*milter.Response, error) { return nil, boom }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := startMilter(t, tc.sc)
			h := newHarness(t, cfgFor(specs(tm)))
			c := client(40306)
			h.must(h.connect(c))
			h.must(h.mail(c, "a@example.test"))
			h.must(h.rcpt(c, "a@example.test", "b@example.test"))
			msg := testMsg + strings.Repeat("0123456789abcde\r\n", 20000) // 340 kB, 6 chunks
			if _, err := h.data(c, "a@example.test", []string{"b@example.test"}, msg); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// After an error the next hook call of the connection opens new sessions
// and gets a real answer, never a pass-through with no milter.
func TestFreshSessionsAfterError(t *testing.T) {
	t.Run("rcpt after a failed mail", func(t *testing.T) {
		var broken atomic.Bool
		broken.Store(true)
		tm := startMilter(t, script{
			mail: func(string, milter.Modifier) (*milter.Response, error) {
				if broken.Swap(false) {
					return nil, errors.New("crash")
				}
				return nil, nil
			},
			rcpt: func(string, milter.Modifier) (*milter.Response, error) { return milter.RespReject, nil },
		})
		h := newHarness(t, cfgFor(specs(tm)))
		c := client(40307)
		h.must(h.connect(c))
		if _, err := h.mail(c, "a@example.test"); err == nil {
			t.Fatal("mail: no error")
		}
		checkVerdict(t, "rcpt", h.must(h.rcpt(c, "a@example.test", "b@example.test")), stdReject)
		if n := tm.sessions.Load(); n != 2 {
			t.Errorf("%d milter connections, want 2", n)
		}
		checkEvents(t, tm, concat(envelope(40307, "a@example.test"), envelope(40307, "a@example.test", "b@example.test"))...)
	})
	t.Run("data after a failed rcpt", func(t *testing.T) {
		var broken atomic.Bool
		broken.Store(true)
		tm := startMilter(t, script{
			rcpt: func(string, milter.Modifier) (*milter.Response, error) {
				if broken.Swap(false) {
					return nil, errors.New("crash")
				}
				return nil, nil
			},
			eom: func(milter.Modifier) (*milter.Response, error) { return milter.RespDiscard, nil },
		})
		h := newHarness(t, cfgFor(specs(tm)))
		c := client(40308)
		h.must(h.connect(c))
		h.must(h.mail(c, "a@example.test"))
		if _, err := h.rcpt(c, "a@example.test", "b@example.test"); err == nil {
			t.Fatal("rcpt: no error")
		}
		checkVerdict(t, "data", h.must(h.data(c, "a@example.test", []string{"b@example.test"}, testMsg)), discard())
		checkEvents(t, tm, concat(envelope(40308, "a@example.test", "b@example.test"),
			envelope(40308, "a@example.test", "b@example.test"), testMsgEvents)...)
	})
	t.Run("next message after a failed data", func(t *testing.T) {
		var broken atomic.Bool
		broken.Store(true)
		tm := startMilter(t, script{eom: func(milter.Modifier) (*milter.Response, error) {
			if broken.Swap(false) {
				return nil, errors.New("crash")
			}
			return milter.RespReject, nil
		}})
		h := newHarness(t, cfgFor(specs(tm)))
		c := client(40309)
		h.must(h.connect(c))
		h.must(h.mail(c, "a@example.test"))
		h.must(h.rcpt(c, "a@example.test", "b@example.test"))
		if _, err := h.data(c, "a@example.test", []string{"b@example.test"}, testMsg); err == nil {
			t.Fatal("data: no error")
		}
		h.must(h.mail(c, "a@example.test"))
		h.must(h.rcpt(c, "a@example.test", "b@example.test"))
		checkVerdict(t, "second data", h.must(h.data(c, "a@example.test", []string{"b@example.test"}, testMsg)), stdReject)
		if n := tm.sessions.Load(); n != 2 {
			t.Errorf("%d milter connections, want 2", n)
		}
	})
	t.Run("connect after a failed connect", func(t *testing.T) {
		// The milter is up only from the second attempt on.
		var attempts atomic.Int32
		spec := rawListener(t, func(c net.Conn) {
			if attempts.Add(1) == 1 {
				return // closed at once
			}
			if negotiate(c) != nil {
				return
			}
			for {
				code, _, err := readPacket(c)
				if err != nil {
					return
				}
				switch code {
				case 'C', 'H', 'M':
					_ = writePacket(c, 'c', nil)
				case 'R':
					_ = writePacket(c, 't', nil)
				}
			}
		})
		h := newHarness(t, cfgFor([]string{spec}))
		c := client(40310)
		if _, err := h.connect(c); err == nil {
			t.Fatal("connect: no error")
		}
		checkVerdict(t, "mail", h.must(h.mail(c, "a@example.test")), cont())
		checkVerdict(t, "rcpt", h.must(h.rcpt(c, "a@example.test", "b@example.test")), stdTempfail)
	})
}

// When the second milter cannot be reached, the hook fails and the first
// milter's session is closed.
func TestSecondMilterDown(t *testing.T) {
	first := startMilter(t, script{})
	dead := deadEndpoint(t)
	h := newHarness(t, cfgFor([]string{first.spec, dead}))
	checkErrors(t, map[string]error{"connect": func() error { _, err := h.connect(client(40311)); return err }()}, dead)
	first.waitCleanups(t, 1)
	if conn := h.b.conns.get(key(&sdk.Conn{Daemon: "mta", ClientIP: "192.0.2.1", ClientPort: 40311})); conn != nil {
		if n := len(conn.convs); n != 0 {
			t.Errorf("%d sessions kept after the error", n)
		}
		conn.mu.Unlock()
	}
}

package main

// Regression tests of bugs found by a review of the plugin: a refusal at
// MAIL that outlived its message, an empty body, a "%%" in a reply, new
// bodies left open, a new body timed as one packet, numbers in config
// errors.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"postline/plugins/pb"
	"postline/plugins/sdk"
)

// A milter that refused (or accepted) at MAIL is marked done, and
// bridge.each skips done sessions, so conversation.mail, which would
// clear done for the next message, is never called again: the milter
// gets nothing more for the rest of the SMTP connection.
func TestRegressionDoneOutlivesTheMessage(t *testing.T) {
	t.Run("reject at mail", func(t *testing.T) {
		tm := startMilter(t, script{mail: func(from string, _ milter.Modifier) (*milter.Response, error) {
			if strings.HasPrefix(from, "spam") {
				return milter.RespReject, nil
			}
			return nil, nil
		}})
		h := newHarness(t, cfgFor(specs(tm)))
		c := client(40501)
		h.must(h.connect(c))
		checkVerdict(t, "first mail", h.must(h.mail(c, "spam1@example.test")), stdReject)
		// The client tries again on the same connection.
		checkVerdict(t, "second mail", h.must(h.mail(c, "spam2@example.test")), stdReject)
		checkEvents(t, tm, "connect client.example tcp4 40501 192.0.2.1", "helo client.example",
			"mail <spam1@example.test>", "abort", "mail <spam2@example.test>")
	})
	t.Run("accept at mail", func(t *testing.T) {
		tm := startMilter(t, script{
			mail: func(from string, _ milter.Modifier) (*milter.Response, error) {
				if from == "friend@example.test" {
					return milter.RespAccept, nil
				}
				return nil, nil
			},
			eom: func(milter.Modifier) (*milter.Response, error) { return milter.RespReject, nil },
		})
		h := newHarness(t, cfgFor(specs(tm)))
		c := client(40502)
		h.must(h.connect(c))
		h.must(h.mail(c, "friend@example.test"))
		// RSET (or every recipient refused by another plugin), then a
		// message from someone else on the same connection.
		h.must(h.mail(c, "stranger@example.test"))
		h.must(h.rcpt(c, "stranger@example.test", "b@example.test"))
		v := h.must(h.data(c, "stranger@example.test", []string{"b@example.test"}, testMsg))
		checkVerdict(t, "stranger's data", v, stdReject)
	})
}

// A message with an empty body: readChunks sends no body chunk, and
// go-milter's ClientSession.End refuses to end a message whose state is
// not "body chunk called" ("milter: end: in wrong state"), so the data
// hook fails and the host tempfails the message.
func TestRegressionEmptyBody(t *testing.T) {
	tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		return milter.RespAccept, m.AddHeader("X-Scanned", "yes")
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	v, err := h.data(client(40503), "a@example.test", []string{"b@example.test"}, "Subject: no body\r\n\r\n")
	if err != nil {
		t.Fatalf("data: %v", err)
	}
	checkVerdict(t, "data", v, cont(edit(pb.HeaderEdit_APPEND, "X-Scanned", "yes", 0)))
}

// libmilter's smfi_setreply text is printf-like: a "%" is sent as "%%"
// (go-milter's RejectWithCodeAndReason escapes it so), and the MTA
// (sendmail; Postfix's milter8.c too) turns "%%" back into "%". replyCode
// keeps the "%%".
func TestRegressionPercentInReply(t *testing.T) {
	tm := startMilter(t, script{mail: func(string, milter.Modifier) (*milter.Response, error) {
		return withCode(550, "5.7.1 100% spam"), nil
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40504)
	h.must(h.connect(c))
	checkVerdict(t, "mail", h.must(h.mail(c, "a@example.test")), reject(550, "5.7.1", "100% spam"))
}

// openBodyFiles counts this process's open files that are a milter's new
// body (unlinked temporary files named milter-body-*).
func openBodyFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.Contains(target, "milter-body-") {
			n++
		}
	}
	return n
}

// A new body that does not end up in the verdict is never closed: its
// unlinked temporary file (and its disk space) stays open for the life of
// the plugin process. verdictOf returns the refusal without closing the
// bodies of the outcomes; applyMods overwrites an earlier milter's body;
// bridge.message drops the outcomes gathered so far when a later cv.end
// fails.
func TestRegressionNewBodyLeakedOnRefusal(t *testing.T) {
	replace := func(m milter.Modifier) error {
		return m.ReplaceBody(bytes.NewReader(bytes.Repeat([]byte("x"), 100<<10)))
	}
	for _, tc := range []struct {
		name          string
		first, second script
		want          int // body files the caller is given, and must close
	}{
		{"refused by the same milter", script{eom: func(m milter.Modifier) (*milter.Response, error) {
			return milter.RespReject, replace(m)
		}}, script{}, 0},
		{"refused by the next milter", script{eom: func(m milter.Modifier) (*milter.Response, error) {
			return milter.RespAccept, replace(m)
		}}, script{eom: func(milter.Modifier) (*milter.Response, error) { return milter.RespReject, nil }}, 0},
		{"replaced twice", script{eom: func(m milter.Modifier) (*milter.Response, error) {
			return milter.RespAccept, replace(m)
		}}, script{eom: func(m milter.Modifier) (*milter.Response, error) { return milter.RespAccept, replace(m) }}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, second := startMilter(t, tc.first), startMilter(t, tc.second)
			b := &bridge{}
			if err := b.Configure(cfgFor(specs(first, second))); err != nil {
				t.Fatal(err)
			}
			before := openBodyFiles(t)
			head, body, _ := strings.Cut(testMsg, "\r\n\r\n")
			v, err := b.Data(context.Background(), &sdk.Message{
				Conn:   &sdk.Conn{Daemon: "mta", ClientIP: "192.0.2.1", ClientPort: 40505, Helo: "client.example"},
				Sender: "a@example.test", Recipients: []string{"b@example.test"},
				RawHeader: []byte(head + "\r\n\r\n"), Body: strings.NewReader(body),
			})
			if err != nil {
				t.Fatal(err)
			}
			_ = v
			if n := openBodyFiles(t) - before; n != tc.want {
				t.Errorf("%d new-body files left open, want %d", n, tc.want)
			}
		})
	}
}

// command_timeout is per milter command, but a new body is read inside
// one read of the protocol library (bodyTap.Read diverts every
// SMFIR_REPLBODY packet while go-milter's wire.ReadPacket waits for the
// next packet under one deadline): a milter that streams a long new body,
// each packet well within command_timeout, fails once the whole body
// takes longer than command_timeout.
func TestRegressionReplacedBodyUnderOneTimeout(t *testing.T) {
	tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		for range 8 {
			if err := m.ReplaceBodyRawChunk(bytes.Repeat([]byte("y"), 1000)); err != nil {
				return nil, err
			}
			time.Sleep(100 * time.Millisecond) // each packet 100 ms after the last
		}
		return milter.RespAccept, nil
	}})
	h := newHarness(t, cfgFor(specs(tm), "command_timeout", "400ms"))
	if _, err := h.data(client(40506), "a@example.test", []string{"b@example.test"}, testMsg); err != nil {
		t.Errorf("data: %v", err)
	}
}

// Config errors print a non-string value with %q, which for an integer
// is a character literal: command_timeout = 10 (TOML integer) is
// reported as "command_timeout: '\n' is not a positive duration".
func TestRegressionConfigErrorQuotesNumbers(t *testing.T) {
	for key, val := range map[string]any{"command_timeout": int64(10), "quarantine_folder": int64(5)} {
		_, err := parseConfig(map[string]any{"milters": []any{"inet:127.0.0.1:11332"}, key: val})
		if err == nil || strings.Contains(err.Error(), "'") {
			t.Errorf("%s = %v: error %v", key, val, err)
		}
	}
}

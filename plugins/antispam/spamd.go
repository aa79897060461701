package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// spamdAnswer is what SpamAssassin's spamd said about a message.
type spamdAnswer struct {
	score   float64
	symbols string // the rules that hit, comma-separated, for the log
}

// askSpamd sends msg (header and body) to spamd at addr with the SYMBOLS
// command of the SPAMC/1.5 protocol (spamd's PROTOCOL file) and returns
// its score. The whole exchange is bounded by timeout and by ctx.
func askSpamd(ctx context.Context, addr string, timeout time.Duration, msg []byte) (spamdAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return spamdAnswer{}, fmt.Errorf("spamd: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// A cancelled call (the host gave up) must not wait out the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	req := fmt.Sprintf("SYMBOLS SPAMC/1.5\r\nContent-length: %d\r\n\r\n", len(msg))
	if _, err := io.WriteString(conn, req); err != nil {
		return spamdAnswer{}, fmt.Errorf("spamd: send: %w", err)
	}
	if _, err := conn.Write(msg); err != nil {
		return spamdAnswer{}, fmt.Errorf("spamd: send: %w", err)
	}
	// The answer is a status line, a few headers and the symbol list.
	return readSpamd(bufio.NewReader(io.LimitReader(conn, 64<<10)))
}

// readSpamd parses
//
//	SPAMD/1.1 0 EX_OK
//	Content-length: 20
//	Spam: True ; 1004.2 / 5.0
//
//	GTUBE,MISSING_DATE
func readSpamd(r *bufio.Reader) (spamdAnswer, error) {
	status, err := r.ReadString('\n')
	if err != nil {
		return spamdAnswer{}, fmt.Errorf("spamd: read answer: %w", err)
	}
	if f := strings.Fields(status); len(f) < 2 || !strings.HasPrefix(f[0], "SPAMD/") || f[1] != "0" {
		return spamdAnswer{}, fmt.Errorf("spamd: answered %q", strings.TrimSpace(status))
	}
	var a spamdAnswer
	found := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return spamdAnswer{}, fmt.Errorf("spamd: read headers: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(name, "Spam") {
			a.score, err = parseSpamHeader(value)
			if err != nil {
				return spamdAnswer{}, err
			}
			found = true
		}
	}
	if !found {
		return spamdAnswer{}, fmt.Errorf("spamd: no Spam header in the answer")
	}
	rest, _ := io.ReadAll(r)
	a.symbols = strings.TrimSpace(string(rest))
	return a, nil
}

// parseSpamHeader reads the score out of "True ; 1004.2 / 5.0".
func parseSpamHeader(v string) (float64, error) {
	_, scores, ok := strings.Cut(v, ";")
	score, _, ok2 := strings.Cut(scores, "/")
	f, err := strconv.ParseFloat(strings.TrimSpace(score), 64)
	if !ok || !ok2 || err != nil {
		return 0, fmt.Errorf("spamd: unreadable Spam header %q", strings.TrimSpace(v))
	}
	return f, nil
}

// capBuffer keeps the whole message for spamd while it stays within max
// bytes, and forgets it as soon as it grows past: spamd never sees a
// message bigger than spamd_max_size, like spamc's -s.
type capBuffer struct {
	b    []byte
	max  int64
	over bool
}

// newCapBuffer starts with the header; size, when known, sizes the buffer.
func newCapBuffer(header []byte, size, max int64) *capBuffer {
	c := &capBuffer{max: max}
	if size > 0 && size <= max {
		c.b = make([]byte, 0, size)
	}
	c.Write(header)
	return c
}

// Write never fails: the other readers of the body carry on.
func (c *capBuffer) Write(p []byte) (int, error) {
	if !c.over && int64(len(c.b)+len(p)) > c.max {
		c.over, c.b = true, nil
	}
	if !c.over {
		c.b = append(c.b, p...)
	}
	return len(p), nil
}

// message returns the buffered message, or nil when it was too big.
func (c *capBuffer) message() []byte {
	if c == nil || c.over {
		return nil
	}
	return c.b
}

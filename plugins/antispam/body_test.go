package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestBodyReadError: a body that breaks off (the host gave up) fails the
// call, and the DKIM verification reading the pipe does not hang it.
func TestBodyReadError(t *testing.T) {
	w := newWorld(t)
	f := w.filter(t, ruleCfg(map[string]any{"name": "R", "body": "x", "score": 1.0}))
	body := io.MultiReader(strings.NewReader("Hi,\r\npart of"), iotest.ErrReader(errors.New("stream reset")))
	_, err := f.Data(context.Background(), message(fromLocalhost, w.sign(t, plainHeader, plainBody), body))
	if err == nil || err.Error() != "antispam: read body: stream reset" {
		t.Errorf("err = %v", err)
	}
}

// TestUnneededBodyNotRead: unsigned, no body rules, no spamd: the body is
// left unread, which saves streaming it.
func TestUnneededBodyNotRead(t *testing.T) {
	w := newWorld(t)
	f := w.filter(t, nil)
	body := &countingReader{r: strings.NewReader(plainBody)}
	got := run(t, f, message(fromLocalhost, plainHeader, body))
	checkVerdict(t, got, delivered("", cleanAR, "0.0", "No, score=0.0 required=5.0 tests=none"))
	if body.n != 0 {
		t.Errorf("read %d body bytes", body.n)
	}
}

func TestCapBuffer(t *testing.T) {
	b := newCapBuffer([]byte("H: v\r\n\r\n"), 0, 12)
	b.Write([]byte("body"))
	if got := string(b.message()); got != "H: v\r\n\r\nbody" {
		t.Errorf("message %q", got)
	}
	b.Write([]byte("!"))
	if b.message() != nil {
		t.Errorf("a message over the cap is still kept: %q", b.message())
	}
}

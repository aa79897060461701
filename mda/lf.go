package mda

import (
	"bytes"
	"io"
)

// lfWriter turns each CRLF into LF on the way to w: Maildir files use
// the local line end, as Postfix's and Dovecot's own deliveries do. A CR
// not followed by LF is kept.
type lfWriter struct {
	w         io.Writer
	pendingCR bool
	buf       []byte
}

// Write copies the runs between CRs at once (byte by byte, it was a
// third of the MDA's CPU on a 50 MiB message).
func (l *lfWriter) Write(p []byte) (int, error) {
	l.buf = l.buf[:0]
	rest := p
	if l.pendingCR && len(rest) > 0 {
		l.pendingCR = false
		if rest[0] != '\n' {
			l.buf = append(l.buf, '\r')
		}
	}
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\r')
		if i < 0 {
			l.buf = append(l.buf, rest...)
			break
		}
		l.buf = append(l.buf, rest[:i]...)
		rest = rest[i+1:]
		switch {
		case len(rest) == 0:
			l.pendingCR = true
		case rest[0] != '\n':
			l.buf = append(l.buf, '\r') // a CR alone stays
		}
	}
	if _, err := l.w.Write(l.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes a CR held back at the very end of the input.
func (l *lfWriter) Flush() error {
	if !l.pendingCR {
		return nil
	}
	l.pendingCR = false
	_, err := l.w.Write([]byte{'\r'})
	return err
}

// lfReader reads r with each CRLF turned into LF, as lfWriter writes
// it. Close it when done, read to the end or not: Close returns once its
// goroutine has stopped reading r, so r may then be read by the caller.
func lfReader(r io.Reader) io.ReadCloser {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		lw := &lfWriter{w: pw}
		_, err := io.Copy(lw, r)
		if err == nil {
			err = lw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return &lfPipe{PipeReader: pr, done: done}
}

type lfPipe struct {
	*io.PipeReader
	done chan struct{}
}

func (p *lfPipe) Close() error {
	err := p.PipeReader.Close()
	<-p.done
	return err
}

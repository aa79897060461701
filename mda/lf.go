package mda

import (
	"bytes"
	"io"
	"sync"
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
// it, in the caller's goroutine: a goroutine and a pipe per message cost
// the MDA a handful of goroutine switches per copy. Close returns its
// buffer; r may then be read by the caller.
type lfReader struct {
	r   io.Reader
	lw  lfWriter
	in  *[]byte
	out bytes.Buffer // converted, not yet read
	err error        // r's, returned once out is drained
}

var lfBuffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

func newLFReader(r io.Reader) *lfReader {
	l := &lfReader{r: r, in: lfBuffers.Get().(*[]byte)}
	l.lw.w = &l.out
	return l
}

func (l *lfReader) Read(p []byte) (int, error) {
	for l.out.Len() == 0 && l.err == nil {
		n, err := l.r.Read(*l.in)
		l.lw.Write((*l.in)[:n]) // into a bytes.Buffer: cannot fail
		if err == io.EOF {
			l.lw.Flush()
		}
		l.err = err
	}
	if l.out.Len() > 0 {
		return l.out.Read(p)
	}
	return 0, l.err
}

// Close gives back the read buffer; l must not be read after.
func (l *lfReader) Close() error {
	if l.in != nil {
		lfBuffers.Put(l.in)
		l.in = nil
		l.err = io.ErrClosedPipe
	}
	return nil
}

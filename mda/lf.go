package mda

import "io"

// lfWriter turns each CRLF into LF on the way to w: Maildir files use
// the local line end, as Postfix's and Dovecot's own deliveries do. A CR
// not followed by LF is kept.
type lfWriter struct {
	w         io.Writer
	pendingCR bool
	buf       []byte
}

func (l *lfWriter) Write(p []byte) (int, error) {
	l.buf = l.buf[:0]
	for _, b := range p {
		if l.pendingCR {
			l.pendingCR = false
			if b != '\n' {
				l.buf = append(l.buf, '\r')
			}
		}
		if b == '\r' {
			l.pendingCR = true
			continue
		}
		l.buf = append(l.buf, b)
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

package httpapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"postline/msa"
	"postline/reply"
)

// sizeLimited reads at most limit octets of r; one more fails the read
// with reply.TooLarge, which the submission path gives as its answer
// (and the MTA, whose DATA it breaks, queues nothing).
type sizeLimited struct {
	r     io.Reader
	left  int64
	limit int64
}

func limitSize(r io.Reader, limit int64) *sizeLimited {
	return &sizeLimited{r: r, left: limit + 1, limit: limit}
}

func (l *sizeLimited) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, reply.TooLarge("size", int(l.limit))
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left <= 0 {
		return n - 1, reply.TooLarge("size", int(l.limit))
	}
	return n, err
}

// crlf turns bare LF line ends into CRLF, as programs write LF and
// RFC 5322 §2.3 wants CRLF (sendmail does the same); a bare CR is left
// to the data guard's limits.bare_newline rule.
type crlf struct {
	r       io.Reader
	buf     []byte
	out     []byte
	afterCR bool
}

func newCRLF(r io.Reader) *crlf { return &crlf{r: r, buf: make([]byte, 32<<10)} }

func (c *crlf) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		n, err := c.r.Read(c.buf)
		for _, b := range c.buf[:n] {
			if b == '\n' && !c.afterCR {
				c.out = append(c.out, '\r')
			}
			c.out = append(c.out, b)
			c.afterCR = b == '\r'
		}
		if n == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = c.out[:0:0] // let a large chunk go
	}
	return n, nil
}

// rawEnvelope reads the header block of a raw message (up to maxHeader
// octets), takes the sender and recipients the query did not give from
// its From, To, Cc and Bcc fields (msa.HeaderRecipients, as sendmail -t),
// and returns the message without its Bcc field.
func rawEnvelope(br *bufio.Reader, from string, to []string, maxHeader int) (string, []string, io.Reader, error) {
	head, err := readHeaderBlock(br, maxHeader)
	if err != nil {
		return "", nil, nil, err
	}
	rcpts, edited, err := msa.HeaderRecipients(head)
	if err != nil {
		return "", nil, nil, newError(400, "malformed_message", "5.6.0", "%v", err)
	}
	if len(to) == 0 {
		to = rcpts
	}
	if from == "" {
		if from, err = msa.HeaderSender(head); err != nil {
			return "", nil, nil, newError(400, "malformed_message", "5.6.0", "no ?from= and %v", err)
		}
	}
	return from, to, io.MultiReader(bytes.NewReader(edited), br), nil
}

// readHeaderBlock reads up to and with the blank line that ends the
// header; a message that is all header gets one.
func readHeaderBlock(br *bufio.Reader, max int) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if len(head) > max {
			return nil, fromReply(reply.TooLarge("header", max))
		}
		if bytes.Equal(line, []byte("\r\n")) {
			return head, nil
		}
		if errors.Is(err, io.EOF) {
			return append(head, "\r\n"...), nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, readError(err)
		}
	}
}

// readError is the answer to a body that could not be read.
func readError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	if r := replyOf(err); r != nil {
		return fromReply(r)
	}
	return newError(400, "bad_request", "5.5.2", "%s", fmt.Sprint(err))
}

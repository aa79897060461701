package msa

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
)

// maxScannedHeader bounds how much of the header block is held in memory
// to look for Message-ID and Date; a longer block is passed on untouched.
const maxScannedHeader = 1 << 20

// CompleteHeader copies the message from r to w, first adding the
// Message-ID and Date fields a submission lacks (RFC 6409 §8.2, §8.3).
// Everything else passes byte for byte, except that a message whose text
// starts without a header/body separator gets one, so the added fields
// do not turn its first lines into a broken header.
func CompleteHeader(w io.Writer, r io.Reader, hostname string) error {
	br := bufio.NewReader(r)
	h, err := scanHeader(br)
	if err != nil {
		return err
	}
	return writeCompleted(w, h, br, hostname)
}

// writeCompleted writes the added fields, the scanned header and the rest.
func writeCompleted(w io.Writer, h *scannedHeader, br *bufio.Reader, hostname string) error {
	_, err := io.Copy(w, h.message(h.block(hostname), br))
	return err
}

// block is the header block as it goes to the MTA: the added fields, the
// scanned header and, for a message without one, the blank line that ends
// it. A header longer than maxScannedHeader is its start only.
func (h *scannedHeader) block(hostname string) []byte {
	var b bytes.Buffer
	if h.complete {
		if !h.hasID {
			fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", randomID(), hostname)
		}
		if !h.hasDate {
			fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
		}
	}
	b.Write(h.header.Bytes())
	if h.body != nil {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// message is the message as it goes on: header (h.block, possibly
// edited), the first body line scanHeader read, if any, then br.
func (h *scannedHeader) message(header []byte, br *bufio.Reader) io.Reader {
	return io.MultiReader(bytes.NewReader(header), bytes.NewReader(h.body), br)
}

// scannedHeader is what scanHeader learnt of a message's start.
type scannedHeader struct {
	header         bytes.Buffer // the header block as read, with its blank line
	body           []byte       // a first body line met without a blank line before it
	hasID, hasDate bool
	from           []byte // the From field's value, unfolded lines included
	complete       bool   // the whole header block was read
	inFrom         bool   // the last field seen is From
}

// collectFrom keeps the From field's lines for the sender check.
func (h *scannedHeader) collectFrom(name string, isField bool, line []byte) {
	switch {
	case isField && strings.EqualFold(name, "From"):
		_, value, _ := bytes.Cut(line, []byte(":"))
		h.from = append(h.from, value...)
		h.inFrom = true
	case isField:
		h.inFrom = false
	case h.inFrom && isContinuation(line):
		h.from = append(h.from, line...)
	}
}

func scanHeader(br *bufio.Reader) (*scannedHeader, error) {
	h := &scannedHeader{}
	midLine := false // the previous read ended inside a long line
	for h.header.Len() < maxScannedHeader {
		line, err := br.ReadSlice('\n')
		if !midLine {
			name, isField := fieldName(line)
			switch {
			case isBlankLine(line):
				h.header.Write(line)
				h.complete = true
				return h, nil
			case !isField && !isContinuation(line) && len(line) > 0:
				h.body = append([]byte(nil), line...) // text before any blank line: the body
				h.complete = true
				return h, nil
			}
			h.hasID = h.hasID || strings.EqualFold(name, "Message-ID")
			h.hasDate = h.hasDate || strings.EqualFold(name, "Date")
			h.collectFrom(name, isField, line)
		}
		h.header.Write(line)
		midLine = err == bufio.ErrBufferFull
		if err == io.EOF {
			h.complete = true
			return h, nil
		}
		if err != nil && !midLine {
			return nil, err
		}
	}
	return h, nil
}

func isBlankLine(line []byte) bool {
	return len(line) > 0 && len(bytes.TrimRight(line, "\r\n")) == 0
}

func isContinuation(line []byte) bool {
	return len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
}

// fieldName returns the name of a header field starting on line: printable
// ASCII up to a colon (RFC 5322 §2.2). Other lines have none.
func fieldName(line []byte) (string, bool) {
	if isContinuation(line) {
		return "", false
	}
	name, _, ok := bytes.Cut(line, []byte(":"))
	name = bytes.TrimRight(name, " \t")
	if !ok || len(name) == 0 {
		return "", false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return "", false
		}
	}
	return string(name), true
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return fmt.Sprintf("%d.%s", time.Now().Unix(), hex.EncodeToString(b[:]))
}

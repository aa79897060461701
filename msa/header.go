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

// completeHeader copies the message from r to w, first adding the
// Message-ID and Date fields a submission lacks (RFC 6409 §8.2, §8.3).
// Everything else passes byte for byte.
func completeHeader(w io.Writer, r io.Reader, hostname string) error {
	br := bufio.NewReader(r)
	var header bytes.Buffer
	hasID, hasDate, complete := false, false, false
	midLine := false // the previous read ended inside a long line
	for header.Len() < maxScannedHeader {
		line, err := br.ReadSlice('\n')
		header.Write(line)
		if !midLine {
			if isBlankLine(line) {
				complete = true
				break
			}
			if name, ok := fieldName(line); ok {
				hasID = hasID || strings.EqualFold(name, "Message-ID")
				hasDate = hasDate || strings.EqualFold(name, "Date")
			}
		}
		midLine = err == bufio.ErrBufferFull
		if err == io.EOF {
			complete = true
			break
		}
		if err != nil && !midLine {
			return err
		}
	}
	if complete {
		if !hasID {
			fmt.Fprintf(w, "Message-ID: <%s@%s>\r\n", randomID(), hostname)
		}
		if !hasDate {
			fmt.Fprintf(w, "Date: %s\r\n", time.Now().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
		}
	}
	if _, err := w.Write(header.Bytes()); err != nil {
		return err
	}
	_, err := io.Copy(w, br)
	return err
}

func isBlankLine(line []byte) bool {
	return len(line) > 0 && len(bytes.TrimRight(line, "\r\n")) == 0
}

// fieldName returns the name of a header field starting on line; a
// continuation line (leading white space) has none.
func fieldName(line []byte) (string, bool) {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return "", false
	}
	name, _, ok := bytes.Cut(line, []byte(":"))
	return string(bytes.TrimSpace(name)), ok
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return fmt.Sprintf("%d.%s", time.Now().Unix(), hex.EncodeToString(b[:]))
}

package sieve

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"
)

// Field is one header field as it appears in the message. Value is the raw
// value after the colon, folding line breaks included.
type Field struct {
	Name, Value string
}

// Header is a message's header block in order (RFC 5322 §2.2).
type Header struct {
	Fields []Field
}

// Values returns the raw values of every field with that name
// (case-insensitive), unfolded (RFC 5322 §2.2.3) and trimmed.
func (h Header) Values(name string) []string {
	var out []string
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			out = append(out, unfold(f.Value))
		}
	}
	return out
}

// unfold removes folding line breaks; as in Dovecot, the white space that
// starts a continuation line becomes one space.
func unfold(v string) string {
	v = strings.ReplaceAll(v, "\r\n", "\n")
	v = strings.ReplaceAll(v, "\n\t", " ")
	v = strings.ReplaceAll(v, "\n", "")
	return strings.Trim(v, " \t\r")
}

// decodeHeader decodes RFC 2047 encoded words, as Pigeonhole does before
// header tests compare (RFC 5228 §2.7.2). Undecodable words stay as written.
func decodeHeader(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d := mime.WordDecoder{CharsetReader: charset.Reader}
	out, err := d.DecodeHeader(v)
	if err != nil {
		return v
	}
	return out
}

// ParseHeader reads a header block up to and including the empty line that
// ends it and returns the fields and the number of bytes consumed.
func ParseHeader(msg []byte) (Header, int, error) {
	var h Header
	off := 0
	for off < len(msg) {
		end := bytes.IndexByte(msg[off:], '\n')
		line := msg[off:]
		if end >= 0 {
			line = msg[off : off+end+1]
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		off += len(line)
		if len(trimmed) == 0 {
			return h, off, nil
		}
		if err := h.addLine(string(line)); err != nil {
			return h, off, fmt.Errorf("sieve: parse header at byte %d: %w", off-len(line), err)
		}
	}
	return h, off, nil
}

// addLine adds a field line or a continuation line (RFC 5322 §2.2.3).
func (h *Header) addLine(line string) error {
	if line[0] == ' ' || line[0] == '\t' {
		if len(h.Fields) == 0 {
			return fmt.Errorf("continuation line before any field")
		}
		h.Fields[len(h.Fields)-1].Value += line
		return nil
	}
	colon := strings.IndexByte(line, ':')
	if colon <= 0 {
		return fmt.Errorf("line without a colon: %q", strings.TrimSpace(line))
	}
	name := strings.TrimRight(line[:colon], " \t")
	h.Fields = append(h.Fields, Field{Name: name, Value: line[colon+1:]})
	return nil
}

// MessageInput builds an Input from a whole message: its header, a body
// reader over the rest and its size.
func MessageInput(msg []byte, env Envelope) (Input, error) {
	h, n, err := ParseHeader(msg)
	if err != nil {
		return Input{}, err
	}
	body := msg[n:]
	return Input{
		Envelope: env,
		Header:   h,
		Body:     func() (io.Reader, error) { return bytes.NewReader(body), nil },
		Size:     int64(len(msg)),
	}, nil
}

package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// ApplyEdits returns header with edits applied in order: Prepend puts a
// field at the top (where RFC 5322 §3.6.7 wants trace fields), Append at
// the end of the header, Remove deletes every field of that name in any
// letter case, including fields added by earlier edits.
//
// header is a header block with its ending empty line; anything after the
// empty line (a body) is kept as it is. Fields no edit touches are copied
// byte for byte, folding and spacing included, which is what keeps DKIM
// signatures over them valid. New fields get the block's line ends (CRLF,
// or LF for an LF-only block) and are folded at spaces to 78 octets.
func ApplyEdits(header []byte, edits []HeaderEdit) ([]byte, error) {
	if len(edits) == 0 {
		return header, nil
	}
	br := bufio.NewReader(bytes.NewReader(header))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("plugins: apply header edits: %w", err)
	}
	rest, _ := io.ReadAll(br) // a bytes.Reader does not fail
	e := editor{h: h}
	for _, ed := range edits {
		if err := e.apply(ed); err != nil {
			return nil, fmt.Errorf("plugins: apply header edits: %w", err)
		}
	}
	var b bytes.Buffer
	if err := textproto.WriteHeader(&b, e.h); err != nil {
		return nil, fmt.Errorf("plugins: apply header edits: %w", err)
	}
	b.Truncate(b.Len() - 2) // the empty line; appended fields go before it
	for _, f := range e.tail {
		b.Write(f.raw)
	}
	b.WriteString("\r\n")
	out := b.Bytes()
	// textproto reads LF-only lines as if they ended in CRLF.
	if bytes.IndexByte(header, '\n') >= 0 && !bytes.Contains(header, []byte("\r\n")) {
		out = bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n"))
	}
	return append(out, rest...), nil
}

// editor holds a header being edited. textproto only inserts at the top,
// so appended fields wait in tail until the header is written out.
type editor struct {
	h    textproto.Header
	tail []tailField
}

type tailField struct {
	name string
	raw  []byte
}

func (e *editor) apply(ed HeaderEdit) error {
	switch ed.Op {
	case Prepend, Append:
		raw, err := formatField(ed.Name, ed.Value)
		if err != nil {
			return err
		}
		if ed.Op == Prepend {
			e.h.AddRaw(raw)
		} else {
			e.tail = append(e.tail, tailField{ed.Name, raw})
		}
	case Remove:
		for fs := e.h.Fields(); fs.Next(); {
			if strings.EqualFold(fs.Key(), ed.Name) {
				fs.Del()
			}
		}
		kept := e.tail[:0]
		for _, f := range e.tail {
			if !strings.EqualFold(f.name, ed.Name) {
				kept = append(kept, f)
			}
		}
		e.tail = kept
	default:
		return fmt.Errorf("unknown header edit op %d", ed.Op)
	}
	return nil
}

const (
	foldAt      = 78  // RFC 5322 §2.1.1: lines SHOULD be at most 78 octets
	maxLineSize = 998 // and MUST be at most 998
)

// formatField returns "name: value" CRLF-terminated, or an error when the
// field would break the header: a name that is not printable ASCII without
// a colon (RFC 5322 §2.2), a control character, or a line break that is
// not folding (CRLF or LF followed by a space or tab).
func formatField(name, value string) ([]byte, error) {
	if name == "" || len(name) > 76 {
		return nil, fmt.Errorf("header field name %q: must be 1-76 characters", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < '!' || c > '~' || c == ':' {
			return nil, fmt.Errorf("header field name %q: invalid character %q", name, c)
		}
	}
	lines := strings.Split(strings.ReplaceAll(value, "\r\n", "\n"), "\n")
	for i, l := range lines {
		// A continuation must start with a space or tab and hold more than
		// blanks: some readers take a blank line as the end of the header.
		if i > 0 && (l == "" || l[0] != ' ' && l[0] != '\t' || strings.TrimSpace(l) == "") {
			return nil, fmt.Errorf("header field %s: line break not followed by a space or tab and text", name)
		}
		if strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return nil, fmt.Errorf("header field %s: control character in value", name)
		}
	}
	lines[0] = name + ": " + lines[0]
	var b bytes.Buffer
	for i, l := range lines {
		start := 1
		if i == 0 {
			start = len(name) + 2
		}
		for _, part := range fold(l, start) {
			if len(part) > maxLineSize {
				return nil, errors.New("header field " + name + ": a line longer than 998 octets with no space to fold at")
			}
			b.WriteString(part)
			b.WriteString("\r\n")
		}
	}
	return b.Bytes(), nil
}

// fold splits a line longer than foldAt before a space or tab, never at or
// before index start (so a field name is not left alone on its line).
func fold(line string, start int) []string {
	var out []string
	for len(line) > foldAt {
		i := strings.LastIndexAny(line[:foldAt+1], " \t")
		if i <= start || strings.TrimSpace(line[:i]) == "" {
			j := strings.IndexAny(line[foldAt+1:], " \t")
			if j < 0 {
				break
			}
			i = foldAt + 1 + j
		}
		out = append(out, line[:i])
		line, start = line[i:], 1
	}
	return append(out, line)
}

package host

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ApplyEdits returns header with edits applied in order: Prepend puts a
// field at the top (where RFC 5322 §3.6.7 wants trace fields), Append at
// the end of the header, Remove deletes every field of that name in any
// letter case, including fields added by earlier edits, Change sets or
// removes the Index-th field of a name and Insert adds a field after the
// Index-th field (libmilter's smfi_chgheader and smfi_insheader).
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
	fields, rest, err := splitFields(header)
	if err != nil {
		return nil, fmt.Errorf("plugins: apply header edits: %w", err)
	}
	lfOnly := bytes.IndexByte(header, '\n') >= 0 && !bytes.Contains(header, []byte("\r\n"))
	for _, ed := range edits {
		if fields, err = applyEdit(fields, ed, lfOnly); err != nil {
			return nil, fmt.Errorf("plugins: apply header edits: %w", err)
		}
	}
	var b bytes.Buffer
	for _, f := range fields {
		b.Write(f.raw)
	}
	if lfOnly {
		b.WriteString("\n")
	} else {
		b.WriteString("\r\n")
	}
	return append(b.Bytes(), rest...), nil
}

// field is one header field as it stands in the block, line ends included.
type field struct {
	name string
	raw  []byte
}

// splitFields cuts a header block into its fields and returns what
// follows the empty line that ends it. A line that neither starts a field
// nor continues one is an error: edits must not guess at a broken header.
func splitFields(header []byte) ([]field, []byte, error) {
	var fields []field
	for rest := header; len(rest) > 0; {
		end := bytes.IndexByte(rest, '\n') + 1
		if end == 0 {
			end = len(rest)
		}
		line := rest[:end]
		switch {
		case len(bytes.TrimRight(line, "\r\n")) == 0:
			return fields, rest[end:], nil
		case line[0] == ' ' || line[0] == '\t':
			if len(fields) == 0 {
				return nil, nil, errors.New("header starts with a continuation line")
			}
			last := &fields[len(fields)-1]
			last.raw = append(last.raw, line...)
		case isField(line):
			name, _, _ := bytes.Cut(line, []byte(":"))
			fields = append(fields, field{string(bytes.TrimRight(name, " \t")), append([]byte(nil), line...)})
		default:
			return nil, nil, fmt.Errorf("malformed header line %q", bytes.TrimRight(line, "\r\n"))
		}
		rest = rest[end:]
	}
	return fields, nil, nil
}

// applyEdit applies one edit to fields.
func applyEdit(fields []field, ed HeaderEdit, lfOnly bool) ([]field, error) {
	if ed.Op == Remove {
		return slices.DeleteFunc(fields, func(f field) bool { return strings.EqualFold(f.name, ed.Name) }), nil
	}
	raw, err := formatField(ed.Name, ed.Value)
	if err != nil {
		return nil, err
	}
	if lfOnly {
		raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	}
	f := field{ed.Name, raw}
	switch ed.Op {
	case Prepend:
		return slices.Insert(fields, 0, f), nil
	case Append:
		return append(fields, f), nil
	case Insert:
		return slices.Insert(fields, min(ed.Index, len(fields)), f), nil
	case Change:
		return changeField(fields, ed, f), nil
	}
	return nil, fmt.Errorf("unknown header edit op %d", ed.Op)
}

// changeField replaces (or, for an empty value, removes) the Index-th
// field named ed.Name; past the last one it adds f at the end, as
// Postfix's and sendmail's smfi_chgheader do.
func changeField(fields []field, ed HeaderEdit, f field) []field {
	n := 0
	for i := range fields {
		if !strings.EqualFold(fields[i].name, ed.Name) {
			continue
		}
		if n++; n < ed.Index {
			continue
		}
		if ed.Value == "" {
			return slices.Delete(fields, i, i+1)
		}
		fields[i] = f
		return fields
	}
	if ed.Value == "" {
		return fields
	}
	return append(fields, f)
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

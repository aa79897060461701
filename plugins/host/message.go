package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
)

// maxHeaderBlock bounds the header block read for the data hook; past it
// the plugins see no header fields, and their prepended fields go on top
// of the message as it is.
const maxHeaderBlock = 1 << 20

// Filtered is a message after the data hook.
type Filtered struct {
	// Result is what the plugins decided. When it is Refused or Discard,
	// Message is nil and nothing may be queued.
	Result Result
	// Message is the message to store or pass on, with the plugins'
	// header edits applied. Read it before calling Close.
	Message io.Reader
	spill   *os.File
	body    *bodySink // a new body from a plugin
}

// Close releases the spilled copy of the message and any new body.
func (f *Filtered) Close() error {
	f.body.Close()
	if f.spill == nil {
		return nil
	}
	return f.spill.Close()
}

// FilterMessage runs the data hook on the message read from r and
// returns it with the plugins' header edits. Without data plugins r is
// returned as it is. Header-only plugins cost one read of the header
// block, and the rest of r is streamed on when Message is read, so errors
// of r past the header come from Message. When a plugin reads the body,
// the message is first copied to an unlinked file in spillDir, so that
// any size passes in bounded memory and each plugin, then the caller,
// reads it from the start; errors of r then come from FilterMessage.
func (c *Chain) FilterMessage(ctx context.Context, tx TxInfo, r io.Reader, spillDir string) (*Filtered, error) {
	if !c.Has(HookData) {
		return &Filtered{Message: r}, nil
	}
	if !c.WantsBody() {
		br := bufio.NewReader(r)
		head, rest, synthetic, err := splitHeader(br)
		if err != nil {
			return nil, err
		}
		f := &Filtered{Result: c.Data(ctx, tx, head, nil)}
		f.Message = c.edited(f.Result, head, synthetic, tx, io.MultiReader(bytes.NewReader(rest), br))
		return f, nil
	}
	spill, size, err := spillMessage(r, spillDir)
	if err != nil {
		return nil, err
	}
	f := &Filtered{spill: spill, body: &bodySink{dir: spillDir}}
	head, bodyAt, synthetic, err := splitSpilled(spill)
	if err != nil {
		f.Close()
		return nil, err
	}
	tx.Size = size
	f.Result = c.data(ctx, tx, head, io.NewSectionReader(spill, bodyAt, size-bodyAt), f.body)
	var body io.Reader = io.NewSectionReader(spill, bodyAt, size-bodyAt)
	if f.Result.BodyBy != "" {
		if err := f.body.rewind(); err != nil {
			f.Close()
			return nil, fmt.Errorf("plugins: read the new body: %w", err)
		}
		body = f.body.file
	}
	f.Message = c.edited(f.Result, head, synthetic, tx, body)
	return f, nil
}

// edited is the message as it goes on: the edited header, then body. It
// is nil when the result lets no message go on.
func (c *Chain) edited(res Result, head []byte, synthetic bool, tx TxInfo, body io.Reader) io.Reader {
	if res.Refused() || res.Action == Discard {
		return nil
	}
	edited, err := ApplyEdits(head, res.Edits)
	if err != nil {
		// A header that cannot be parsed goes on as it came.
		c.opts.Log.Warn().Err(err).Str("queue_id", tx.Conn.QueueID).Msg("plugins: header edits not applied")
		edited = head
	}
	if synthetic {
		edited = edited[:len(edited)-2] // the empty line splitHeader added
	}
	return io.MultiReader(bytes.NewReader(edited), body)
}

// spillMessage copies r into a file in dir that is unlinked at once, so
// a crash leaves nothing behind, and rewinds it.
func spillMessage(r io.Reader, dir string) (*os.File, int64, error) {
	f, err := os.CreateTemp(dir, "filter-*")
	if err != nil {
		return nil, 0, fmt.Errorf("plugins: copy of the message for the filters: %w", err)
	}
	os.Remove(f.Name())
	size, err := io.Copy(f, r)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("plugins: copy of the message for the filters: %w", err)
	}
	return f, size, nil
}

// splitSpilled reads the header block of the spilled message and returns
// it with the offset where the body starts.
func splitSpilled(f *os.File) (head []byte, bodyAt int64, synthetic bool, err error) {
	br := bufio.NewReader(f)
	head, rest, synthetic, err := splitHeader(br)
	if err != nil {
		return nil, 0, false, fmt.Errorf("plugins: read the message's header: %w", err)
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, false, fmt.Errorf("plugins: read the message's header: %w", err)
	}
	return head, pos - int64(br.Buffered()) - int64(len(rest)), synthetic, nil
}

// splitHeader reads the header block, up to and including the empty
// line that ends it. A first line that is neither a field nor a folded
// continuation starts the body: the block then gets its missing empty
// line. A block that ends the message or outgrows maxHeaderBlock is
// synthetic: no fields (or the fields of a message with no body) plus a
// "\r\n" the caller removes again; rest is what was read past the block.
func splitHeader(br *bufio.Reader) (head, rest []byte, synthetic bool, err error) {
	var buf []byte
	midLine := false
	for len(buf) < maxHeaderBlock {
		line, err := br.ReadSlice('\n')
		if !midLine && len(line) > 0 {
			switch {
			case len(bytes.TrimRight(line, "\r\n")) == 0:
				return append(buf, line...), nil, false, nil
			case line[0] != ' ' && line[0] != '\t' && !isField(line):
				return append(buf, "\r\n"...), append([]byte(nil), line...), false, nil
			}
		}
		buf = append(buf, line...)
		midLine = err == bufio.ErrBufferFull
		if err == io.EOF {
			if len(buf) > 0 && buf[len(buf)-1] != '\n' {
				return []byte("\r\n"), buf, true, nil // a last line without its end
			}
			return append(buf, "\r\n"...), nil, true, nil
		}
		if err != nil && !midLine {
			return nil, nil, false, err
		}
	}
	return []byte("\r\n"), buf, true, nil
}

// isField reports whether line starts a header field: printable ASCII up
// to a colon (RFC 5322 §2.2).
func isField(line []byte) bool {
	name, _, ok := bytes.Cut(line, []byte(":"))
	name = bytes.TrimRight(name, " \t")
	if !ok || len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

package mta

import (
	"bufio"
	"bytes"
	"context"
	"io"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/plugins/host"
)

// maxHeaderBlock bounds the header block read for the data hook; past it
// the plugins see no header fields, and their prepended fields go on top
// of the message as it is.
const maxHeaderBlock = 1 << 20

// errFilterNeedsBody answers when a data plugin of the mta wants the
// body: the mta spools the message while it arrives and runs the data
// hook on its header block only.
// TODO(issue 5): run body plugins on the spooled copy before the 250.
var errFilterNeedsBody = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error: a body filter is configured for the mta, which it does not support yet"}

// filtered runs the data hook on the message's header block, for mail
// from the internet only (what arrives on the trusted socket was filtered
// by the MSA), and returns the message to store, with the plugins' header
// edits. A non-nil reply ends the transaction without queueing: a
// refusal, or a 250 for a discarded message.
func (s *session) filtered(r io.Reader, queueID string, log zerolog.Logger) (io.Reader, *smtp.SMTPError) {
	chain := s.b.Plugins
	if s.b.Trusted || !chain.Has(host.HookData) {
		return r, nil
	}
	if chain.WantsBody() {
		log.Error().Msg("a data plugin of the mta wants the body: not supported yet")
		return nil, errFilterNeedsBody
	}
	br := bufio.NewReader(r)
	head, rest, synthetic, err := splitHeader(br)
	if err != nil {
		return nil, storeError(err)
	}
	ci := s.client.Info()
	ci.QueueID = queueID
	tx := host.TxInfo{Conn: ci, Sender: s.from, Recipients: s.rcpts}
	res := chain.Data(context.Background(), tx, head, nil)
	switch res.Action {
	case host.Reject, host.Tempfail:
		log.Info().Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("message refused by plugin")
		return nil, res.Reply.SMTPError()
	case host.Discard:
		log.Info().Str("plugin", res.By).Msg("message discarded by plugin")
		return nil, &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: discarded by filter " + res.By}
	}
	edited, err := host.ApplyEdits(head, res.Edits)
	if err != nil {
		// A header that cannot be parsed is stored as it came.
		log.Warn().Err(err).Msg("header edits not applied")
		edited = head
	}
	if synthetic {
		edited = edited[:len(edited)-2] // the empty line splitHeader added
	}
	return io.MultiReader(bytes.NewReader(edited), bytes.NewReader(rest), br), nil
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

package mda

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/plugins/host"
	"postline/reply"
)

// maxHeaderBlock bounds the header block read from the spooled copy for
// the deliver hook; past it the plugins see no header fields, and their
// prepended fields go on top of the message as it is.
const maxHeaderBlock = 1 << 20

// copyFor runs the deliver hook for one recipient's copy and returns what
// to write into which Maildir folder: the one a data filter chose in the
// MSA or MTA (carried in MAIL FROM), unless a deliver filter chooses
// another. A non-nil reply ends that recipient's delivery there: refused
// (4xx, 5xx) or discarded (250). msg is the spooled message at its
// start, with LF line ends.
func (s *session) copyFor(msg io.Reader, size int64, rc recipient, log zerolog.Logger) (io.Reader, string, *smtp.SMTPError) {
	folder := s.folder
	if s.b.Plugins.Has(host.HookDeliver) {
		var reply *smtp.SMTPError
		msg, folder, reply = s.deliverHook(msg, size, rc, log)
		if reply != nil {
			return nil, "", reply
		}
	}
	if folder == "" {
		return msg, rc.dir, nil
	}
	// Maildir++: folder F of a Maildir lives in its subfolder ".F".
	if !SafeFolderName(folder) || !host.ValidFolder(folder) {
		log.Error().Str("folder", folder).Msg("unsafe folder")
		return nil, "", deliveryError(fmt.Errorf("mda: unsafe folder %q", folder))
	}
	return msg, filepath.Join(rc.dir, "."+folder), nil
}

// deliverHook runs the deliver hook and returns the copy with the
// plugins' header edits and the folder they chose.
func (s *session) deliverHook(msg io.Reader, size int64, rc recipient, log zerolog.Logger) (io.Reader, string, *smtp.SMTPError) {
	head, rest, synthetic, err := readHeader(msg)
	if err != nil {
		return nil, "", deliveryError(err)
	}
	body, err := bodyOf(msg, rest, size)
	if err != nil {
		return nil, "", deliveryError(err)
	}
	info := host.DeliveryInfo{Recipient: rc.address, Sender: s.from, QueueID: s.queueID, Folder: s.folder, Size: size}
	res := s.b.Plugins.Deliver(context.Background(), info, head, body)
	switch res.Action {
	case host.Reject, host.Tempfail:
		log.Info().Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("delivery refused by plugin")
		return nil, "", res.Reply.SMTPError()
	case host.Discard:
		log.Info().Str("plugin", res.By).Msg("delivery discarded by plugin")
		return nil, "", reply.Discarded(res.By)
	}
	folder := s.folder
	if res.Folder != "" {
		folder = res.Folder
	}
	edited, err := host.ApplyEdits(head, res.Edits)
	if err != nil {
		// The header cannot be parsed: deliver it as it came rather
		// than hold the mail back for ever.
		log.Warn().Err(err).Msg("header edits not applied")
		edited = head
	}
	if synthetic {
		edited = edited[:len(edited)-1] // the empty line readHeader added
	}
	return io.MultiReader(bytes.NewReader(edited), bytes.NewReader(rest), msg), folder, nil
}

// bodyOf gives deliver plugins that read the body a reader of it from its
// start, each: msg must then be the spooled copy (see session.direct),
// read up to the header block and rest past it. nil when msg is a stream.
func bodyOf(msg io.Reader, rest []byte, size int64) (func() io.Reader, error) {
	f, ok := msg.(*os.File)
	if !ok {
		return nil, nil
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("mda: body for the plugins: %w", err)
	}
	at := pos - int64(len(rest))
	return func() io.Reader { return io.NewSectionReader(f, at, size-at) }, nil
}

// readHeader reads the header block (up to and including the empty line)
// from an LF-only message and returns it with the bytes read past it.
// Without an empty line within maxHeaderBlock the block is synthetic:
// the whole message when it is that short (a message of header fields
// only), else no fields at all, plus one "\n" the caller removes again.
func readHeader(r io.Reader) (head, rest []byte, synthetic bool, err error) {
	var buf []byte
	// Most header blocks fit in one read of this; a 64 KiB chunk was a
	// tenth of the MDA's CPU per message, allocating and clearing it.
	chunk := make([]byte, 8<<10)
	for len(buf) < maxHeaderBlock {
		n, rerr := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if end := headerEnd(buf); end >= 0 {
			return buf[:end], buf[end:], false, nil
		}
		if rerr == io.EOF {
			head = append(head, buf...)
			if len(head) > 0 && head[len(head)-1] != '\n' {
				head = append(head, '\n')
			}
			return append(head, '\n'), nil, true, nil
		}
		if rerr != nil {
			return nil, nil, false, fmt.Errorf("mda: read header: %w", rerr)
		}
	}
	return []byte("\n"), buf, true, nil
}

func headerEnd(b []byte) int {
	if len(b) > 0 && b[0] == '\n' {
		return 1
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return i + 2
	}
	return -1
}

package mda

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/plugins/host"
	"postline/reply"
)

// maxHeaderBlock bounds the header block read from the spooled copy for
// the deliver hook; past it the plugins see no header fields, and their
// prepended fields go on top of the message as it is.
const maxHeaderBlock = 1 << 20

// target is one copy's place: a Maildir folder and its Maildir flags.
type target struct {
	dir   string
	flags string // Maildir info letters, e.g. "S"; "" goes into new/
}

// plan is what to write for one recipient: msg into each target; again
// gives the same bytes anew for the targets after the first (only the
// deliver hook makes several, from the spooled copy).
type plan struct {
	msg     io.Reader
	again   func() io.Reader
	targets []target
	// What a deliver plugin asked to send (see sendOut), the edited
	// header they go with, and who discarded the copy when none is kept.
	head      []byte
	redirects []string
	send      []host.Outgoing
	discardBy string
}

// copyFor runs the deliver hook for one recipient's copy and returns what
// to write into which Maildir folders: the one a data filter chose in the
// MSA or MTA (carried in MAIL FROM), unless a deliver filter chooses
// others. A non-nil reply ends that recipient's delivery there: refused
// (4xx, 5xx) or discarded (250). msg is the message at its start, with
// LF line ends: the spooled copy, or for one recipient the stream itself.
func (s *session) copyFor(msg io.Reader, size int64, rc recipient, log zerolog.Logger) (plan, *smtp.SMTPError) {
	if !s.b.Plugins.Has(host.HookDeliver) {
		dir, err := folderDir(rc, s.folder, log)
		return plan{msg: msg, targets: []target{{dir: dir}}}, err
	}
	return s.deliverHook(msg, size, rc, log)
}

// folderDir is the Maildir++ folder's directory: folder F of a Maildir
// lives in its subfolder ".F"; "" is the Maildir itself (INBOX).
func folderDir(rc recipient, folder string, log zerolog.Logger) (string, *smtp.SMTPError) {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return rc.dir, nil
	}
	if !SafeFolderName(folder) || !host.ValidFolder(folder) {
		log.Error().Str("folder", folder).Msg("unsafe folder")
		return "", deliveryError(fmt.Errorf("mda: unsafe folder %q", folder))
	}
	return filepath.Join(rc.dir, "."+folder), nil
}

// deliverHook runs the deliver hook and returns the copies to write, with
// the plugins' header edits, into the folders they chose.
func (s *session) deliverHook(msg io.Reader, size int64, rc recipient, log zerolog.Logger) (plan, *smtp.SMTPError) {
	head, rest, synthetic, err := readHeader(msg)
	if err != nil {
		return plan{}, deliveryError(err)
	}
	// The body's place in the spooled copy is asked for only when a
	// plugin reads the body or the copy is to be read again: reading
	// msg after the hook starts at the same place (plugins read through
	// ReadAt), and most deliveries need neither.
	var body func() io.Reader
	if s.b.Plugins.WantsDeliverBody() {
		if body, err = bodyOf(msg, rest, size); err != nil {
			return plan{}, deliveryError(err)
		}
	}
	info := host.DeliveryInfo{Recipient: rc.address, Sender: s.from, QueueID: s.queueID, Folder: s.folder, Size: size, Mailbox: rc.dir}
	res := s.b.Plugins.Deliver(context.Background(), info, head, body)
	switch res.Action {
	case host.Reject, host.Tempfail:
		log.Info().Str("plugin", res.By).Str("reply", res.Reply.String()).Msg("delivery refused by plugin")
		return plan{}, res.Reply.SMTPError()
	case host.Discard:
		log.Info().Str("plugin", res.By).Msg("delivery discarded by plugin")
		if len(res.Redirects)+len(res.Send) == 0 {
			return plan{}, reply.Discarded(res.By)
		}
	}
	if body == nil && (len(res.Copies) > 1 || len(res.Redirects) > 0) {
		if body, err = bodyOf(msg, rest, size); err != nil {
			return plan{}, deliveryError(err)
		}
	}
	edited := editedHeader(head, res.Edits, synthetic, log)
	p := plan{msg: io.MultiReader(bytes.NewReader(edited), bytes.NewReader(rest), msg),
		head: edited, redirects: res.Redirects, send: res.Send}
	if body != nil {
		p.again = func() io.Reader { return io.MultiReader(bytes.NewReader(edited), body()) }
	}
	if res.Action == host.Discard {
		p.discardBy = res.By
		return p, nil
	}
	targets, serr := s.targets(res, rc, p.again != nil, log)
	p.targets = targets
	return p, serr
}

// targets are the folders a deliver result chose: its copies, or one
// into its folder (or the data filters'). Several copies need the
// spooled message; from a stream only the first is written.
func (s *session) targets(res host.Result, rc recipient, canRepeat bool, log zerolog.Logger) ([]target, *smtp.SMTPError) {
	copies := res.Copies
	if len(copies) == 0 {
		copies = []host.Copy{{Folder: cmp.Or(res.Folder, s.folder)}}
	}
	if len(copies) > 1 && !canRepeat {
		log.Warn().Int("copies", len(copies)).Msg("a plugin asked for copies of a streamed message: only the first written (it should say deliver_body)")
		copies = copies[:1]
	}
	var out []target
	for _, c := range copies {
		dir, err := folderDir(rc, c.Folder, log)
		if err != nil {
			return nil, err
		}
		out = append(out, target{dir: dir, flags: Flags(c.Flags)})
	}
	return out, nil
}

// editedHeader applies the deliver hook's header edits; a header that
// cannot be parsed goes as it came rather than hold the mail back for ever.
func editedHeader(head []byte, edits []host.HeaderEdit, synthetic bool, log zerolog.Logger) []byte {
	edited, err := host.ApplyEdits(head, edits)
	if err != nil {
		log.Warn().Err(err).Msg("header edits not applied")
		edited = head
	}
	if synthetic {
		edited = edited[:len(edited)-1] // the empty line readHeader added
	}
	return edited
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

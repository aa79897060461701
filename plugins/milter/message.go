package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/d--j/go-milter"

	"postline/plugins/sdk"
)

// outcome is one milter's answer to a whole message.
type outcome struct {
	action milter.Action
	mods   []milter.ModifyAction
	body   *os.File // the milter's new body, nil when none
}

// sendHeader sends DATA, each header field as the milter wants it, and
// the end of the header. Values keep their folding with LF line ends, as
// Postfix and sendmail pass them; the space after the colon is left out
// unless the milter negotiated SMFIP_HDR_LEADSPC.
func (cv *conversation) sendHeader(raw []byte) (milter.Action, error) {
	act, err := cv.s.DataStart()
	if err != nil || act.Type != milter.ActionContinue {
		return cv.result(act, err, "data")
	}
	lead := cv.s.ProtocolOption(milter.OptHeaderLeadingSpace)
	for _, f := range splitFields(raw) {
		value := f.value
		if !lead {
			value = strings.TrimPrefix(value, " ")
		}
		act, err := cv.s.HeaderField(f.name, strings.ReplaceAll(value, "\r\n", "\n"), nil)
		if err != nil || act.Type != milter.ActionContinue {
			return cv.result(act, err, "header")
		}
	}
	act, err = cv.s.HeaderEnd()
	return cv.result(act, err, "end of header")
}

// sendChunk sends one piece of the body of at most milter.DataSize64K.
func (cv *conversation) sendChunk(chunk []byte) (milter.Action, error) {
	act, err := cv.s.BodyChunk(chunk)
	return cv.result(act, err, "body")
}

// end sends the end of the message and collects the milter's changes.
func (cv *conversation) end() (outcome, error) {
	mods, act, err := cv.s.End()
	if err != nil {
		return outcome{}, fmt.Errorf("milter %s: end of message: %w", cv.ep.spec, err)
	}
	body, err := cv.tap.takeBody()
	if err != nil {
		return outcome{}, fmt.Errorf("milter %s: new body: %w", cv.ep.spec, err)
	}
	cv.done = true
	return outcome{action: *act, mods: mods, body: body}, nil
}

// headerField is one field of a raw header block: its name and the value
// as it stands after the colon, folding included, without the last CRLF.
type headerField struct{ name, value string }

func splitFields(raw []byte) []headerField {
	var out []headerField
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		l := string(line)
		switch {
		case strings.TrimRight(l, "\r\n") == "":
		case (l[0] == ' ' || l[0] == '\t') && len(out) > 0:
			out[len(out)-1].value += l
		default:
			name, value, ok := strings.Cut(l, ":")
			if ok {
				out = append(out, headerField{strings.TrimRight(name, " \t"), value})
			}
		}
	}
	for i := range out {
		out[i].value = strings.TrimRight(out[i].value, "\r\n")
	}
	return out
}

// readChunks feeds body to send in pieces a milter takes (65535 bytes,
// SMFI's MILTER_CHUNK_SIZE), until send says stop or the body ends.
func readChunks(body io.Reader, send func([]byte) (more bool, err error)) error {
	buf := make([]byte, milter.DataSize64K)
	for {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			more, serr := send(buf[:n])
			if serr != nil || !more {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the body: %w", err)
		}
	}
}

// verdictOf turns milter answers into the plugin's verdict: the first
// milter, in order, that refused or discarded decides it (and no change
// matters then); else every milter's changes, in order, with the last new
// body. New bodies that are not in the verdict are closed.
func verdictOf(outs []outcome, quarantine string) sdk.Verdict {
	for i, o := range outs {
		if stop, ok := refusal(o.action); ok {
			closeBodies(outs[:i+1])
			return stop
		}
	}
	v := sdk.Continue()
	var edits []sdk.Edit
	for i, o := range outs {
		if o.body != nil && slices.ContainsFunc(outs[i+1:], func(later outcome) bool { return later.body != nil }) {
			o.body.Close() // a later milter's body replaces this one
			o.body = nil
		}
		v = applyMods(v, o, quarantine, &edits)
	}
	return v.With(edits...)
}

// closeBodies closes the new bodies of outs.
func closeBodies(outs []outcome) {
	for _, o := range outs {
		if o.body != nil {
			o.body.Close()
		}
	}
}

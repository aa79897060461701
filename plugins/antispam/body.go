package main

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/emersion/go-msgauth/dkim"

	"postline/plugins/sdk"
)

// bodyOutcome is what the one pass over the body found.
type bodyOutcome struct {
	dkim  dkimOutcome
	hits  []rule // body rules that matched
	spamd []byte // the whole message for spamd, nil when not to be sent
	size  int64  // body bytes read
}

// readBody reads the body once, in the host's chunks, and hands each
// chunk to every reader that needs it: DKIM verification, the body-rule
// scanner and, for a message small enough, the spamd buffer. Memory
// stays bounded whatever the size: nothing keeps the body except that
// capped buffer. A body nobody needs is not read at all.
func readBody(ctx context.Context, c *config, m *sdk.Message) (bodyOutcome, error) {
	out := bodyOutcome{dkim: dkimResults(nil, nil)} // dkim=none unless signed
	var sinks []io.Writer
	finishDKIM := func(error) {}
	if m.Header.Has("DKIM-Signature") {
		w, finish := verifyDKIM(ctx, c.res, m.RawHeader)
		sinks = append(sinks, w)
		finishDKIM = func(err error) { out.dkim = finish(err) }
	}
	scanner := newBodyScanner(c.rules, c.bodyScanLimit)
	if scanner != nil {
		sinks = append(sinks, scanner)
	}
	var buf *capBuffer
	if c.spamd != "" && m.Size <= c.spamdMaxSize {
		buf = newCapBuffer(m.RawHeader, m.Size, c.spamdMaxSize)
		sinks = append(sinks, buf)
	}
	if len(sinks) > 0 && m.Body != nil {
		n, err := io.Copy(io.MultiWriter(sinks...), m.Body)
		out.size = n
		finishDKIM(err)
		if err != nil {
			return out, fmt.Errorf("antispam: read body: %w", err)
		}
	} else {
		finishDKIM(nil)
	}
	out.hits = scanner.hits()
	out.spamd = buf.message()
	return out, nil
}

// verifyDKIM verifies the signatures in the background as the body is
// written to w; go-msgauth wants one io.Reader of header and body, so a
// pipe feeds it. finish ends the body (with the read error, if any) and
// waits for the outcome.
func verifyDKIM(ctx context.Context, res *resolver, rawHeader []byte) (w io.Writer, finish func(error) dkimOutcome) {
	pr, pw := io.Pipe()
	done := make(chan dkimOutcome, 1)
	go func() {
		opts := &dkim.VerifyOptions{LookupTXT: res.txtFunc(ctx), MaxVerifications: maxSignatures}
		verifs, err := dkim.VerifyWithOptions(io.MultiReader(bytes.NewReader(rawHeader), pr), opts)
		// go-msgauth may stop reading early (a broken signature); the
		// body's writer must never block on it.
		io.Copy(io.Discard, pr)
		done <- dkimResults(verifs, err)
	}()
	return pw, func(err error) dkimOutcome {
		pw.CloseWithError(err) // nil: a clean end of the message
		return <-done
	}
}

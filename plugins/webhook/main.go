// Command webhook is postline's bundled plugin that delivers the mail of
// configured addresses or domains to an HTTP(S) endpoint, instead of the
// Maildir or as well. Built as bin/postline-plugin-webhook, it runs on
// the MDA's deliver hook and reads the body (sdk.DeliverBody). For each
// recipient a route matches it POSTs one JSON document (envelope,
// header fields, the text and HTML parts decoded, attachments, and the
// raw message on request), signed with HMAC-SHA256 over a timestamp and
// the body (package signature), with Idempotency-Key QUEUEID/RECIPIENT,
// the same on every retry of that copy. A 2xx is delivery; a 4xx other
// than 408 and 429 refuses the copy for good (the MTA bounces it);
// anything else, a timeout or a refused connection defers it, and the
// MTA's queue retries. docs/webhooks.md is the guide.
//
// Memory: the body of a matched copy is held whole, with its JSON (the
// decoded parts and attachments, base64 for those and for the raw
// message), about four times the message at its peak. The MTA's
// max_message_size bounds the message; at the default that is fine.
// Recipients no route matches cost nothing: their body is not read.
//
// It never writes the Maildir, never retries by itself (the MTA's queue
// does, durably) and never logs a secret or a message's content; it
// never writes to stdout, where go-plugin's handshake travels.
//
//	[[plugins]]
//	name = "webhook"           # runs bin/postline-plugin-webhook
//	daemon = "mda"
//	hooks = ["deliver"]
//	timeout = "40s"            # above every route's timeout
//	[[plugins.config.routes]]
//	addresses = ["orders@example.org"]
//	domains = ["hooks.example.org"]
//	url = "https://app.example.org/hooks/mail"
//	secret_file = "/etc/postline/webhook.secret"   # or secret = "..."
//	mode = "instead"           # or "also": a Maildir copy too
//	timeout = "30s"            # per request; default "10s"
//	include_raw = false        # raw_base64: the whole message
//	max_response = 4096        # bytes of a response body read, for the log
//	ca_file = ""               # PEM CAs trusted besides the system's
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	_ "github.com/emersion/go-message/charset" // decode every charset it knows

	"postline/plugins/sdk"
)

type filter struct {
	mu  sync.Mutex
	cfg *config
	now func() time.Time
}

func newFilter() *filter { return &filter{now: time.Now} }

// Configure checks [plugins.config]; any problem stops the daemon's start.
func (f *filter) Configure(raw map[string]any) error {
	c, err := parseConfig(raw)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.cfg = c
	f.mu.Unlock()
	return nil
}

// DeliverBody asks the host for the body at the deliver hook.
func (f *filter) DeliverBody() bool { return true }

func (f *filter) config() *config {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cfg == nil {
		return &config{} // not configured: routes nothing
	}
	return f.cfg
}

// Deliver posts one recipient's copy when a route matches it.
func (f *filter) Deliver(ctx context.Context, d *sdk.Delivery) (sdk.Verdict, error) {
	r := f.config().match(d.Recipient)
	if r == nil {
		return sdk.Continue(), nil
	}
	raw, err := wholeMessage(d)
	if err != nil {
		return sdk.Verdict{}, err
	}
	key := idempotencyKey(d.QueueID, d.Recipient, raw)
	body, err := buildPayload(envelope{id: d.QueueID, recipient: d.Recipient, sender: d.Sender}, raw, r.includeRaw)
	if err != nil {
		return sdk.Verdict{}, err
	}
	start := f.now()
	a := post(ctx, r, key, body, start)
	v := verdictFor(a, r.also)
	log := sdk.Log().With("queue_id", d.QueueID, "rcpt", d.Recipient, "route", r.name,
		"bytes", len(body), "ms", time.Since(start).Milliseconds())
	switch {
	case a.err != nil:
		log.Warn("webhook not reached, deferred", "error", withoutURL(a.err))
	case a.status/100 == 2:
		log.Info("webhook delivered", "status", a.status, "mode", modeName(r.also))
	default:
		log.Warn("webhook refused", "status", a.status, "bounced", isReject(a.status), "response", a.snippet)
	}
	return v, nil
}

// withoutURL is err's text without the URL, which may hold a token.
func withoutURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// isReject says whether status refuses the copy for good (verdictFor).
func isReject(status int) bool {
	return status/100 == 4 && status != 408 && status != 429
}

func modeName(also bool) string {
	if also {
		return "also"
	}
	return "instead"
}

// wholeMessage is the copy as RFC 5322 writes it, with CRLF line ends:
// the MDA hands the header and body over with LF ones.
func wholeMessage(d *sdk.Delivery) ([]byte, error) {
	var lf bytes.Buffer
	lf.Grow(len(d.RawHeader) + int(d.Size))
	lf.Write(d.RawHeader)
	if d.Body != nil {
		if _, err := io.Copy(&lf, d.Body); err != nil {
			return nil, fmt.Errorf("webhook: read body: %w", err)
		}
	}
	return toCRLF(lf.Bytes()), nil
}

// toCRLF turns every bare LF of b into CRLF.
func toCRLF(b []byte) []byte {
	out := make([]byte, 0, len(b)+bytes.Count(b, []byte("\n")))
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return append(out, b...)
		}
		line := b[:i]
		out = append(out, line...)
		if len(line) == 0 || line[len(line)-1] != '\r' {
			out = append(out, '\r')
		}
		out = append(out, '\n')
		b = b[i+1:]
	}
}

// idempotencyKey is QUEUEID/RECIPIENT: the MTA retries a copy under the
// same queue ID, so a receiver that remembers the keys it has accepted
// takes each copy once. Without a queue ID (an LMTP client other than
// postline's MTA) the message's SHA-256 stands in for it.
func idempotencyKey(queueID, rcpt string, raw []byte) string {
	if queueID == "" {
		sum := sha256.Sum256(raw)
		queueID = "sha256-" + hex.EncodeToString(sum[:16])
	}
	return queueID + "/" + rcpt
}

func main() { sdk.Serve(newFilter()) }

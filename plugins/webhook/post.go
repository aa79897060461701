package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"postline/plugins/sdk"
	"postline/plugins/webhook/signature"
)

// hostMargin is kept between the end of a request and the host's own
// deadline for the call, so that the plugin answers 451 itself rather
// than being killed and restarted as hung.
const hostMargin = 250 * time.Millisecond

// answer is what came of one POST: an HTTP status, or no status and
// the error that prevented one.
type answer struct {
	status  int
	err     error
	timeout time.Duration // the deadline given, for the reply text
	snippet string        // the start of the response body, printable, for the log
}

// post sends body to r's endpoint, signed, and waits for the answer
// within r's timeout (or less, to answer before the host's deadline).
// key is the idempotency key, the same on every retry of this copy.
func post(ctx context.Context, r *route, key string, body []byte, now time.Time) answer {
	timeout := requestTimeout(ctx, r.timeout, now)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil { // the url was checked at Configure
		return answer{err: fmt.Errorf("webhook: request: %w", err)}
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "postline-webhook")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set(signature.TimestampHeader, strconv.FormatInt(ts, 10))
	req.Header.Set(signature.SignatureHeader, signature.Sign(r.secret, ts, body))
	resp, err := r.client.Do(req)
	if err != nil {
		return answer{err: err, timeout: timeout}
	}
	defer resp.Body.Close()
	// Only the start of the body is read, for the log: a huge or endless
	// response is cut off here (closing an unread body drops the
	// connection rather than draining it). The status decides; a body
	// cut short by the deadline changes nothing.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, r.maxResponse))
	return answer{status: resp.StatusCode, timeout: timeout, snippet: printable(head, 200)}
}

// requestTimeout is the route's timeout, shortened to end hostMargin
// before the host's deadline for this call when that comes first.
func requestTimeout(ctx context.Context, timeout time.Duration, now time.Time) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if left := d.Sub(now) - hostMargin; left < timeout {
			return max(left, time.Millisecond)
		}
	}
	return timeout
}

// verdictFor maps an answer onto the copy's fate. A 2xx is delivery:
// DISCARD (the MDA answers 250 and writes nothing) in mode "instead",
// CONTINUE in mode "also". A 4xx refuses for good (the MTA bounces),
// except 408 and 429, which ask to come back later. Anything else, and
// no answer at all, defers: the MTA's queue retries, so an endpoint that
// is down loses nothing. RFC 3463 gives the enhanced codes: X.0.0 other,
// X.3.4 message too big, X.3.0 other mail system status, X.4.1 no answer
// from host. The reply text names the HTTP status only: never bytes of
// the endpoint's body, which reach the sender in a bounce.
func verdictFor(a answer, also bool) sdk.Verdict {
	switch s := a.status; {
	case a.err != nil:
		return sdk.Tempfail(451, "4.4.1", "webhook endpoint not reached: "+reachError(a))
	case s >= 200 && s < 300:
		if also {
			return sdk.Continue()
		}
		return sdk.Discard()
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests:
		return sdk.Tempfail(451, "4.3.0", "webhook endpoint busy: "+httpStatus(s)+", will retry")
	case s == http.StatusRequestEntityTooLarge:
		return sdk.Reject(552, "5.3.4", "webhook endpoint refused the message as too large: "+httpStatus(s))
	case s >= 400 && s < 500:
		return sdk.Reject(550, "5.0.0", "webhook endpoint refused the message: "+httpStatus(s))
	default:
		return sdk.Tempfail(451, "4.3.0", "webhook endpoint failed: "+httpStatus(s)+", will retry")
	}
}

// httpStatus is "HTTP 503 Service Unavailable": the code with Go's own
// reason phrase, not the one the endpoint sent.
func httpStatus(code int) string {
	if text := http.StatusText(code); text != "" {
		return fmt.Sprintf("HTTP %d %s", code, text)
	}
	return fmt.Sprintf("HTTP %d", code)
}

// reachError says in a few words why no status came; the full error,
// which may hold the URL, goes to the log only.
func reachError(a answer) string {
	var ne net.Error
	var op *net.OpError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.Is(a.err, context.DeadlineExceeded) || errors.As(a.err, &ne) && ne.Timeout():
		return "timed out after " + a.timeout.String()
	case errors.As(a.err, &op) && op.Op == "dial":
		return "connection failed"
	case errors.As(a.err, &cv) || strings.Contains(a.err.Error(), "tls:"):
		return "TLS failed"
	default:
		return "connection broken"
	}
}

// printable keeps up to n bytes of b with everything but printable ASCII
// made '.', so an endpoint's answer cannot forge log lines.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

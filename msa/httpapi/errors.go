package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/emersion/go-smtp"

	"postline/reply"
)

// apiError is an error answer: the HTTP status, a stable code that
// programs test (documented in docs/http-api.md), the SMTP-style
// enhanced status (RFC 3463) and a text for people.
type apiError struct {
	HTTP     int    `json:"-"`
	Code     string `json:"code"`
	Status   string `json:"status"`
	SMTPCode int    `json:"smtp_code,omitempty"` // the reply's code when one was given
	Message  string `json:"message"`
}

func newError(httpStatus int, code, status, format string, args ...any) *apiError {
	return &apiError{HTTP: httpStatus, Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// Errors the front end decides itself, before the submission path.
var (
	errUnauthorized = newError(http.StatusUnauthorized, "unauthorized", "5.7.8",
		"missing or invalid API token (Authorization: Bearer pl_...)")
	errLocked = newError(http.StatusTooManyRequests, "auth_locked", "4.7.0",
		"too many failed authentications, try again later")
	errNotFound = newError(http.StatusNotFound, "not_found", "5.1.0", "no such message")
)

// fromReply maps the submission path's final SMTP reply (the MTA's, a
// plugin's or the MSA's own) onto an HTTP answer. Replies the MSA itself
// gives are told apart by identity, so a plugin's 5.7.1 stays a plugin
// refusal and never reads as a sender mismatch.
func fromReply(r *smtp.SMTPError) *apiError {
	status := fmt.Sprintf("%d.%d.%d", r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2])
	e := &apiError{Status: status, SMTPCode: r.Code, Message: r.Message}
	switch {
	case r == reply.SenderNotOwned || r == reply.HeaderFromNotOwn:
		e.HTTP, e.Code = http.StatusForbidden, "sender_not_owned"
	case r == reply.MTAUnavailable:
		e.HTTP, e.Code = http.StatusServiceUnavailable, "mta_unavailable"
	case r == reply.TooManyRecipients:
		e.HTTP, e.Code = http.StatusBadRequest, "too_many_recipients"
	case r == reply.NoRecipients:
		e.HTTP, e.Code = http.StatusBadRequest, "no_recipients"
	case r.Code == 552 || r.EnhancedCode == smtp.EnhancedCode{5, 3, 4}:
		e.HTTP, e.Code = http.StatusRequestEntityTooLarge, "message_too_big"
	case r.Code == 501 && r.EnhancedCode[1] == 1: // 5.1.3, 5.1.7: address syntax
		e.HTTP, e.Code = http.StatusBadRequest, "bad_address"
	case r.Code >= 500 && r.EnhancedCode[1] == 1: // 5.1.x: a recipient refused
		e.HTTP, e.Code = http.StatusUnprocessableEntity, "recipient_rejected"
	case r.Code >= 500:
		e.HTTP, e.Code = http.StatusUnprocessableEntity, "rejected"
	case r.EnhancedCode[1] == 7: // 4.7.x: policy, e.g. a rate limit or greylisting
		e.HTTP, e.Code = http.StatusTooManyRequests, "deferred"
	default:
		e.HTTP, e.Code = http.StatusServiceUnavailable, "temporary_failure"
	}
	return e
}

// writeError sends e as {"error": {...}}.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.HTTP == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="postline"`) // RFC 6750 §3
	}
	if e.HTTP == http.StatusServiceUnavailable || e.HTTP == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	writeJSON(w, e.HTTP, map[string]*apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// replyOf returns the SMTP reply err carries, if any.
func replyOf(err error) *smtp.SMTPError {
	var r *smtp.SMTPError
	if errors.As(err, &r) {
		return r
	}
	return nil
}

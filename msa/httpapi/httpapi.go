// Package httpapi is the MSA's HTTP front end for applications
// (docs/http-api.md): POST /v1/messages takes a raw RFC 5322 message or
// JSON made into one, authenticated with an API token, and GET
// /v1/messages/{id} reports how each recipient stands.
//
// httpapi never talks to the MTA's trusted socket and never applies a
// submission rule itself: every message goes through msa.Backend.Submit,
// the same path as SMTP submission (sender rule, plugins, the MTA's
// reply once the message is on disk). It never reads the queue: states
// come from the MTA over its status socket.
package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"postline/config"
	"postline/msa"
	"postline/plugins/host"
	"postline/reply"
	"postline/users"
)

// Server answers the HTTP API.
type Server struct {
	Config  *config.Config
	Backend *msa.Backend // the submission path, and its AUTH limiter
	Tokens  *users.Tokens
	// Status asks the MTA for a message's recipients (nil: GET answers 503).
	Status StatusFunc
	Log    zerolog.Logger
	Now    func() time.Time // nil: time.Now
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", s.post)
	mux.HandleFunc("GET /v1/messages/{id}", s.get)
	return mux
}

// authenticate returns the token's user, or answers 401 (429 once the
// client's address is locked out, as SMTP AUTH is: msa.auth_*).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	if s.Backend.TokenLocked(ip) {
		writeError(w, errLocked)
		return "", false
	}
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok, found := s.Tokens.Lookup(strings.TrimSpace(secret))
	// The token of an account deleted since is worth nothing.
	if !ok || !found || !s.Backend.Users.Exists(tok.User) {
		s.Backend.TokenFailed(ip) // logs, counts and sleeps like a failed AUTH
		writeError(w, errUnauthorized)
		return "", false
	}
	return tok.User, true
}

// post takes one message: JSON or message/rfc822.
func (s *Server) post(w http.ResponseWriter, r *http.Request) {
	user, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	max := s.Config.MaxMessageSize
	if r.ContentLength > jsonLimit(max) {
		writeError(w, readError(tooLarge(max)))
		return
	}
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	sub := msa.Submission{User: user, Conn: connInfo(r)}
	var aerr *apiError
	switch ctype {
	case "application/json":
		aerr = s.fromJSON(r, &sub)
	case "message/rfc822":
		aerr = s.fromRaw(r, &sub)
	default:
		aerr = newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "5.6.1",
			"Content-Type must be application/json or message/rfc822")
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	res := s.Backend.Submit(sub)
	if res.Reply.Code != 250 {
		writeError(w, fromReply(res.Reply))
		return
	}
	status := "queued"
	if res.Discarded {
		status = "discarded"
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": res.QueueID, "status": status})
}

// jsonLimit bounds a JSON body: the message's limit, base64 making
// attachments a third larger, and room for the rest.
func jsonLimit(max int64) int64 { return max/3*4 + 64<<10 }

// fromJSON builds the message of a JSON body.
func (s *Server) fromJSON(r *http.Request, sub *msa.Submission) *apiError {
	dec := json.NewDecoder(limitSize(r.Body, jsonLimit(s.Config.MaxMessageSize)))
	dec.DisallowUnknownFields()
	var m jsonMessage
	if err := dec.Decode(&m); err != nil {
		if rerr := replyOf(err); rerr != nil {
			return fromReply(rerr)
		}
		return newError(http.StatusBadRequest, "bad_request", "5.5.2", "the JSON body does not decode: %v", err)
	}
	built, err := build(&m, s.Config.Hostname, s.now())
	if err != nil {
		return newError(http.StatusBadRequest, "bad_request", "5.5.2", "%v", err)
	}
	if int64(len(built.Data)) > s.Config.MaxMessageSize {
		return readError(tooLarge(s.Config.MaxMessageSize))
	}
	sub.From, sub.To, sub.Message = built.From, built.To, newCRLF(bytes.NewReader(built.Data))
	return nil
}

// fromRaw streams a raw message, its envelope from ?from= and ?to= or
// else from its header.
func (s *Server) fromRaw(r *http.Request, sub *msa.Submission) *apiError {
	q := r.URL.Query()
	body := bufio.NewReaderSize(newCRLF(limitSize(r.Body, s.Config.MaxMessageSize)), 64<<10)
	from, to, msg, err := rawEnvelope(body, q.Get("from"), q["to"], s.Config.Limits.MaxHeaderSize)
	if err != nil {
		return readError(err)
	}
	sub.From, sub.To, sub.Message, sub.Body8Bit = from, to, msg, true
	return nil
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// connInfo describes the client to the plugins, as an SMTP session does.
func connInfo(r *http.Request) host.ConnInfo {
	ci := host.ConnInfo{Protocol: "HTTP"}
	if h, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ci.ClientIP = h
		ci.ClientPort, _ = strconv.Atoi(port)
	}
	if r.TLS != nil {
		ci.SetTLS(*r.TLS)
	}
	return ci
}

func tooLarge(max int64) error { return reply.TooLarge("size", int(max)) }

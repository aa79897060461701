package mta

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"time"

	"github.com/rs/zerolog"

	"postline/outcomes"
	"postline/queue"
)

// StatusServer answers the MSA's questions about a submitted message
// (the HTTP API's GET /v1/messages/{id}) on the status socket: its
// recipients' states from the queue while it is queued, else from the
// record of finished messages. It answers only about a message whose
// envelope names the asking user, and changes nothing.
type StatusServer struct {
	Manager  *Manager
	Outcomes *outcomes.Store
	Log      zerolog.Logger
}

// Serve answers connections on l until ctx is done.
func (s *StatusServer) Serve(ctx context.Context, l net.Listener) {
	serveConns(ctx, l, s.Log, s.handle)
}

func (s *StatusServer) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(adminTimeout))
	var req outcomes.Request
	resp := &outcomes.Response{}
	if err := json.NewDecoder(io.LimitReader(c, maxAdminRequest)).Decode(&req); err != nil {
		resp.Error = "bad request: " + err.Error()
	} else if m, err := s.find(req); err != nil {
		resp.Error = err.Error()
	} else {
		resp.OK, resp.Message = true, m
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		s.Log.Warn().Err(err).Str("queue_id", req.ID).Msg("cannot answer status query")
	}
}

// find returns message req.ID if it is req.User's: the queue's state
// first (newer than any record), then the record.
func (s *StatusServer) find(req outcomes.Request) (*outcomes.Message, error) {
	if !queue.ValidID(req.ID) || req.User == "" {
		return nil, outcomes.ErrNotFound
	}
	var m *outcomes.Message
	env, err := s.Manager.Envelope(req.ID)
	switch {
	case err == nil:
		msg := outcomes.FromEnvelope(env)
		m = &msg
	case !errors.Is(err, ErrNoSuchMessage):
		return nil, err
	case s.Outcomes != nil:
		if m, err = s.Outcomes.Find(req.ID); err != nil {
			return nil, err
		}
	}
	if m == nil || m.AuthUser != req.User {
		return nil, outcomes.ErrNotFound
	}
	return m, nil
}

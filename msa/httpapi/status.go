package httpapi

import (
	"errors"
	"net/http"

	"postline/outcomes"
	"postline/queue"
)

// StatusFunc asks the MTA about message id of user
// (outcomes.Ask on the status socket in production).
type StatusFunc func(id, user string) (*outcomes.Message, error)

// statusBody is GET's answer.
type statusBody struct {
	ID         string               `json:"id"`
	Received   string               `json:"received"`
	Finished   string               `json:"finished,omitempty"`
	Recipients []outcomes.Recipient `json:"recipients"`
}

// get reports a message's recipients to the user who submitted it; to
// anyone else it does not exist (404, as for an unknown ID).
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	user, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !queue.ValidID(id) {
		writeError(w, errNotFound)
		return
	}
	if s.Status == nil {
		writeError(w, newError(http.StatusServiceUnavailable, "mta_unavailable", "4.3.0", "message states are not available"))
		return
	}
	m, err := s.Status(id, user)
	switch {
	case errors.Is(err, outcomes.ErrNotFound):
		writeError(w, errNotFound)
		return
	case err != nil:
		s.Log.Error().Err(err).Str("queue_id", id).Msg("cannot ask the mta for a message's state")
		writeError(w, newError(http.StatusServiceUnavailable, "mta_unavailable", "4.3.0", "the MTA did not answer; try again later"))
		return
	}
	body := statusBody{ID: m.ID, Received: m.Received.UTC().Format(timeFormat), Recipients: m.Recipients}
	if !m.Finished.IsZero() {
		body.Finished = m.Finished.UTC().Format(timeFormat)
	}
	writeJSON(w, http.StatusOK, body)
}

const timeFormat = "2006-01-02T15:04:05Z07:00" // RFC 3339

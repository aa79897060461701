package outcomes

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// The status protocol, on the MTA's status socket (run/mta-status.sock,
// reachable by the MSA's user like mta.sock): one JSON request per
// connection, one JSON answer.
//
//	{"id":"06K03AGGXD8H8HT5","user":"alice@example.test"}
//	{"ok":true,"message":{...}}  or  {"ok":false,"error":"no such message"}
//
// The MTA answers only about a message whose AuthUser is user, so a
// compromised MSA still learns nothing of mail from the internet.

// Request asks for message ID of User.
type Request struct {
	ID   string `json:"id"`
	User string `json:"user"`
}

// Response is the answer to a Request.
type Response struct {
	OK      bool     `json:"ok"`
	Error   string   `json:"error,omitempty"`
	Message *Message `json:"message,omitempty"`
}

// Ask sends req to the status socket at path. ErrNotFound when the MTA
// knows no such message of that user.
func Ask(path string, req Request, timeout time.Duration) (*Message, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("outcomes: ask %s: %w", req.ID, err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("outcomes: read the MTA's answer: %w", err)
	}
	switch {
	case resp.OK && resp.Message != nil:
		return resp.Message, nil
	case resp.Error == ErrNotFound.Error():
		return nil, ErrNotFound
	}
	return nil, errors.New("outcomes: the MTA answered: " + resp.Error)
}

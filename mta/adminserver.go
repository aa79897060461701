package mta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"postline/dsn"
	"postline/queue"
)

// The admin protocol, spoken on the MTA's admin socket
// (config.MTAAdminSocket, mode 0600, so only root and the MTA's own user
// reach it): one JSON request per connection, one JSON response, then
// the server closes the connection.
//
//	{"cmd":"list"}                          every queued envelope
//	{"cmd":"show","id":"06K03AGGXD8H8HT5"}  its envelope and header block
//	{"cmd":"flush"}                         retry every pending recipient now; count
//	{"cmd":"delete","id":"..."}             remove without a bounce
//	{"cmd":"bounce","id":"..."}             return to the sender; envelopes: the one returned
//	{"cmd":"stats"}                         the queue by state and the counts since start
//
//	{"ok":true,"envelopes":[...],"headers":"...","count":N}
//	{"ok":false,"error":"no such message in the queue: 06K03AGGXD8H8HT5"}

// AdminRequest is one command to the MTA's admin socket.
type AdminRequest struct {
	Cmd string `json:"cmd"`
	ID  string `json:"id,omitempty"`
}

// AdminResponse is the MTA's answer to one AdminRequest.
type AdminResponse struct {
	OK        bool              `json:"ok"`
	Error     string            `json:"error,omitempty"`
	Envelopes []*queue.Envelope `json:"envelopes,omitempty"`
	Headers   string            `json:"headers,omitempty"` // show: the header block, CRLF line ends
	Count     int               `json:"count"`             // flush: recipients made due
	Stats     *QueueStats       `json:"stats,omitempty"`
}

const (
	maxAdminRequest = 4 << 10  // a command and an ID need far less
	maxShowHeader   = 64 << 10 // header bytes `show` returns
	adminTimeout    = 10 * time.Second
)

// AdminServer answers `postline queue` for a Manager.
type AdminServer struct {
	Manager *Manager
	Log     zerolog.Logger
}

// Serve answers connections on l until ctx is done, then closes l and
// waits for the requests in flight.
func (a *AdminServer) Serve(ctx context.Context, l net.Listener) {
	serveConns(ctx, l, a.Log, a.handle)
}

// serveConns runs handle for each connection to l until ctx is done,
// then closes l and waits for the handlers: the admin and status sockets.
func serveConns(ctx context.Context, l net.Listener, log zerolog.Logger, handle func(net.Conn)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // e.g. out of file descriptors: wait, do not spin
			log.Error().Err(err).Str("socket", l.Addr().String()).Msg("cannot accept")
			time.Sleep(100 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); handle(c) }()
	}
}

func (a *AdminServer) handle(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(adminTimeout))
	var req AdminRequest
	var resp *AdminResponse
	if err := json.NewDecoder(io.LimitReader(c, maxAdminRequest)).Decode(&req); err != nil {
		resp = &AdminResponse{Error: fmt.Sprintf("bad request: %v", err)}
	} else {
		resp = a.do(req)
	}
	if !resp.OK {
		a.Log.Info().Str("cmd", req.Cmd).Str("queue_id", req.ID).Str("error", resp.Error).Msg("admin command refused")
	}
	c.SetWriteDeadline(time.Now().Add(adminTimeout))
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		a.Log.Warn().Err(err).Str("cmd", req.Cmd).Msg("cannot answer admin command")
	}
}

// do runs one request.
func (a *AdminServer) do(req AdminRequest) *AdminResponse {
	m := a.Manager
	needsID := req.Cmd == "show" || req.Cmd == "delete" || req.Cmd == "bounce"
	if needsID && !queue.ValidID(req.ID) {
		return &AdminResponse{Error: fmt.Sprintf("%q is not a queue ID (16 characters like 06K03AGGXD8H8HT5)", req.ID)}
	}
	if !needsID && req.ID != "" {
		return &AdminResponse{Error: fmt.Sprintf("%s takes no queue ID", req.Cmd)}
	}
	resp := &AdminResponse{OK: true}
	var err error
	switch req.Cmd {
	case "list":
		resp.Envelopes = m.Snapshot()
	case "show":
		var env *queue.Envelope
		env, resp.Headers, err = a.show(req.ID)
		resp.Envelopes = []*queue.Envelope{env}
	case "flush":
		resp.Count = m.Flush()
	case "stats":
		stats := m.Stats(time.Now())
		resp.Stats = &stats
	case "delete":
		err = m.Delete(req.ID)
	case "bounce":
		// The sender is returned too, so the CLI can say where the bounce
		// went (or that a message from <> is dropped without one).
		var env *queue.Envelope
		if env, err = m.Envelope(req.ID); err == nil {
			err = m.BounceNow(req.ID)
			resp.Envelopes = []*queue.Envelope{env}
		}
	default:
		return &AdminResponse{Error: fmt.Sprintf("unknown command %q", req.Cmd)}
	}
	if err != nil {
		return &AdminResponse{Error: err.Error()}
	}
	return resp
}

// show returns message id's envelope and its header block, up to
// maxShowHeader bytes and without the blank line that ends it.
func (a *AdminServer) show(id string) (*queue.Envelope, string, error) {
	env, err := a.Manager.Envelope(id)
	if err != nil {
		return nil, "", err
	}
	f, err := a.Manager.Queue.OpenMessage(id)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s (%v)", ErrNoSuchMessage, id, err) // removed meanwhile
	}
	defer f.Close()
	header, err := dsn.ReadHeaderBlock(f, maxShowHeader)
	if err != nil {
		return nil, "", fmt.Errorf("read message %s: %w", id, err)
	}
	return env, string(header), nil
}

// AdminCall sends req to the admin socket at path and returns the
// answer; an answer with ok false is returned as an error.
func AdminCall(path string, req AdminRequest, timeout time.Duration) (*AdminResponse, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var resp AdminResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("reading the MTA's answer: %w", err)
	}
	if !resp.OK {
		return nil, errors.New(resp.Error)
	}
	return &resp, nil
}

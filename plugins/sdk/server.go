package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"postline/plugins"
	"postline/plugins/pb"
)

// server turns gRPC calls into calls of the author's hook methods. The
// host only calls hooks listed in the Configure answer; a call for any
// other hook gets Unimplemented.
type server struct {
	pb.UnimplementedFilterServer
	impl any
}

func (s *server) Configure(_ context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	if h, ok := s.impl.(HostAware); ok {
		h.SetHost(Host{Plugin: req.GetName(), Daemon: req.GetDaemon(), Hostname: req.GetHostname(), StateDir: req.GetStateDir()})
	}
	if c, ok := s.impl.(Configurable); ok {
		cfg, err := decodeConfig(req.GetConfigJson())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "config: %v", err)
		}
		if err := c.Configure(cfg); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "config: %v", err)
		}
	}
	resp := &pb.ConfigureResponse{Hooks: hooksOf(s.impl)}
	if h, ok := s.impl.(HeadersOnly); ok {
		resp.DataHeadersOnly = h.HeadersOnly()
	}
	if b, ok := s.impl.(BodyReplacer); ok {
		resp.DataReplacesBody = b.ReplacesBody()
	}
	if b, ok := s.impl.(DeliverBody); ok {
		resp.DeliverBody = b.DeliverBody()
	}
	return resp, nil
}

func (s *server) Connect(ctx context.Context, req *pb.ConnectRequest) (*pb.Verdict, error) {
	f, ok := s.impl.(ConnectFilter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "no connect hook")
	}
	return answer(f.Connect(ctx, conn(req.GetConn())))
}

func (s *server) Disconnect(ctx context.Context, req *pb.ConnectRequest) (*pb.Verdict, error) {
	f, ok := s.impl.(DisconnectFilter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "no disconnect hook")
	}
	if err := f.Disconnect(ctx, conn(req.GetConn())); err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &pb.Verdict{}, nil
}

func (s *server) Mail(ctx context.Context, req *pb.MailRequest) (*pb.Verdict, error) {
	f, ok := s.impl.(MailFilter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "no mail hook")
	}
	return answer(f.Mail(ctx, &Mail{Conn: conn(req.GetConn()), Sender: req.GetSender(), Params: req.GetParams()}))
}

func (s *server) Rcpt(ctx context.Context, req *pb.RcptRequest) (*pb.Verdict, error) {
	f, ok := s.impl.(RcptFilter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "no rcpt hook")
	}
	return answer(f.Rcpt(ctx, &Rcpt{Conn: conn(req.GetConn()), Sender: req.GetSender(), Recipient: req.GetRecipient()}))
}

func (s *server) Deliver(ctx context.Context, req *pb.DeliverRequest) (*pb.Verdict, error) {
	f, ok := s.impl.(DeliverFilter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "no deliver hook")
	}
	return answer(f.Deliver(ctx, delivery(req, strings.NewReader(""))))
}

// DeliverMessage is Deliver with the body streamed after the request.
func (s *server) DeliverMessage(stream pb.Filter_DeliverMessageServer) error {
	f, ok := s.impl.(DeliverFilter)
	if !ok {
		return status.Error(codes.Unimplemented, "no deliver hook")
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("sdk: deliver: first chunk: %w", err)
	}
	req := first.GetStart()
	if req == nil {
		return status.Error(codes.InvalidArgument, "deliver: first chunk must be DeliverRequest")
	}
	body := &bodyReader{next: func() ([]byte, error) {
		c, err := stream.Recv()
		return c.GetBody(), err
	}}
	v, err := answer(f.Deliver(stream.Context(), delivery(req, body)))
	if err != nil {
		return err
	}
	return stream.SendAndClose(v)
}

func delivery(req *pb.DeliverRequest, body io.Reader) *Delivery {
	return &Delivery{
		Recipient: req.GetRecipient(), Sender: req.GetSender(), QueueID: req.GetQueueId(),
		Folder: req.GetFolder(), Header: parseHeader(req.GetHeader()), RawHeader: req.GetHeader(),
		Body: body, Size: req.GetSize(), Mailbox: req.GetMailbox(),
	}
}

// Data reads the first chunk (envelope and header) and hands the rest to
// the filter as a reader, so a body of any size passes one chunk at a time.
func (s *server) Data(stream pb.Filter_DataServer) error {
	v, _, err := s.data(stream.Context(), stream)
	if err != nil {
		return err
	}
	return stream.SendAndClose(v.proto())
}

// DataRewrite is Data for a BodyReplacer: a new body goes back in chunks
// before the verdict, read from the verdict's reader one chunk at a time.
func (s *server) DataRewrite(stream pb.Filter_DataRewriteServer) error {
	v, m, err := s.data(stream.Context(), stream)
	if err != nil {
		return err
	}
	pv := v.proto()
	if v.body != nil {
		// The host reads the new body only once it has sent the whole
		// message: what the filter left unread must be taken first.
		if _, err := io.Copy(io.Discard, m.Body); err != nil {
			return fmt.Errorf("sdk: data: rest of the body: %w", err)
		}
		if err := sendBody(stream, v.body); err != nil {
			return status.Errorf(codes.Unknown, "sdk: new body: %v", err)
		}
		pv.ReplaceBody = true
	}
	return stream.Send(&pb.DataReply{Reply: &pb.DataReply_Verdict{Verdict: pv}})
}

// sendBody streams body in chunks of at most plugins.MaxChunk.
func sendBody(stream pb.Filter_DataRewriteServer, body io.Reader) error {
	if c, ok := body.(io.Closer); ok {
		defer c.Close()
	}
	for {
		buf := make([]byte, plugins.MaxChunk) // grpc may hold a sent message's bytes
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			if serr := stream.Send(&pb.DataReply{Reply: &pb.DataReply_Body{Body: buf[:n]}}); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// data reads the first chunk and runs the filter's data hook.
func (s *server) data(ctx context.Context, stream chunkReceiver) (Verdict, *Message, error) {
	f, ok := s.impl.(DataFilter)
	if !ok {
		return Verdict{}, nil, status.Error(codes.Unimplemented, "no data hook")
	}
	first, err := stream.Recv()
	if err != nil {
		return Verdict{}, nil, fmt.Errorf("sdk: data: first chunk: %w", err)
	}
	start := first.GetStart()
	if start == nil {
		return Verdict{}, nil, status.Error(codes.InvalidArgument, "data: first chunk must be DataStart")
	}
	m := &Message{
		Conn: conn(start.GetConn()), Sender: start.GetSender(), Recipients: start.GetRecipients(),
		Size: start.GetSize(), Header: parseHeader(start.GetHeader()), RawHeader: start.GetHeader(),
		Body: &bodyReader{next: func() ([]byte, error) {
			c, err := stream.Recv()
			return c.GetBody(), err
		}},
	}
	v, err := f.Data(ctx, m)
	if err != nil {
		return Verdict{}, nil, status.Error(codes.Unknown, err.Error())
	}
	return v, m, nil
}

// chunkReceiver is the host's side of Data and DataRewrite as the filter reads it.
type chunkReceiver interface {
	Recv() (*pb.DataChunk, error)
}

// bodyReader reads body chunks off a stream, holding one at a time.
type bodyReader struct {
	next func() ([]byte, error) // the next chunk's bytes
	buf  []byte
	err  error
}

func (r *bodyReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		chunk, err := r.next()
		if err != nil {
			r.err = err // io.EOF once the host has sent everything
			continue
		}
		r.buf = chunk
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// answer converts a hook's result. An error becomes status Unknown, which
// the host treats as this call failing (per on_error) without a restart;
// its own code is dropped because Unavailable or DeadlineExceeded from,
// say, a DNS client inside the hook would read as this plugin being dead.
func answer(v Verdict, err error) (*pb.Verdict, error) {
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return v.proto(), nil
}

func conn(c *pb.Connection) *Conn {
	return &Conn{
		Daemon: c.GetDaemon(), ClientIP: c.GetClientIp(), ClientPort: int(c.GetClientPort()),
		ReverseDNS: c.GetReverseDns(), Helo: c.GetHelo(), Protocol: c.GetProtocol(),
		TLSVersion: c.GetTls().GetVersion(), TLSCipher: c.GetTls().GetCipher(),
		AuthUser: c.GetAuthUser(), QueueID: c.GetQueueId(),
	}
}

func parseHeader(raw []byte) textproto.Header {
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	return h // a malformed line ends the parse; the fields before it stay
}

// decodeConfig turns the host's JSON object back into TOML-like values:
// integers stay int64 instead of becoming float64.
func decodeConfig(js []byte) (map[string]any, error) {
	cfg := map[string]any{}
	if len(bytes.TrimSpace(js)) == 0 {
		return cfg, nil
	}
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	if err := d.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	for k, v := range cfg {
		cfg[k] = numbers(v)
	}
	return cfg, nil
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
	}
	return v
}

package sdk

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"postline/plugins/pb"
)

// Direct returns a client that calls filter's hooks in the caller's own
// process, through the same conversions as a plugin served by Serve, but
// with no process, socket or gRPC between them: how a daemon runs the
// bundled trace-field filters, whose work (a header field) costs less
// than a call to another process.
func Direct(filter any) pb.FilterClient {
	return &direct{srv: &server{impl: filter}}
}

type direct struct{ srv *server }

func (d *direct) Configure(ctx context.Context, in *pb.ConfigureRequest, _ ...grpc.CallOption) (*pb.ConfigureResponse, error) {
	return d.srv.Configure(ctx, in)
}

func (d *direct) Connect(ctx context.Context, in *pb.ConnectRequest, _ ...grpc.CallOption) (*pb.Verdict, error) {
	return d.srv.Connect(ctx, in)
}

func (d *direct) Mail(ctx context.Context, in *pb.MailRequest, _ ...grpc.CallOption) (*pb.Verdict, error) {
	return d.srv.Mail(ctx, in)
}

func (d *direct) Rcpt(ctx context.Context, in *pb.RcptRequest, _ ...grpc.CallOption) (*pb.Verdict, error) {
	return d.srv.Rcpt(ctx, in)
}

func (d *direct) Deliver(ctx context.Context, in *pb.DeliverRequest, _ ...grpc.CallOption) (*pb.Verdict, error) {
	return d.srv.Deliver(ctx, in)
}

func (d *direct) Disconnect(ctx context.Context, in *pb.ConnectRequest, _ ...grpc.CallOption) (*pb.Verdict, error) {
	return d.srv.Disconnect(ctx, in)
}

// DataRewrite is for plugins in processes of their own: a bundled filter
// run in the daemon never replaces a body.
func (d *direct) DataRewrite(context.Context, ...grpc.CallOption) (pb.Filter_DataRewriteClient, error) {
	return nil, status.Error(codes.Unimplemented, "no body replacement in process")
}

// DeliverMessage is for plugins in processes of their own: the bundled
// filters run in the daemon read no delivery's body.
func (d *direct) DeliverMessage(context.Context, ...grpc.CallOption) (pb.Filter_DeliverMessageClient, error) {
	return nil, status.Error(codes.Unimplemented, "no delivery body in process")
}

// Data runs the data hook in a goroutine of its own, fed the chunks the
// caller sends one at a time, so a body of any size passes in bounded
// memory as over gRPC.
func (d *direct) Data(ctx context.Context, _ ...grpc.CallOption) (pb.Filter_DataClient, error) {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	s := &directStream{parent: parent, ctx: ctx, cancel: cancel, chunks: make(chan *pb.DataChunk), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = d.srv.Data(&directServerStream{s})
		cancel() // a hook that returned early unblocks Send
	}()
	return s, nil
}

// directStream is both ends of one data call.
type directStream struct {
	grpc.ClientStream                 // never called: Send and CloseAndRecv are the whole use
	parent            context.Context // the call's, with its timeout
	ctx               context.Context
	cancel            context.CancelFunc
	chunks            chan *pb.DataChunk
	done              chan struct{}
	verdict           *pb.Verdict // set by the hook's side before done closes
	err               error
}

// Send hands the hook a chunk; once the hook has answered, the rest of
// the message is not wanted and Send returns io.EOF, as over gRPC.
func (s *directStream) Send(c *pb.DataChunk) error {
	select {
	case s.chunks <- c:
		return nil
	case <-s.ctx.Done():
		return io.EOF
	}
}

// CloseAndRecv ends the message and waits for the hook's verdict, or
// for the call's timeout (the hook then sees its context end).
func (s *directStream) CloseAndRecv() (*pb.Verdict, error) {
	close(s.chunks)
	select {
	case <-s.done:
	case <-s.parent.Done():
		return nil, s.parent.Err()
	}
	s.cancel()
	if s.err != nil {
		return nil, s.err
	}
	return s.verdict, nil
}

// directServerStream is the hook's end of a directStream.
type directServerStream struct{ s *directStream }

func (d *directServerStream) Recv() (*pb.DataChunk, error) {
	select {
	case c, ok := <-d.s.chunks:
		if !ok {
			return nil, io.EOF
		}
		return c, nil
	case <-d.s.ctx.Done():
		return nil, d.s.ctx.Err()
	}
}

func (d *directServerStream) SendAndClose(v *pb.Verdict) error {
	d.s.verdict = v
	return nil
}

func (d *directServerStream) Context() context.Context { return d.s.ctx }

func (d *directServerStream) SetHeader(metadata.MD) error  { return nil }
func (d *directServerStream) SendHeader(metadata.MD) error { return nil }
func (d *directServerStream) SetTrailer(metadata.MD)       {}
func (d *directServerStream) SendMsg(any) error            { return nil }
func (d *directServerStream) RecvMsg(any) error            { return nil }

package host

import (
	"context"
	"fmt"
	"io"
	"os"

	"postline/plugins"
	"postline/plugins/pb"
)

// bodySink keeps the last new body a plugin sent back (DataRewrite), in
// an unlinked file in dir, so a body of any size costs bounded memory. A
// nil *bodySink drops new bodies.
type bodySink struct {
	dir  string
	file *os.File // nil until a plugin replaces the body
	size int64
}

func (s *bodySink) replaced() bool { return s != nil && s.file != nil }

func (s *bodySink) rewind() error {
	_, err := s.file.Seek(0, io.SeekStart)
	return err
}

// Close releases the new body, if any.
func (s *bodySink) Close() error {
	if !s.replaced() {
		return nil
	}
	return s.file.Close()
}

// keep puts f, a new body, in place of the one kept before.
func (s *bodySink) keep(f *os.File, size int64) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	s.Close()
	s.file, s.size = f, size
	return nil
}

// rewriteData is sendData for a plugin that may send a new body back:
// the message goes out in chunks, then the body chunks coming back are
// written to a file until the verdict. The new body is kept only when the
// verdict says replace_body and sink is not nil.
func rewriteData(ctx context.Context, rpc pb.FilterClient, start *pb.DataStart, body io.Reader, sink *bodySink) (*pb.Verdict, error) {
	stream, err := rpc.DataRewrite(ctx)
	if err != nil {
		return nil, err
	}
	if err := sendChunks(stream, start, body); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	var out *os.File
	var size int64
	defer func() {
		if out != nil {
			out.Close()
		}
	}()
	for {
		reply, err := stream.Recv()
		if err != nil {
			return nil, err // io.EOF too: the stream ended without a verdict
		}
		if v := reply.GetVerdict(); v != nil {
			if !v.GetReplaceBody() || sink == nil {
				v.ReplaceBody = false
				return v, nil
			}
			if out == nil { // an empty new body
				if out, err = newBodyFile(sink.dir); err != nil {
					return nil, hostError{err}
				}
			}
			if err := sink.keep(out, size); err != nil {
				out = nil
				return nil, hostError{err}
			}
			out = nil
			return v, nil
		}
		if out == nil && sink != nil {
			if out, err = newBodyFile(sink.dir); err != nil {
				return nil, hostError{err}
			}
		}
		if out != nil {
			n, err := out.Write(reply.GetBody())
			size += int64(n)
			if err != nil {
				return nil, hostError{fmt.Errorf("write the new body: %w", err)}
			}
		}
	}
}

// newBodyFile creates an unlinked file in dir for a new body.
func newBodyFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "filter-body-*")
	if err != nil {
		return nil, fmt.Errorf("file for the new body: %w", err)
	}
	os.Remove(f.Name())
	return f, nil
}

// chunkSender is the host's end of Data and DataRewrite.
type chunkSender interface {
	Send(*pb.DataChunk) error
}

// sendChunks sends DataStart, then the body in chunks. A plugin may answer
// early; Send then reports io.EOF, which is not an error here.
func sendChunks(stream chunkSender, start *pb.DataStart, body io.Reader) error {
	err := stream.Send(&pb.DataChunk{Chunk: &pb.DataChunk_Start{Start: start}})
	if err == nil && body != nil {
		err = streamBody(body, func(b []byte) error { return stream.Send(&pb.DataChunk{Chunk: &pb.DataChunk_Body{Body: b}}) })
	}
	if err != nil && err != io.EOF {
		return err
	}
	return nil
}

// streamBody hands body to send in chunks of at most plugins.MaxChunk,
// until the body ends or send fails. A read error is a hostError.
func streamBody(body io.Reader, send func([]byte) error) error {
	for {
		// A fresh buffer per chunk: grpc may hold a sent message's bytes.
		buf := make([]byte, plugins.MaxChunk)
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if err := send(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return hostError{rerr}
		}
	}
}

package guard

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-smtp"

	"postline/reply"
)

func read(t *testing.T, in string, p DataPolicy) (string, error) {
	t.Helper()
	// One byte at a time, so that every rule is tested across reads.
	b, err := io.ReadAll(NewDataReader(iotest.OneByteReader(strings.NewReader(in)), nil, p))
	return string(b), err
}

// The smuggling vectors of CVE-2023-51764 and kin, as go-smtp passes them
// on inside one message: normalized, each becomes plain CRLF lines.
func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\n.\nMAIL FROM:<x@y>\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n"},
		{"a\r\n.\nRCPT\r\n", "a\r\n.\r\nRCPT\r\n"},
		{"a\n.\r\nX\r\n", "a\r\n.\r\nX\r\n"},
		{"a\r.\r\nX\r\n", "a .\r\nX\r\n"},
		{"stray\rCR\r\n", "stray CR\r\n"},
		{"end with CR\r", "end with CR "},
		{"\r\r\n", " \r\n"},
	}
	for _, tt := range tests {
		got, err := read(t, tt.in, DataPolicy{})
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestRejectBareNewline(t *testing.T) {
	for _, in := range []string{"a\nb\r\n", "a\rb\r\n", "a\r\n.\nb\r\n", "end\r"} {
		if _, err := read(t, in, DataPolicy{RejectBareNewline: true}); err != reply.BareNewline {
			t.Errorf("%q: err %v, want reply.BareNewline", in, err)
		}
	}
	if got, err := read(t, "fine\r\n", DataPolicy{RejectBareNewline: true}); err != nil || got != "fine\r\n" {
		t.Errorf("clean input: %q, %v", got, err)
	}
}

func TestLimits(t *testing.T) {
	p := DataPolicy{MaxLineLength: 10, MaxHeaderSize: 20}
	if _, err := read(t, "A: 1\r\n\r\n0123456789\r\n", p); err != nil {
		t.Errorf("line of exactly 10: %v", err)
	}
	wantTooLarge(t, "line", read2(t, "A: 1\r\n\r\n01234567890\r\n", p))
	wantTooLarge(t, "header", read2(t, "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\nbody\r\n", p))
	// The header limit ends at the blank line: a long body is fine.
	if _, err := read(t, "A: 1\r\n\r\n"+strings.Repeat("012345678\r\n", 10), p); err != nil {
		t.Errorf("body counted as header: %v", err)
	}
}

func read2(t *testing.T, in string, p DataPolicy) error {
	_, err := read(t, in, p)
	return err
}

func wantTooLarge(t *testing.T, what string, err error) {
	t.Helper()
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 552 || serr.EnhancedCode != (smtp.EnhancedCode{5, 3, 4}) {
		t.Errorf("%s over the limit: %v, want 552 5.3.4", what, err)
	}
}

func FuzzDataReader(f *testing.F) {
	for _, s := range []string{"a\r\nb\r\n", "a\n.\nb", "\r\r\n\n", "x\r"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, reject bool) {
		out, err := read(t, in, DataPolicy{RejectBareNewline: reject})
		if err != nil {
			return
		}
		// Whatever comes out has only CRLF line ends: no bare CR or LF.
		for i := 0; i < len(out); i++ {
			if out[i] == '\n' && (i == 0 || out[i-1] != '\r') || out[i] == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
				t.Fatalf("%q became %q, with a bare line end at %d", in, out, i)
			}
		}
	})
}

// RFC 5321 §6.3: a message that went through too many hops is a loop.
func TestHopLimit(t *testing.T) {
	p := DataPolicy{MaxReceived: 2}
	two := "Received: from a\r\nreceived: from b\r\n\tby c\r\nSubject: x\r\n\r\nReceived: in the body\r\n"
	if _, err := read(t, two, p); err != nil {
		t.Errorf("2 hops refused: %v", err)
	}
	if _, err := read(t, "RECEIVED: x\r\n"+two, p); err != reply.Loop {
		t.Errorf("3 hops: %v, want reply.Loop", err)
	}
}

// reference is the reader's rules applied one byte at a time (feed),
// without the runs that fill copies whole.
func reference(in string, p DataPolicy) (string, error) {
	d := NewDataReader(nil, nil, p).(*dataReader)
	for i := 0; i < len(in); i++ {
		if err := d.feed(in[i]); err != nil {
			return string(d.out), err
		}
	}
	err := d.finish()
	if err == io.EOF {
		err = nil
	}
	return string(d.out), err
}

// Reading whole chunks (the runs of body bytes copied at once) gives the
// same bytes and the same refusal as one byte at a time.
func FuzzDataReaderRuns(f *testing.F) {
	f.Add("Subject: x\r\n\r\nbody line\r\nmore\rx\ny\r\n", uint8(0), uint8(0), false)
	f.Add("h: v\r\n\r\n"+strings.Repeat("z", 100)+"\r\n", uint8(10), uint8(0), true)
	f.Add("h: v\r\n\r\na\r\nbc\r\n\r\nd\re\r\nf\r\n\n", uint8(0), uint8(0), false)
	f.Fuzz(func(t *testing.T, in string, maxLine, maxHeader uint8, reject bool) {
		p := DataPolicy{RejectBareNewline: reject, MaxLineLength: int(maxLine), MaxHeaderSize: int(maxHeader), MaxReceived: 2}
		wantOut, wantErr := reference(in, p)
		// Chunks of a size the input picks, so that lines and CRLFs
		// are cut at every place too, or the whole input at once.
		chunk := 1 + int(maxLine^maxHeader)%8
		if chunk == 8 {
			chunk = len(in) + 1
		}
		got, err := io.ReadAll(NewDataReader(&chunkReader{strings.NewReader(in), chunk}, nil, p))
		if !errors.Is(err, wantErr) && (err == nil || wantErr == nil || err.Error() != wantErr.Error()) {
			t.Fatalf("%q: error %v, one byte at a time %v", in, err, wantErr)
		}
		if wantErr == nil && string(got) != wantOut {
			t.Fatalf("%q: %q, one byte at a time %q", in, got, wantOut)
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

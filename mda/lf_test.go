package mda

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// runLF feeds chunks to an lfWriter, one Write each, then flushes.
func runLF(t *testing.T, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	lw := &lfWriter{w: &out}
	for _, c := range chunks {
		n, err := lw.Write([]byte(c))
		// io.Copy treats n < len(p) as a short write, even if fewer bytes
		// went out because CRs were dropped.
		if err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", c, n, err, len(c))
		}
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestLFWriter(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"CRLF", []string{"a\r\nb\r\n"}, "a\nb\n"},
		{"CRLF split across writes", []string{"a\r", "\nb\r", "\n"}, "a\nb\n"},
		{"bare CR kept", []string{"a\rb\r\n"}, "a\rb\n"},
		{"bare CR at the end of a write", []string{"a\r", "b"}, "a\rb"},
		{"CR at the very end flushed", []string{"a\r\nb\r"}, "a\nb\r"},
		{"CR CR LF", []string{"\r\r\n"}, "\r\n"},
		{"CR CR LF one byte at a time", []string{"\r", "\r", "\n"}, "\r\n"},
		{"LF only untouched", []string{"a\n\nb\n"}, "a\n\nb\n"},
		{"LF CR", []string{"\n\r"}, "\n\r"},
		{"empty writes", []string{"", "a\r", "", "\n", ""}, "a\n"},
		{"nothing", nil, ""},
		{"binary", []string{"\x00\xff\r\n\x00"}, "\x00\xff\n\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLF(t, tt.chunks...); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// However the input is split, the output is the input with each CRLF
// replaced by LF.
func TestLFWriterAnySplit(t *testing.T) {
	in := "H: v\r\n\r\nline\rnext\r\r\n.\r\n\r"
	want := string(bytes.ReplaceAll([]byte(in), []byte("\r\n"), []byte("\n")))
	for size := 1; size <= len(in); size++ {
		var chunks []string
		for i := 0; i < len(in); i += size {
			chunks = append(chunks, in[i:min(i+size, len(in))])
		}
		if got := runLF(t, chunks...); got != want {
			t.Errorf("chunks of %d: got %q, want %q", size, got, want)
		}
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestLFWriterErrors(t *testing.T) {
	errDisk := errors.New("disk gone")
	lw := &lfWriter{w: failingWriter{errDisk}}
	if _, err := lw.Write([]byte("a\r")); !errors.Is(err, errDisk) {
		t.Errorf("Write error = %v, want %v", err, errDisk)
	}
	if err := lw.Flush(); !errors.Is(err, errDisk) {
		t.Errorf("Flush error = %v, want %v", err, errDisk)
	}
	// Nothing held back: Flush writes nothing, so it cannot fail.
	if err := (&lfWriter{w: failingWriter{errDisk}}).Flush(); err != nil {
		t.Errorf("Flush with nothing pending = %v", err)
	}
}

// lfWriter, copying runs between CRs at once, writes any input in any
// chunks as a whole-input CRLF-to-LF replacement would.
func FuzzLFWriter(f *testing.F) {
	f.Add([]byte("H: v\r\n\r\nline\rnext\r\r\n.\r\n\r"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, size uint8) {
		want := string(bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n")))
		var chunks []string
		for i := 0; i < len(in); i += 1 + int(size) {
			chunks = append(chunks, string(in[i:min(i+1+int(size), len(in))]))
		}
		if got := runLF(t, chunks...); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// lfReader reads, in reads of any size, what lfWriter writes.
func FuzzLFReader(f *testing.F) {
	f.Add([]byte("H: v\r\n\r\nline\rnext\r\r\n.\r\n\r"), uint8(2), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, chunk, read uint8) {
		want := string(bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n")))
		r := newLFReader(iotest.HalfReader(&chunked{in, 1 + int(chunk)}))
		defer r.Close()
		var got []byte
		buf := make([]byte, 1+int(read))
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// chunked returns at most n bytes of data per Read.
type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[k:]
	return k, nil
}

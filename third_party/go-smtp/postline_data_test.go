package smtp

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"testing"
)

// referenceData is the data reader's state machine one byte at a time,
// as it was before runs were copied at once [postline patch]: what the
// reader must still return, byte for byte, with the same end.
func referenceData(in []byte) ([]byte, bool) {
	const (
		beginLine = iota
		dot
		dotCR
		cr
		data
	)
	var out []byte
	state := beginLine
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch state {
		case beginLine:
			if c == '.' {
				state = dot
				continue
			}
			state = data
			if c == '\r' {
				state = cr
			}
		case dot:
			if c == '\r' {
				state = dotCR
				continue
			}
			state = data
		case dotCR:
			if c == '\n' {
				return out, true
			}
			i-- // the CR is read again as data
			c, state = '\r', data
		case cr:
			switch c {
			case '\n':
				state = beginLine
			case '\r':
			default:
				state = data
			}
		case data:
			if c == '\r' {
				state = cr
			}
		}
		out = append(out, c)
	}
	return out, false
}

// [postline patch] the data reader copies runs inside a line at once
// and returns the same bytes as one byte at a time, whatever the
// buffer sizes.
func FuzzDataReaderRuns(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "..x\r\n\r\n.\r\n", "bare\rCR\r\n.\rx\r\n.\r\n", "a\nb\r\n.x\r\n.\r\n", "no end", "a\r\r\n..b\r\r\n.\r\n", "x\r\n\r\n\r\n.y\r\nz\r\n.\r\n"} {
		f.Add([]byte(s), uint8(16), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, bufSize, readSize uint8) {
		want, ended := referenceData(in)
		r := &dataReader{r: bufio.NewReaderSize(bytes.NewReader(in), 16+int(bufSize))}
		var got []byte
		buf := make([]byte, 1+int(readSize))
		var err error
		for err == nil {
			var n int
			n, err = r.Read(buf)
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %q, want %q", got, want)
		}
		if ended != (err == io.EOF) {
			t.Fatalf("end %v, want the end marker found: %v", err, ended)
		}
	})
}

// [postline patch] the client's DATA writer, which writes runs inside a
// line at once, writes what net/textproto's does, whatever the writes.
func FuzzDotWriterRuns(f *testing.F) {
	for _, s := range []string{"", "a\r\n.b\r\n", ".\n..\r\rx\n", "no end", "\r\n\r\n.\r\n"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		var want bytes.Buffer
		ref := textproto.NewWriter(bufio.NewWriter(&want)).DotWriter()
		var got bytes.Buffer
		bw := bufio.NewWriterSize(&got, 16)
		mine := &dotWriter{w: bw}
		for rest := in; len(rest) > 0; {
			k := 1 + int(chunk)
			if k > len(rest) {
				k = len(rest)
			}
			ref.Write(rest[:k])
			mine.Write(rest[:k])
			rest = rest[k:]
		}
		ref.Close()
		mine.Close()
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("wrote %q, want %q", got.Bytes(), want.Bytes())
		}
	})
}

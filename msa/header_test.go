package msa

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

const testHost = "mx.example.test"

func complete(t *testing.T, in string) string {
	t.Helper()
	var out bytes.Buffer
	if err := CompleteHeader(&out, strings.NewReader(in), testHost); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

var (
	addedID   = regexp.MustCompile(`^Message-ID: <\d+\.[0-9a-f]{24}@` + regexp.QuoteMeta(testHost) + ">\r\n")
	addedDate = regexp.MustCompile(`^Date: ([^\r\n]+)\r\n`)
)

// checkAdded checks that out is in with exactly the wanted fields put
// in front of it.
func checkAdded(t *testing.T, out, in string, wantID, wantDate bool) {
	t.Helper()
	prefix, ok := strings.CutSuffix(out, in)
	if !ok {
		t.Errorf("message not passed on byte for byte:\n got %q\nwant %q after the added fields", out, in)
		return
	}
	m := addedID.FindString(prefix)
	if (m != "") != wantID {
		t.Errorf("Message-ID added: %v, want %v; output %q", m != "", wantID, out)
	}
	prefix = prefix[len(m):]
	d := addedDate.FindStringSubmatch(prefix)
	if (d != nil) != wantDate {
		t.Errorf("Date added: %v, want %v; output %q", d != nil, wantDate, out)
	}
	if d != nil {
		at, err := time.Parse("Mon, 02 Jan 2006 15:04:05 -0700", d[1])
		if err != nil || time.Since(at).Abs() > time.Minute {
			t.Errorf("added Date %q: %v, not now", d[1], err)
		}
		prefix = prefix[len(d[0]):]
	}
	if prefix != "" {
		t.Errorf("unexpected text added: %q", prefix)
	}
}

// Each case gives the input and which fields must be added; everything
// after the added fields must be the input, byte for byte.
func TestCompleteHeader(t *testing.T) {
	long := "X-Long: " + strings.Repeat("a", 4096-len("X-Long: "))
	tests := []struct {
		name             string
		in               string
		wantID, wantDate bool
	}{
		{"both missing", "From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n", true, true},
		{"both present", "Message-ID: <1@x>\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n", false, false},
		{"present in other case", "message-id: <1@x>\r\nDATE: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n", false, false},
		{"space before colon", "Message-ID : <1@x>\r\nDate\t: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n", false, false},
		{"only Date missing", "Subject: x\r\nMessage-Id: <1@x>\r\n\r\nbody\r\n", false, true},
		{"only Message-ID missing", "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n", true, false},
		{"fields in the body do not count", "Subject: x\r\n\r\nMessage-ID: <1@x>\r\nDate: today\r\n", true, true},
		{"folded line is not a field", "Subject: x\r\n Date: today\r\n\tMessage-ID: <1@x>\r\n\r\n", true, true},
		{"LF line ends", "Subject: x\n\nbody\n", true, true},
		{"header only, no separator", "Subject: x\r\nFrom: a@example.test\r\n", true, true},
		{"no final line end", "Subject: x", true, true},
		{"line longer than bufio's buffer", long + "Date: not a field\r\nSubject: x\r\n\r\nbody\r\n", true, true},
		{"long line then real Date", long + "\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n", true, false},
		{"empty body", "Subject: x\r\n\r\n", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAdded(t, complete(t, tt.in), tt.in, tt.wantID, tt.wantDate)
		})
	}
}

// A header block longer than maxScannedHeader is passed on untouched
// rather than held in memory.
func TestCompleteHeaderHugeHeader(t *testing.T) {
	var b strings.Builder
	for b.Len() <= maxScannedHeader {
		b.WriteString("X-Filler: " + strings.Repeat("f", 100) + "\r\n")
	}
	b.WriteString("\r\nbody\r\n")
	if out := complete(t, b.String()); out != b.String() {
		t.Errorf("huge header changed (len %d -> %d)", b.Len(), len(out))
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestCompleteHeaderReadError(t *testing.T) {
	var out bytes.Buffer
	err := CompleteHeader(&out, io.MultiReader(strings.NewReader("Subject: x\r\n"), failingReader{io.ErrUnexpectedEOF}), testHost)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want the read error", err)
	}
}

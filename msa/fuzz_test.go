package msa

import (
	"bytes"
	"testing"
)

// FuzzCompleteHeader: the submitted bytes always come out in order, with
// only added header fields (and at most a header/body separator) around
// them, whatever the input.
func FuzzCompleteHeader(f *testing.F) {
	for _, s := range []string{"Subject: x\r\n\r\nbody\r\n", "no header\r\n", "A: b\r\n c\r\n", "",
		"Date: x\r\nMessage-ID: <y>\r\n\r\n", "From: a@b\r\n\tfolded\r\n\r\n."} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if err := CompleteHeader(&out, bytes.NewReader(in), "mail.example.test"); err != nil {
			t.Fatal(err)
		}
		if !isSubsequence(in, out.Bytes()) {
			t.Fatalf("input %q not kept in order in %q", in, out.Bytes())
		}
		if out.Len() > len(in)+200 {
			t.Fatalf("%d bytes added to %q", out.Len()-len(in), in)
		}
	})
}

func isSubsequence(sub, s []byte) bool {
	i := 0
	for _, b := range s {
		if i < len(sub) && sub[i] == b {
			i++
		}
	}
	return i == len(sub)
}

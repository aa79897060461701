package queue

import (
	"bytes"
	"testing"
	"time"

	"postline/durable"
)

// BenchmarkStore measures making one 10 KiB message durable: two files,
// each written, fsynced, renamed and its directory fsynced. This is the
// cost group commit will later share among many messages.
func BenchmarkStore(b *testing.B) {
	s, err := Open(b.TempDir(), durable.OS{})
	if err != nil {
		b.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 160)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		env := &Envelope{ID: NewID(time.Now()), From: "a@example.test",
			Recipients: []*Recipient{{Address: "b@example.test", State: Pending}}}
		if err := s.Store(env, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}

package mda

import (
	"bytes"
	"path/filepath"
	"testing"

	"postline/durable"
)

// BenchmarkDeliver measures one durable 10 KiB Maildir delivery: write,
// fsync, rename into new/, fsync new/.
func BenchmarkDeliver(b *testing.B) {
	root := b.TempDir()
	m := &Maildir{FS: durable.Rooted{Root: root}, Hostname: "mail.example.test"}
	dir := filepath.Join(root, "example.test", "demo")
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\n"), 160)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := m.Deliver(dir, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}

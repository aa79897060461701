package mda

import (
	"bytes"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

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

// BenchmarkDeliverRecorded is one recipient's 10 KiB copy as the MDA
// writes it for the MTA: the delivery ledger's fsynced begin record, the
// durable Maildir write, the done record. Against BenchmarkDeliver it
// shows the price of exactly-once.
func BenchmarkDeliverRecorded(b *testing.B) {
	root := b.TempDir()
	m := &Maildir{FS: durable.Rooted{Root: root}, Hostname: "mail.example.test"}
	l, err := OpenLedger(durable.OS{}, b.TempDir(), 5*24*time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	s := &session{b: &Backend{Maildir: m, Ledger: l, Log: zerolog.Nop()}, from: "x@example.org"}
	rc := recipient{"demo@example.test", filepath.Join(root, "example.test", "demo")}
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\n"), 160)
	b.SetBytes(int64(len(msg)))
	i := 0
	for b.Loop() {
		i++
		s.queueID = "Q" + strconv.Itoa(i)
		if _, err := s.write(target{dir: rc.dir}, rc.address, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}

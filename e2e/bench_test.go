package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkSubmitToMaildir measures the whole pipeline: messages
// submitted through the MSA (STARTTLS, AUTH, one connection each, as a
// mail client does) until all are in the Maildir, from 1 and from 8
// concurrent clients.
func BenchmarkSubmitToMaildir(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := StartStack(b)
			defer s.stop()
			body := "Subject: bench\r\nMessage-ID: <b@example.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n\r\n" +
				strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 160)
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			submitConcurrently(b, s, clients, b.N, body)
			s.WaitForMail(demoUser, b.N, 5*time.Minute)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func submitConcurrently(b *testing.B, s *Stack, clients, n int, body string) {
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if _, err := s.Submit(Submission{To: []string{demoUser}, Body: body}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkInboundToMaildir measures the MTA and MDA without the MSA's
// per-connection TLS and bcrypt cost: plain SMTP on the MTA's port, each
// client sending its messages over one connection, until all are in the
// Maildir.
func BenchmarkInboundToMaildir(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := StartStack(b)
			defer s.stop()
			benchStackInbound(b, s, clients)
		})
	}
}

// benchStackInbound is benchInbound against the stack's MTA, timed until
// every message is in the demo user's Maildir, with the CPU each of the
// stack's processes used per message.
func benchStackInbound(b *testing.B, s *Stack, clients int) {
	before := s.CPU()
	benchInbound(b, s.MTA, clients, func() { waitFiles(b, filepath.Join(s.Mailbox(demoUser), "new"), b.N, 5*time.Minute) })
	s.reportCPU(b, before, b.N)
}

// benchBody is the 10 KiB message of the inbound benchmarks.
var benchBody = "Subject: bench\r\nMessage-ID: <b@example.test>\r\n\r\n" +
	strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 160)

// benchInbound times b.N messages sent to the SMTP server at addr by
// clients connections, until delivered says all are in the Maildir.
func benchInbound(b *testing.B, addr string, clients int, delivered func()) {
	b.SetBytes(int64(len(benchBody)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			sendInboundTo(b, addr, n, benchBody)
		}(b.N/clients + boolInt(c < b.N%clients))
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	delivered()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// waitFiles waits until dir holds n files, reading nothing but the
// folder, so the wait costs the benchmark next to nothing.
func waitFiles(tb testing.TB, dir string, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		entries, _ := os.ReadDir(dir)
		if len(entries) >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s has %d files, want %d", dir, len(entries), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
